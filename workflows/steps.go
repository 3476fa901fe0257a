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

func captureOptions(summary string) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: quickTimeout,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        500 * time.Millisecond,
			BackoffCoefficient:     2,
			MaximumInterval:        10 * time.Second,
			MaximumAttempts:        5,
			NonRetryableErrorTypes: nonRetryable,
		},
	}
}

// applyOptions wait for cancellation: an abort that arrives while an apply
// runs must not let the step's compensation race the apply.
func applyOptions(summary string, long bool) workflow.ActivityOptions {
	o := workflow.ActivityOptions{
		StartToCloseTimeout: quickTimeout,
		WaitForCancellation: true,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        500 * time.Millisecond,
			BackoffCoefficient:     2,
			MaximumInterval:        5 * time.Second,
			MaximumAttempts:        3,
			NonRetryableErrorTypes: nonRetryable,
		},
	}
	if long {
		o.StartToCloseTimeout = 30 * time.Minute
		o.HeartbeatTimeout = heartbeatTimeout
	}
	return o
}

func (d *deployment) ref(step string) contract.StepRef {
	return contract.StepRef{DeploymentID: d.id, Step: step}
}

func (d *deployment) push(c Compensation) int {
	c.State = CompPending
	d.comps = append(d.comps, c)
	return len(d.comps) - 1
}
