package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/activities"
)

// succeeded runs the test runbook to success and returns its result.
func succeeded(t *testing.T) Result {
	h := newHarness(t)
	h.at(40*time.Second, func() { h.signal(SignalApprove, nil) })
	r := h.run(testRunbook())
	require.Equal(t, OutcomeSucceeded, r.Outcome)
	return r
}

func runRevert(t *testing.T, h *harness, in RevertInput) (Result, error) {
	h.env.ExecuteWorkflow(Revert, in)
	require.True(t, h.env.IsWorkflowCompleted())
	if err := h.env.GetWorkflowError(); err != nil {
		return Result{}, err
	}
	var r Result
	require.NoError(t, h.env.GetWorkflowResult(&r))
	return r, nil
}

func TestRevertUndoesASucceededDeployment(t *testing.T) {
	dep := succeeded(t)
	h := newHarness(t)
	var got []activities.RestoreWeightsInput
	h.restoreWeights = func(in activities.RestoreWeightsInput) (activities.RestoreResult, error) {
		got = append(got, in)
		return activities.RestoreResult{}, nil
	}
	var kvIn activities.KVRestoreInput
	h.restoreKV = func(in activities.KVRestoreInput) (activities.RestoreResult, error) {
		kvIn = in
		return activities.RestoreResult{}, nil
	}
	r, err := runRevert(t, h, RevertInput{Service: "pay", Version: "v2", RevertedRunID: "run-1", By: "alice", Deployment: dep})
	require.NoError(t, err)
	assert.Equal(t, OutcomeReverted, r.Outcome)
	assert.Equal(t, []string{"RestoreWeights:canary-100", "RestoreKV:flags", "MigrateDown:schema"}, h.calls(false))
	require.Len(t, got, 1, "both traffic steps are undone in one write")
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, got[0].Captured.Weights)
	assert.Equal(t, map[string]int{"stable": 0, "canary": 100}, got[0].Applied)
	require.NotNil(t, kvIn.Applied, "the restore checks against the indexes the deployment wrote")
	assert.EqualValues(t, 11, kvIn.Applied.Entries[0].ModifyIndex)
	assert.Contains(t, r.Reason, "requested by alice")
}

func TestRevertConflictIsNotOverwritten(t *testing.T) {
	dep := succeeded(t)
	h := newHarness(t)
	h.restoreKV = func(activities.KVRestoreInput) (activities.RestoreResult, error) {
		return activities.RestoreResult{}, conflict("key app/flag changed since the deployment")
	}
	h.at(time.Minute, func() {
		st := h.query()
		assert.Equal(t, PhaseRollbackStuck, st.Phase)
		h.signal(SignalSkip, OperatorSignal{Step: "flags"})
	})
	r, err := runRevert(t, h, RevertInput{Service: "pay", Version: "v2", Deployment: dep})
	require.NoError(t, err)
	assert.Equal(t, OutcomeRollbackFailed, r.Outcome)
	assert.Equal(t, "schema=done flags=skipped canary-10=done canary-100=done", compStates(r))
}

func TestRevertRefusesPastThePointOfNoReturn(t *testing.T) {
	dep := succeeded(t)
	dep.PointOfNoReturn = "contract"
	assert.Contains(t, Revertible(dep), "point of no return")
	h := newHarness(t)
	_, err := runRevert(t, h, RevertInput{Service: "pay", Deployment: dep})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot revert")
	assert.Empty(t, h.calls(true))

	dep.PointOfNoReturn = ""
	dep.Outcome = OutcomeRolledBack
	assert.Contains(t, Revertible(dep), "only a succeeded deployment")
}
