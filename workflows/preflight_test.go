package workflows

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/rollbook/rollbook/activities"
)

// A refused preflight ends the deployment before any capture or apply, with
// every problem in the result and the status.
func TestPreflightRefusesBeforeAnyChange(t *testing.T) {
	h := newHarness(t)
	var got activities.PreflightInput
	h.preflight = func(in activities.PreflightInput) (activities.PreflightResult, error) {
		got = in
		return activities.PreflightResult{Problems: []string{
			`routes[0].router: unknown router "edge" (this worker knows: none)`,
			`steps[0].migrate.database: database "db" does not answer: connection refused`,
		}}, nil
	}
	r := h.run(testRunbook())

	assert.Equal(t, OutcomeRefused, r.Outcome)
	assert.Equal(t, []string{"Preflight:preflight"}, h.log, "nothing but the preflight ran")
	assert.Len(t, r.Problems, 2)
	assert.Contains(t, r.Reason, "nothing was changed (2 problems)")
	assert.Contains(t, r.Reason, `unknown router "edge"`)
	assert.Contains(t, r.Reason, `database "db" does not answer`)
	assert.Empty(t, r.Compensations)
	for _, s := range r.Steps {
		assert.Equal(t, StepPending, s.State, s.Name)
	}
	st := h.query()
	assert.Equal(t, OutcomeRefused, st.Phase)
	assert.Equal(t, r.Problems, st.Problems)

	// The activity gets the bundle's names, hash and signature, not its
	// migration files (they were checked with the hash already).
	assert.Empty(t, got.Bundle.Files)
	assert.NotEmpty(t, got.Bundle.Hash)
	assert.Equal(t, "pay", got.Bundle.Runbook.Service)
	assert.False(t, got.SignatureOnly)
}

func TestPreflightPassesThenDeploys(t *testing.T) {
	h := newHarness(t)
	h.preflight = func(activities.PreflightInput) (activities.PreflightResult, error) {
		return activities.PreflightResult{SignedBy: "0123456789abcdef"}, nil
	}
	h.at(time.Minute, func() { h.signal(SignalApprove, ApproveSignal{}) })
	r := h.run(testRunbook())
	assert.Equal(t, OutcomeSucceeded, r.Outcome)
	assert.Equal(t, "Preflight:preflight", h.log[0], "the preflight runs first")
	assert.Equal(t, forwardAll, h.calls(false))
	assert.Equal(t, "0123456789abcdef", r.SignedBy)
}

// A preflight that cannot run at all refuses too: nothing was changed yet.
func TestPreflightErrorRefuses(t *testing.T) {
	h := newHarness(t)
	h.preflight = func(activities.PreflightInput) (activities.PreflightResult, error) {
		return activities.PreflightResult{}, temporal.NewNonRetryableApplicationError("worker broken", "X", nil)
	}
	r := h.run(testRunbook())
	assert.Equal(t, OutcomeRefused, r.Outcome)
	assert.Contains(t, r.Reason, "preflight could not run")
	assert.Equal(t, []string{"Preflight:preflight"}, h.log)
}

// An abort that arrives while the preflight runs ends the deployment as
// aborted with nothing to undo.
func TestAbortDuringPreflight(t *testing.T) {
	h := newHarness(t)
	h.preflight = func(activities.PreflightInput) (activities.PreflightResult, error) {
		time.Sleep(200 * time.Millisecond)
		return activities.PreflightResult{}, nil
	}
	h.at(time.Millisecond, func() { h.signal(SignalAbort, AbortSignal{Reason: "stop"}) })
	r := h.run(testRunbook())
	assert.Equal(t, OutcomeAborted, r.Outcome)
	assert.Empty(t, h.calls(false), "no step ran")
}

// A continued run re-checks only the signature of its input; an untrusted
// one fails without running the compensations it carries.
func TestResumedRunWithUntrustedInputRunsNothing(t *testing.T) {
	h := newHarness(t)
	in := resumedInput(t)
	var got activities.PreflightInput
	h.preflight = func(pi activities.PreflightInput) (activities.PreflightResult, error) {
		got = pi
		return activities.PreflightResult{Problems: []string{"signature: bundle is not signed"}}, nil
	}
	h.env.ExecuteWorkflow(Deploy, in)
	require.True(t, h.env.IsWorkflowCompleted())
	err := h.env.GetWorkflowError()
	require.Error(t, err)
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "%v", err)
	assert.Equal(t, ErrTypeUntrustedResume, ae.Type())
	assert.Contains(t, err.Error(), "bundle is not signed")
	assert.True(t, got.SignatureOnly)
	assert.Empty(t, h.calls(false), "no compensation ran")
}
