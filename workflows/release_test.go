package workflows

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/rollbook/rollbook/activities"
	"github.com/rollbook/rollbook/runbook"
)

// releaseMock is a mocked release target: it remembers the version the last
// successful apply or restore left, as a real target does.
type releaseMock struct {
	mu       sync.Mutex
	live     map[string]string
	applies  []activities.ApplyReleaseInput
	restores []activities.RestoreReleaseInput
	apply    func(activities.ApplyReleaseInput) error
	restore  func(activities.RestoreReleaseInput) error
	// applyInfo is the last apply's activity info (its timeouts).
	applyInfo activity.Info
}

func withReleases(h *harness, live map[string]string) *releaseMock {
	m := &releaseMock{live: live}
	var r *activities.Release
	h.env.RegisterActivity(r)
	h.env.OnActivity(r.CaptureRelease, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ReleaseInput) (activities.ReleaseState, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		return activities.ReleaseState{Target: in.Target, Version: m.live[in.Target]}, nil
	})
	h.env.OnActivity(r.ApplyRelease, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.ApplyReleaseInput) (activities.ReleaseResult, error) {
		m.mu.Lock()
		m.applyInfo = activity.GetInfo(ctx)
		m.applies = append(m.applies, in)
		m.mu.Unlock()
		if m.apply != nil {
			if err := m.apply(in); err != nil {
				return activities.ReleaseResult{}, err
			}
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		m.live[in.Target] = in.Version
		return activities.ReleaseResult{Version: in.Version, Previous: in.Captured.Version, Detail: in.Target + ": " + in.Captured.Version + " → " + in.Version + ", healthy"}, nil
	})
	h.env.OnActivity(r.RestoreRelease, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.RestoreReleaseInput) (activities.RestoreResult, error) {
		m.mu.Lock()
		m.restores = append(m.restores, in)
		m.mu.Unlock()
		if m.restore != nil {
			if err := m.restore(in); err != nil {
				return activities.RestoreResult{}, err
			}
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		m.live[in.Target] = in.Captured.Version
		return activities.RestoreResult{Detail: "restored"}, nil
	})
	return m
}

// runRelease runs rb as a bundle without migration files (a runbook
// without migrate steps carries none).
func runRelease(h *harness, rb runbook.Runbook) Result {
	h.t.Helper()
	b := runbook.Bundle{Runbook: rb, Version: "v2", Source: "test.yaml", StartedBy: runbook.Origin{User: "tester"}}
	hash, err := b.ContentHash()
	require.NoError(h.t, err)
	b.Hash = hash
	require.NoError(h.t, b.Check())
	h.env.ExecuteWorkflow(Deploy, Input{Bundle: b})
	require.True(h.t, h.env.IsWorkflowCompleted())
	require.NoError(h.t, h.env.GetWorkflowError())
	var r Result
	require.NoError(h.t, h.env.GetWorkflowResult(&r))
	return r
}

// releaseRunbook releases onto the canary target, shifts traffic to it and
// verifies.
func releaseRunbook() runbook.Runbook {
	rb := testRunbook()
	rb.Steps = []runbook.Step{
		{Name: "release-canary", Release: &runbook.ReleaseStep{Target: "canary"}},
		{Name: "flags", Consul: &runbook.ConsulStep{Set: map[string]string{"app/flag": "on"}, Delete: []string{"app/old"}}},
		{Name: "canary-10", Traffic: &runbook.TrafficStep{Route: "api", Weights: map[string]int{"stable": 90, "canary": 10}}},
		{Name: "verify-10", Verify: &runbook.VerifyStep{Duration: runbook.Duration(30 * time.Second), Interval: runbook.Duration(10 * time.Second),
			Checks: []runbook.Check{{Name: "health", HTTP: &runbook.HTTPCheck{URL: "http://x/healthz"}}}}},
	}
	return rb
}

// The release is applied, a later verification fails: the rollback undoes
// traffic, keys, then the release, putting back the version captured
// before it (from history, not a fresh read).
func TestReleaseCompensatedAfterLaterFailure(t *testing.T) {
	h := newHarness(t)
	m := withReleases(h, map[string]string{"canary": "v1", "stable": "v1"})
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) { return failing(in), nil }
	r := runRelease(h, releaseRunbook())

	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	assert.Equal(t, "verify-10", r.FailedStep)
	assert.Equal(t, []string{
		"CaptureRelease:release-canary", "ApplyRelease:release-canary",
		"CaptureKV:flags", "ApplyKV:flags",
		"CaptureWeights:canary-10", "SetWeights:canary-10",
		"RestoreWeights:canary-10", "RestoreKV:flags", "RestoreRelease:release-canary",
	}, h.calls(false))
	require.Len(t, m.applies, 1)
	assert.Equal(t, "v2", m.applies[0].Version, "the deployment's version by default")
	assert.Equal(t, "v1", m.applies[0].Captured.Version)
	require.Len(t, m.restores, 1)
	in := m.restores[0]
	assert.Equal(t, "v1", in.Captured.Version)
	assert.Equal(t, "v2", in.Applied)
	assert.True(t, in.ApplyDone, "the restore may treat a third version as a conflict")
	assert.Equal(t, 1, in.Attempt)
	assert.Equal(t, "canary", in.Target)
	assert.Contains(t, in.DeploymentID, "/", "the key derives from workflow and run ID")
	assert.Equal(t, map[string]string{"canary": "v1", "stable": "v1"}, m.live)

	require.NotNil(t, r.Steps[0].Captured.Release, "the captured version is in the result for a later revert")
	assert.Equal(t, "v1", r.Steps[0].Captured.Release.Version)
	assert.Equal(t, "v2", r.Steps[0].Captured.ReleaseApplied)
	assert.Equal(t, StepCompensated, r.Steps[0].State)
	assert.Equal(t, "release-canary=done flags=done canary-10=done", compStates(r))
}

// A deploy that fails half-way fails the step at once (non-retryable), and
// the step's own compensation runs: it was pushed before the apply.
func TestReleaseApplyFailureIsCompensated(t *testing.T) {
	h := newHarness(t)
	m := withReleases(h, map[string]string{"canary": "v1"})
	m.apply = func(in activities.ApplyReleaseInput) error {
		m.mu.Lock()
		m.live[in.Target] = "v2-half" // what a half-done deploy leaves
		m.mu.Unlock()
		return temporal.NewNonRetryableApplicationError("deploy command exited with status 3: pulled 1 of 2 images", activities.ErrReleaseFailed, nil)
	}
	rb := releaseRunbook()
	rb.Steps = append([]runbook.Step{rb.Steps[1]}, rb.Steps[0], rb.Steps[2], rb.Steps[3]) // flags first
	r := runRelease(h, rb)

	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	assert.Equal(t, "release-canary", r.FailedStep)
	assert.Contains(t, r.Reason, "pulled 1 of 2 images")
	assert.Equal(t, []string{"CaptureKV:flags", "ApplyKV:flags", "CaptureRelease:release-canary", "ApplyRelease:release-canary",
		"RestoreRelease:release-canary", "RestoreKV:flags"}, h.calls(false), "one apply attempt, then the step itself is undone first")
	require.Len(t, m.restores, 1)
	assert.False(t, m.restores[0].ApplyDone, "the live state of a failed apply is unknown: no conflict check")
	assert.Equal(t, "v1", m.live["canary"])
}

// An explicit version in the step is released instead of the bundle's.
func TestReleaseExplicitVersion(t *testing.T) {
	h := newHarness(t)
	m := withReleases(h, map[string]string{"stable": "v1"})
	rb := testRunbook()
	rb.Steps = []runbook.Step{{Name: "pin-stable", Release: &runbook.ReleaseStep{Target: "stable", Version: "v1.9.3"}}}
	r := runRelease(h, rb)
	assert.Equal(t, OutcomeSucceeded, r.Outcome)
	require.Len(t, m.applies, 1)
	assert.Equal(t, "v1.9.3", m.applies[0].Version)
	assert.Equal(t, "stable: v1 → v1.9.3, healthy", r.Steps[0].Detail)
	assert.Equal(t, StepApplied, r.Steps[0].State)
	assert.Equal(t, CompPending, r.Compensations[0].State)
}

// A restore that fails is retried by the workflow with a new attempt
// number (a new idempotency key), until it succeeds.
func TestReleaseRestoreRetriedWithNewKey(t *testing.T) {
	h := newHarness(t)
	m := withReleases(h, map[string]string{"canary": "v1"})
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) { return failing(in), nil }
	failures := 0
	m.restore = func(activities.RestoreReleaseInput) error {
		if failures < 3 {
			failures++
			return temporal.NewApplicationError("deployment d-7 failed: node drained", activities.ErrReleaseFailed)
		}
		return nil
	}
	r := runRelease(h, releaseRunbook())
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	var attempts []int
	for _, in := range m.restores {
		attempts = append(attempts, in.Attempt)
	}
	// The activity retries an attempt 3 times (same key); the workflow's
	// next attempt brings a new key.
	assert.Equal(t, []int{1, 1, 1, 2}, attempts)
	assert.Equal(t, "v1", m.live["canary"])
	assert.Equal(t, CompDone, r.Compensations[0].State)
}

// A succeeded deployment with a release is reverted from its result: the
// captured version goes back, with the conflict check of an applied step.
func TestRevertRelease(t *testing.T) {
	h := newHarness(t)
	withReleases(h, map[string]string{"canary": "v1"})
	rb := releaseRunbook()
	dep := runRelease(h, rb)
	require.Equal(t, OutcomeSucceeded, dep.Outcome)

	h2 := newHarness(t)
	m := withReleases(h2, map[string]string{"canary": "v2"})
	r, err := runRevert(t, h2, RevertInput{Service: "pay", Version: "v2", RevertedRunID: "run-1", Deployment: dep})
	require.NoError(t, err)
	assert.Equal(t, OutcomeReverted, r.Outcome)
	assert.Equal(t, []string{"RestoreWeights:canary-10", "RestoreKV:flags", "RestoreRelease:release-canary"}, h2.calls(false))
	require.Len(t, m.restores, 1)
	assert.Equal(t, "v1", m.restores[0].Captured.Version)
	assert.True(t, m.restores[0].ApplyDone)
	assert.Equal(t, "v1", m.live["canary"])
}

// An abort while the release's apply runs cancels it and undoes the step:
// its compensation was pushed before the apply. The apply is a long
// activity that heartbeats (so the cancel reaches it) and waits for its
// cancellation (applyOptions), so on a real server the restore never races
// the deploy; the test environment does not wait for a mocked activity, so
// the options are what is checked here.
func TestAbortDuringReleaseApply(t *testing.T) {
	h := newHarness(t)
	m := withReleases(h, map[string]string{"canary": "v1"})
	m.apply = func(in activities.ApplyReleaseInput) error {
		h.env.SignalWorkflow(SignalAbort, AbortSignal{Reason: "bad canary", By: "alice"})
		time.Sleep(100 * time.Millisecond)
		return nil
	}
	r := runRelease(h, releaseRunbook())
	assert.Equal(t, OutcomeAborted, r.Outcome)
	assert.Equal(t, []string{"CaptureRelease:release-canary", "ApplyRelease:release-canary", "RestoreRelease:release-canary"}, h.calls(false))
	require.Len(t, m.restores, 1)
	assert.False(t, m.restores[0].ApplyDone, "the apply did not report success: no conflict check")
	assert.Equal(t, "v1", m.live["canary"])
	assert.Equal(t, heartbeatTimeout, m.applyInfo.HeartbeatTimeout)
	assert.Equal(t, 30*time.Minute, m.applyInfo.StartToCloseTimeout)
	assert.True(t, applyOptions("", true).WaitForCancellation)
}
