package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/activities/contract"
)

// Activity timeouts. Temporal notices that a worker died (kill -9, OOM, a
// lost node) only through them, so they bound how long a crashed worker
// delays a deployment or, worse, its rollback: the abort of a step whose
// apply ran on a dead worker waits for the apply to time out
// (WaitForCancellation). Quick activities are one or two round trips to
// Consul, HAProxy (the driver bounds each at 5 s) or the database; long ones
// (migrations) heartbeat every 2 s, so 10 s without a heartbeat means the
// worker is gone. The crash campaign (tests/chaos, make chaos) exercises
// both; 30 s made every crash cost half a minute.
const (
	quickTimeout     = 10 * time.Second
	heartbeatTimeout = 10 * time.Second
)

// nonRetryable are the activity error types that retrying cannot fix.
var nonRetryable = []string{contract.ErrInvalid, contract.ErrConflict, contract.ErrMismatch, contract.ErrNoCapacity, contract.ErrArchive}

// activityPolicy is how one class of activity runs: its timeouts, whether a
// cancellation waits for it, and its retries inside the activity. Every
// activity the workflows execute gets its options from one of the policies
// below, through options.
type activityPolicy struct {
	timeout   time.Duration
	heartbeat time.Duration
	// waitForCancel: a cancelled activity is waited for until it stops, so
	// that its compensation cannot race it.
	waitForCancel bool
	initial       time.Duration
	backoff       float64
	maxInterval   time.Duration
	attempts      int32
	nonRetryable  []string
}

var (
	capturePolicy = activityPolicy{timeout: quickTimeout,
		initial: 500 * time.Millisecond, backoff: 2, maxInterval: 10 * time.Second, attempts: 5, nonRetryable: nonRetryable}
	// An abort that arrives while an apply runs must not let the step's
	// compensation race the apply.
	applyPolicy = activityPolicy{timeout: quickTimeout, waitForCancel: true,
		initial: 500 * time.Millisecond, backoff: 2, maxInterval: 5 * time.Second, attempts: 3, nonRetryable: nonRetryable}
	// A compensation gets a few quick attempts inside the activity; slower
	// retries happen in the workflow so the status can say what we are
	// waiting on. quickTimeout: a crashed worker must not stall the
	// rollback.
	compPolicy = activityPolicy{timeout: quickTimeout,
		initial: 200 * time.Millisecond, backoff: 2, maxInterval: time.Second, attempts: 3, nonRetryable: nonRetryable}
	// A measurement is cheap to drop: on cancel, do not wait for it, so an
	// abort reaches the first compensation in the same workflow task. Its
	// timeout depends on the checks (measureOptions).
	measurePolicy = activityPolicy{initial: 200 * time.Millisecond, attempts: 2, nonRetryable: []string{contract.ErrInvalid}}
	notifyPolicy  = activityPolicy{timeout: 15 * time.Second, initial: time.Second, attempts: 5, nonRetryable: []string{contract.ErrInvalid}}
	// A first run's preflight gives up after a few attempts (nothing ran
	// yet); see preflightOptions for a continued one.
	preflightPolicy = activityPolicy{timeout: 2 * time.Minute,
		initial: time.Second, backoff: 2, maxInterval: 30 * time.Second, attempts: 3}
)

// long is p for an activity that heartbeats through a long call
// (migrations, releases): a long timeout, a short heartbeat timeout.
func (p activityPolicy) long(long bool) activityPolicy {
	if long {
		p.timeout = 30 * time.Minute
		p.heartbeat = heartbeatTimeout
	}
	return p
}

// options are the activity options of p, with the Web UI's summary line.
func (p activityPolicy) options(summary string) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: p.timeout,
		HeartbeatTimeout:    p.heartbeat,
		WaitForCancellation: p.waitForCancel,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        p.initial,
			BackoffCoefficient:     p.backoff,
			MaximumInterval:        p.maxInterval,
			MaximumAttempts:        p.attempts,
			NonRetryableErrorTypes: p.nonRetryable,
		},
	}
}

func captureOptions(summary string) workflow.ActivityOptions { return capturePolicy.options(summary) }

func applyOptions(summary string, long bool) workflow.ActivityOptions {
	return applyPolicy.long(long).options(summary)
}

func compOptions(summary string, long bool) workflow.ActivityOptions {
	return compPolicy.long(long).options(summary)
}

// releaseCaptureOptions: a capture that runs a current command or request,
// bounded by releaseReadTimeout, heartbeating.
func releaseCaptureOptions(summary string) workflow.ActivityOptions {
	p := capturePolicy
	p.timeout, p.heartbeat = releaseReadTimeout, heartbeatTimeout
	return p.options(summary)
}
