package workflows

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/activities"
	"github.com/rollbook/rollbook/runbook"
)

// resumedInput is a real continue-as-new input: the first hop of the long
// runbook, with three compensations carried.
func resumedInput(t *testing.T) Input {
	t.Helper()
	rounds := simulateHistory(t)
	h := newHarness(t)
	h.measure = func(mi activities.MeasureInput) (activities.MeasureResult, error) {
		if mi.Step == "soak" {
			*rounds++
		}
		return healthy(mi), nil
	}
	var clock time.Time
	_, next := hop(t, h, bundleOf(t, longRunbook()), &clock)
	require.NotNil(t, next, "the long runbook continued as new")
	require.Len(t, next.Resume.Comps, 3)
	return *next
}

// copyInput deep-copies an input through JSON, as Temporal hands it over.
func copyInput(t *testing.T, in Input) Input {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayload(in)
	require.NoError(t, err)
	var out Input
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(p, &out))
	return out
}

// Every forged or broken Resume fails fast with a non-retryable error that
// names the field, runs no activity, and never panics or succeeds.
func TestResumeIsChecked(t *testing.T) {
	good := resumedInput(t)
	for name, tc := range map[string]struct {
		change func(r *Resume)
		field  string
	}{
		"step index -1":                {func(r *Resume) { r.StepIndex = -1 }, "resume.stepIndex: -1 is outside"},
		"step index 99":                {func(r *Resume) { r.StepIndex = 99 }, "resume.stepIndex: 99 is outside"},
		"step index not verify":        {func(r *Resume) { r.StepIndex = 1 }, "resume.stepIndex: step 1 (flags) is a consul step"},
		"nil verify":                   {func(r *Resume) { r.Verify = nil }, "resume.verify: required"},
		"verify of another size":       {func(r *Resume) { r.Verify.Trackers = nil }, "resume.verify: state for 0/1 checks"},
		"generation 0":                 {func(r *Resume) { r.Generation = 0 }, "resume.generation: 0"},
		"status without steps":         {func(r *Resume) { r.Status.Steps = nil }, "resume.status.steps: 0 entries"},
		"status of another service":    {func(r *Resume) { r.Status.Service = "other" }, "resume.status.service"},
		"unknown compensation step":    {func(r *Resume) { r.Comps[0].Step = "nope" }, `resume.compensations[0].step: "nope" is not a step`},
		"compensation of a later step": {func(r *Resume) { r.Comps[0].Step = "soak" }, `resume.compensations[0].step: "soak" is not a step before`},
		"compensation of another kind": {func(r *Resume) { r.Comps[1].Step = "schema" }, `resume.compensations[1].kind: "consul" does not undo migrate step`},
		"compensation without action":  {func(r *Resume) { r.Comps[2].Traffic = nil }, "resume.compensations[2]: exactly one of"},
		"compensation on other keys": {func(r *Resume) {
			r.Comps[1].KV.Ops = append(r.Comps[1].KV.Ops, runbook.KVOp{Key: "secret/other", Delete: true})
		}, "resume.compensations[1].kv.ops: not the keys of step"},
		"compensation on another route": {func(r *Resume) { r.Comps[2].Traffic.Route.Backend = "other_be" }, "resume.compensations[2].traffic.route"},
		"compensation already run":      {func(r *Resume) { r.Comps[0].State = CompDone }, `resume.compensations[0].state: "done"`},
		"pivot not irreversible":        {func(r *Resume) { r.Pivot = "flags" }, `resume.pivot: "flags"`},
		"analysis of another size": {func(r *Resume) {
			r.Analysis.Trackers = append(r.Analysis.Trackers, TrackerState{})
		}, "resume.analysis: state for 2/1 checks"},
	} {
		t.Run(name, func(t *testing.T) {
			in := copyInput(t, good)
			tc.change(in.Resume)
			h := newHarness(t)
			h.env.ExecuteWorkflow(Deploy, in)
			require.True(t, h.env.IsWorkflowCompleted())
			err := h.env.GetWorkflowError()
			require.Error(t, err, "a broken resume must not end succeeded")
			var ae *temporal.ApplicationError
			require.True(t, errors.As(err, &ae), "%v", err)
			assert.Equal(t, ErrTypeInvalidResume, ae.Type())
			assert.Contains(t, err.Error(), tc.field)
			assert.Empty(t, h.log, "no activity ran")
		})
	}

	// The unchanged input resumes and finishes.
	h := newHarness(t)
	h.env.ExecuteWorkflow(Deploy, copyInput(t, good))
	require.True(t, h.env.IsWorkflowCompleted())
	err := h.env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	if err != nil && !errors.As(err, &can) {
		t.Fatalf("a valid resume must finish or hop again, got %v", err)
	}
	assert.Contains(t, h.calls(true), "Measure:soak", "the valid resume measured")
}

// A continued run carrying a release compensation resumes; one whose
// release compensation names another target is refused.
func TestResumeWithAReleaseStep(t *testing.T) {
	rounds := simulateHistory(t)
	rb := releaseRunbook()
	rb.Steps[3].Verify.Duration = runbook.Duration(10 * time.Minute)
	b := runbook.Bundle{Runbook: rb, Version: "v2", Source: "test.yaml", StartedBy: runbook.Origin{User: "tester"}}
	hash, err := b.ContentHash()
	require.NoError(t, err)
	b.Hash = hash

	h := newHarness(t)
	withReleases(h, map[string]string{"canary": "v1"})
	h.measure = func(mi activities.MeasureInput) (activities.MeasureResult, error) {
		*rounds++
		return healthy(mi), nil
	}
	var clock time.Time
	_, next := hop(t, h, Input{Bundle: b}, &clock)
	require.NotNil(t, next)
	require.NotNil(t, next.Resume.Comps[0].Release)

	h = newHarness(t)
	withReleases(h, map[string]string{"canary": "v2"})
	h.env.ExecuteWorkflow(Deploy, copyInput(t, *next))
	require.True(t, h.env.IsWorkflowCompleted())
	if err := h.env.GetWorkflowError(); err != nil {
		var can *workflow.ContinueAsNewError
		require.True(t, errors.As(err, &can), "%v", err)
	}

	forged := copyInput(t, *next)
	forged.Resume.Comps[0].Release.Target = "stable"
	h = newHarness(t)
	withReleases(h, map[string]string{"canary": "v2"})
	h.env.ExecuteWorkflow(Deploy, forged)
	require.True(t, h.env.IsWorkflowCompleted())
	err = h.env.GetWorkflowError()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `resume.compensations[0].release: not step "release-canary"'s target and version`)
	assert.Empty(t, h.log)
}
