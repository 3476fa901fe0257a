package workflows

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/rollbook/rollbook/activities"
	"github.com/rollbook/rollbook/runbook"
)

// undoAll is the rollback of a deployment that reached canary-10: reverse
// order, traffic first.
var undoAll = []string{"RestoreWeights:canary-10", "RestoreKV:flags", "MigrateDown:schema"}

func seq(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestSuccess(t *testing.T) {
	h := newHarness(t)
	var phases []Phase
	h.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		p, _ := sa.GetKeyword(SAPhase)
		svc, _ := sa.GetKeyword(SAService)
		ver, _ := sa.GetKeyword(SAVersion)
		assert.Equal(t, "pay", svc)
		assert.Equal(t, "v2", ver)
		phases = append(phases, Phase(p))
	}).Return(nil)
	h.phaseAt(15 * time.Second)
	h.phaseAt(35 * time.Second)
	h.at(35*time.Second, func() {
		st := h.query()
		assert.Equal(t, "approval of step approval", st.WaitingFor)
		assert.Equal(t, "approval", st.CurrentStep)
		assert.NotEmpty(t, st.Rounds)
		assert.Len(t, st.Compensations, 3)
	})
	h.at(40*time.Second, func() { h.signal(SignalApprove, ApproveSignal{Step: "approval", By: "alice"}) })
	r := h.run(testRunbook())

	assert.Equal(t, OutcomeSucceeded, r.Outcome)
	assert.Equal(t, forwardAll, h.calls(false))
	assert.Equal(t, []Phase{PhaseVerifying, PhasePaused}, h.phases)
	assert.Equal(t, []Phase{PhaseDeploying, PhaseVerifying, PhaseDeploying, PhasePaused, PhaseDeploying, PhaseVerifying, OutcomeSucceeded}, phases)
	for _, c := range r.Compensations {
		assert.Equal(t, CompPending, c.State, "no compensation runs on success")
	}
	require.Len(t, r.Steps, 7)
	assert.Equal(t, int64(1), r.Steps[0].Captured.Schema.Version, "captured state is in the result for a later revert")
	assert.Equal(t, 100, r.Steps[2].Captured.Weights.Weights["stable"])
	for _, s := range r.Steps {
		assert.Contains(t, []StepState{StepApplied, StepPassed}, s.State, s.Name)
	}
}

func TestApplyFailureOfEachKind(t *testing.T) {
	hard := temporal.NewNonRetryableApplicationError("boom", "Boom", nil)
	cases := []struct {
		name  string
		setup func(h *harness)
		want  []string
		step  string
	}{
		{"migrate", func(h *harness) {
			h.migrateUp = func(activities.MigrateUpInput) (activities.MigrateResult, error) {
				return activities.MigrateResult{}, hard
			}
		}, []string{"CaptureSchema:schema", "MigrateUp:schema", "MigrateDown:schema"}, "schema"},
		{"consul", func(h *harness) {
			h.applyKV = func(activities.KVApplyInput) (activities.KVState, error) { return activities.KVState{}, hard }
		}, []string{"CaptureSchema:schema", "MigrateUp:schema", "CaptureKV:flags", "ApplyKV:flags", "RestoreKV:flags", "MigrateDown:schema"}, "flags"},
		{"traffic", func(h *harness) {
			h.setWeights = func(activities.SetWeightsInput) (activities.WeightState, error) {
				return activities.WeightState{}, hard
			}
		}, seq(forwardAll[:6], undoAll), "canary-10"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			tc.setup(h)
			r := h.run(testRunbook())
			assert.Equal(t, OutcomeRolledBack, r.Outcome)
			assert.Equal(t, tc.step, r.FailedStep)
			assert.Equal(t, tc.want, h.calls(false))
			assert.Contains(t, r.Reason, "boom")
		})
	}
}

// A step whose apply fails half-way (the error comes after part of the
// change) is undone itself, before the earlier steps, and is not merged
// with the earlier traffic step because its live state is unknown.
func TestHalfAppliedStepIsCompensated(t *testing.T) {
	h := newHarness(t)
	h.at(40*time.Second, func() { h.signal(SignalApprove, nil) })
	h.setWeights = func(in activities.SetWeightsInput) (activities.WeightState, error) {
		if in.Step == "canary-100" {
			return activities.WeightState{}, temporal.NewNonRetryableApplicationError("socket closed after first server", "Boom", nil)
		}
		return activities.WeightState{Weights: in.Weights}, nil
	}
	r := h.run(testRunbook())
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	assert.Equal(t, seq(forwardAll, []string{"RestoreWeights:canary-100"}, undoAll), h.calls(false))
	assert.Equal(t, "canary-100", r.FailedStep)
}

func TestVerifyFailureRollsBack(t *testing.T) {
	h := newHarness(t)
	round := 0
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) {
		round++
		if round >= 2 {
			return failing(in), nil
		}
		return healthy(in), nil
	}
	var restored activities.RestoreWeightsInput
	h.restoreWeights = func(in activities.RestoreWeightsInput) (activities.RestoreResult, error) {
		restored = in
		return activities.RestoreResult{}, nil
	}
	r := h.run(testRunbook())
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	assert.Equal(t, "verify-10", r.FailedStep)
	assert.Contains(t, r.Reason, "check health failed: status 500, want 200")
	assert.Equal(t, seq(forwardAll[:6], undoAll), h.calls(false))
	assert.Equal(t, 100, restored.Captured.Weights["stable"], "restore uses the captured weights from history")
	assert.Equal(t, "flags=done canary-10=done", compStates(r)[len("schema=done "):])
	assert.False(t, r.RollbackStartedAt.IsZero())
}

func TestFailureLimitTolerated(t *testing.T) {
	h := newHarness(t)
	rb := testRunbook()
	rb.Steps[3].Verify.Checks[0].FailureLimit = 1
	round := 0
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) {
		round++
		if in.Step == "verify-10" && round == 2 {
			return failing(in), nil
		}
		return healthy(in), nil
	}
	h.at(40*time.Second, func() { h.signal(SignalApprove, nil) })
	r := h.run(rb)
	assert.Equal(t, OutcomeSucceeded, r.Outcome)
}

func TestBackgroundAnalysisFailureDuringLaterStep(t *testing.T) {
	h := newHarness(t)
	rb := testRunbook()
	rb.Analysis = &runbook.Analysis{From: "canary-10", Interval: runbook.Duration(5 * time.Second),
		Checks: []runbook.Check{{Name: "canary-5xx", Router: &runbook.RouterCheck{Route: "api", Subset: "canary", MaxErrorRate: 0.01}}}}
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) {
		if in.Step != "analysis" {
			return healthy(in), nil
		}
		m := activities.Measurement{Check: "canary-5xx", Kind: "router", Requests: 100, Errors: 0}
		if in.Round == 1 {
			m.BaselineRound = true
		}
		if in.Round >= 9 { // about 40 s in: while waiting for approval
			m.Errors = 7
		}
		return activities.MeasureResult{Measurements: []activities.Measurement{m}}, nil
	}
	r := h.run(rb)
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	assert.Contains(t, r.Reason, "background analysis")
	assert.Contains(t, r.Reason, "error rate 7.00%")
	assert.Equal(t, "approval", r.FailedStep)
	assert.Equal(t, seq(forwardAll[:6], undoAll), h.calls(false))
	assert.Equal(t, StepCancelled, r.Steps[4].State)
}

func TestAbort(t *testing.T) {
	cases := []struct {
		name  string
		at    time.Duration
		rb    func() runbook.Runbook
		want  []string
		phase Phase
	}{
		{"while verifying", 15 * time.Second, testRunbook, seq(forwardAll[:6], undoAll), PhaseVerifying},
		{"while waiting for approval", 45 * time.Second, testRunbook, seq(forwardAll[:6], undoAll), PhasePaused},
		{"while paused", 45 * time.Second, func() runbook.Runbook {
			rb := testRunbook()
			rb.Steps[4] = runbook.Step{Name: "approval", Pause: &runbook.PauseStep{Duration: runbook.Duration(time.Hour)}}
			return rb
		}, seq(forwardAll[:6], undoAll), PhasePaused},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.phaseAt(tc.at - time.Second)
			h.at(tc.at, func() { h.signal(SignalAbort, AbortSignal{Reason: "bad dashboards", By: "bob"}) })
			r := h.run(tc.rb())
			assert.Equal(t, OutcomeAborted, r.Outcome)
			assert.Equal(t, "aborted by bob: bad dashboards", r.Reason)
			assert.Equal(t, tc.want, h.calls(false))
			assert.Equal(t, []Phase{tc.phase}, h.phases)
		})
	}
}

// An abort that arrives while an apply runs waits for the apply to finish
// (WaitForCancellation) and then undoes that step too.
func TestAbortWhileApplying(t *testing.T) {
	h := newHarness(t)
	h.migrateUp = func(activities.MigrateUpInput) (activities.MigrateResult, error) {
		// The abort lands while the apply runs; the apply still finishes.
		h.env.SignalWorkflow(SignalAbort, AbortSignal{Reason: "stop"})
		time.Sleep(200 * time.Millisecond)
		return activities.MigrateResult{From: 1, To: 2}, nil
	}
	r := h.run(testRunbook())
	assert.Equal(t, OutcomeAborted, r.Outcome)
	calls := h.calls(false)
	require.GreaterOrEqual(t, len(calls), 3)
	assert.Equal(t, []string{"CaptureSchema:schema", "MigrateUp:schema"}, calls[:2])
	assert.Equal(t, []string{"CaptureSchema:schema", "MigrateUp:schema", "MigrateDown:schema"}, calls,
		"the step's own compensation runs after its apply stopped, and nothing later starts")
	assert.Equal(t, "schema", r.FailedStep)
}

func TestAbortWhileRollingBackIsNoop(t *testing.T) {
	h := newHarness(t)
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) { return failing(in), nil }
	fails := 0
	h.restoreKV = func(activities.KVRestoreInput) (activities.RestoreResult, error) {
		fails++
		if fails <= 3 {
			return activities.RestoreResult{}, errors.New("consul: connection refused")
		}
		return activities.RestoreResult{}, nil
	}
	h.at(2*time.Second, func() { h.signal(SignalAbort, AbortSignal{Reason: "late"}) })
	r := h.run(testRunbook())
	assert.Equal(t, OutcomeRolledBack, r.Outcome, "the abort does not change the outcome")
	assert.NotContains(t, r.Reason, "late")
	assert.Equal(t, seq(forwardAll[:6], []string{"RestoreWeights:canary-10", "RestoreKV:flags", "RestoreKV:flags", "RestoreKV:flags", "RestoreKV:flags", "MigrateDown:schema"}), h.calls(false))
}

func TestWorkflowCancellationStillRollsBack(t *testing.T) {
	h := newHarness(t)
	h.at(15*time.Second, func() { h.env.CancelWorkflow() })
	r := h.run(testRunbook())
	assert.Equal(t, OutcomeAborted, r.Outcome)
	assert.Equal(t, "workflow cancellation requested", r.Reason)
	assert.Equal(t, seq(forwardAll[:6], undoAll), h.calls(false))
	assert.Equal(t, "schema=done flags=done canary-10=done", compStates(r))
}

func TestCompensationRetriesThenSucceeds(t *testing.T) {
	h := newHarness(t)
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) { return failing(in), nil }
	fails := 0
	h.restoreKV = func(activities.KVRestoreInput) (activities.RestoreResult, error) {
		fails++
		if fails <= 5 {
			return activities.RestoreResult{}, errors.New("consul: 500 leader lost")
		}
		return activities.RestoreResult{Detail: "restored 2 keys"}, nil
	}
	r := h.run(testRunbook())
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	kvCalls := 0
	for _, c := range h.calls(false) {
		if c == "RestoreKV:flags" {
			kvCalls++
		}
	}
	assert.Equal(t, 6, kvCalls)
	assert.Equal(t, "schema=done flags=done canary-10=done", compStates(r))
	assert.Equal(t, "restored 2 keys", r.Compensations[1].Detail)
}

func TestStuckThenRetry(t *testing.T) {
	h := newHarness(t)
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) { return failing(in), nil }
	n := 0
	h.restoreKV = func(activities.KVRestoreInput) (activities.RestoreResult, error) {
		n++
		if n == 1 {
			return activities.RestoreResult{}, conflict("key app/flag changed since our write (index 12, we wrote 11)")
		}
		return activities.RestoreResult{}, nil
	}
	h.at(60*time.Second, func() {
		st := h.query()
		assert.Equal(t, PhaseRollbackStuck, st.Phase)
		assert.Contains(t, st.WaitingFor, "retry or skip the compensation of step flags")
		assert.Contains(t, st.Reason, "app/flag changed")
		h.signal(SignalSkip, OperatorSignal{Step: "schema"}) // wrong step: ignored
		h.signal(SignalRetry, OperatorSignal{By: "carol"})
	})
	r := h.run(testRunbook())
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	assert.Equal(t, seq(forwardAll[:6], []string{"RestoreWeights:canary-10", "RestoreKV:flags", "RestoreKV:flags", "MigrateDown:schema"}), h.calls(false))
}

func TestStuckThenSkip(t *testing.T) {
	h := newHarness(t)
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) { return failing(in), nil }
	h.restoreKV = func(activities.KVRestoreInput) (activities.RestoreResult, error) {
		return activities.RestoreResult{}, conflict("key app/flag changed by someone else")
	}
	h.at(60*time.Second, func() { h.signal(SignalSkip, OperatorSignal{Step: "flags", By: "dave"}) })
	r := h.run(testRunbook())
	assert.Equal(t, OutcomeRollbackFailed, r.Outcome)
	assert.Contains(t, r.Reason, "skipped")
	assert.Equal(t, seq(forwardAll[:6], undoAll), h.calls(false), "the later compensations still run")
	assert.Equal(t, "schema=done flags=skipped canary-10=done", compStates(r))
	assert.Equal(t, StepSkipped, r.Steps[1].State)
}

func TestIrreversibleThenFailureIsFailedAfterCommit(t *testing.T) {
	h := newHarness(t)
	rb := testRunbook()
	rb.Steps[1].Irreversible = true
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) { return failing(in), nil }
	r := h.run(rb)
	assert.Equal(t, OutcomeFailedAfterCommit, r.Outcome)
	assert.Equal(t, "flags", r.PointOfNoReturn)
	assert.Equal(t, forwardAll[:6], h.calls(false), "no compensation runs after the point of no return")
	assert.Equal(t, StepCommitted, r.Steps[1].State)
	assert.Equal(t, "schema=discarded flags=discarded canary-10=pending", compStates(r))
}

func TestDeadlineRollsBack(t *testing.T) {
	h := newHarness(t)
	rb := testRunbook()
	rb.Deadline = runbook.Duration(45 * time.Second)
	r := h.run(rb) // nobody approves
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	assert.Contains(t, r.Reason, "deadline of 45s exceeded")
	assert.Equal(t, seq(forwardAll[:6], undoAll), h.calls(false))
}

func TestApprovalTimeoutRollsBack(t *testing.T) {
	h := newHarness(t)
	rb := testRunbook()
	rb.Steps[4].Pause.Timeout = runbook.Duration(time.Minute)
	r := h.run(rb)
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	assert.Contains(t, r.Reason, "no approval within 1m0s")
}

func TestPauseResumeAndApprove(t *testing.T) {
	h := newHarness(t)
	h.at(5*time.Second, func() { h.signal(SignalPause, OperatorSignal{By: "erin"}) })
	h.at(6*time.Second, func() { h.signal(SignalPause, nil) }) // already paused: ignored
	h.phaseAt(45 * time.Second)
	h.at(50*time.Second, func() { h.signal(SignalApprove, ApproveSignal{}) }) // nothing waits yet: ignored
	h.at(60*time.Second, func() { h.signal(SignalResume, nil) })
	h.phaseAt(70 * time.Second)
	h.at(75*time.Second, func() { h.signal(SignalApprove, ApproveSignal{Step: "canary-100"}) }) // wrong step: ignored
	h.at(80*time.Second, func() {
		st := h.query()
		assert.Equal(t, "approval of step approval", st.WaitingFor)
		h.signal(SignalApprove, ApproveSignal{Step: "approval"})
	})
	h.at(81*time.Second, func() {
		st := h.query()
		var whys []string
		for _, ig := range st.Ignored {
			whys = append(whys, ig.Signal+": "+ig.Why)
		}
		assert.Equal(t, []string{
			"pause: already paused",
			"approve: no step is waiting for approval",
			`approve: step "canary-100" is not waiting for approval (waiting: approval)`,
		}, whys)
	})
	r := h.run(testRunbook())
	assert.Equal(t, OutcomeSucceeded, r.Outcome)
	assert.Equal(t, []Phase{PhasePaused, PhasePaused}, h.phases)
	// The paused time is visible in the timings: approval started after resume.
	assert.GreaterOrEqual(t, r.Steps[4].StartedAt.Sub(r.StartedAt), 60*time.Second)
}

func TestBadSignalsChangeNothing(t *testing.T) {
	h := newHarness(t)
	h.at(5*time.Second, func() {
		h.signal(SignalAbort, "not an object")
		h.signal(SignalApprove, map[string]any{"step": 42})
		h.signal(SignalSkip, nil)
		h.signal(SignalRetry, OperatorSignal{})
		h.signal(SignalResume, nil)
	})
	h.at(6*time.Second, func() {
		st := h.query()
		require.Len(t, st.Ignored, 5)
		assert.Contains(t, st.Ignored[0].Why, "malformed payload")
		assert.Contains(t, st.Ignored[1].Why, "malformed payload")
		assert.Equal(t, "no compensation is stuck", st.Ignored[2].Why)
		assert.Equal(t, "no compensation is stuck", st.Ignored[3].Why)
		assert.Equal(t, "not paused", st.Ignored[4].Why)
		assert.Equal(t, PhaseVerifying, st.Phase)
	})
	h.at(10*time.Second, func() { h.signal(SignalAbort, AbortSignal{Reason: strings.Repeat("x", 10000)}) })
	r := h.run(testRunbook())
	assert.Equal(t, OutcomeAborted, r.Outcome)
	assert.Less(t, len(r.Reason), 700, "huge reasons are truncated")
}

// Consecutive traffic steps on one route are undone in one write, straight
// back to the weights captured before the first of them.
func TestTrafficRestoreIsMergedAndFirst(t *testing.T) {
	h := newHarness(t)
	h.at(40*time.Second, func() { h.signal(SignalApprove, nil) })
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) {
		if in.Step == "verify-100" {
			return failing(in), nil
		}
		return healthy(in), nil
	}
	h.captureWeights = func(in activities.TrafficInput) (activities.WeightState, error) {
		if in.Step == "canary-100" {
			return activities.WeightState{Weights: map[string]int{"stable": 90, "canary": 10}}, nil
		}
		return activities.WeightState{Weights: map[string]int{"stable": 100, "canary": 0}}, nil
	}
	var got []activities.RestoreWeightsInput
	h.restoreWeights = func(in activities.RestoreWeightsInput) (activities.RestoreResult, error) {
		got = append(got, in)
		return activities.RestoreResult{}, nil
	}
	r := h.run(testRunbook())
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	assert.Equal(t, seq(forwardAll, []string{"RestoreWeights:canary-100", "RestoreKV:flags", "MigrateDown:schema"}), h.calls(false))
	require.Len(t, got, 1)
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, got[0].Captured.Weights)
	assert.Equal(t, map[string]int{"stable": 0, "canary": 100}, got[0].Applied)
	assert.Equal(t, []string{"canary-10"}, r.Compensations[3].Merged)
	assert.Equal(t, "schema=done flags=done canary-10=done canary-100=done", compStates(r))
}

func TestGradualRestore(t *testing.T) {
	h := newHarness(t)
	rb := testRunbook()
	rb.Steps[2].Traffic.Weights = map[string]int{"stable": 20, "canary": 80}
	rb.Rollback = &runbook.RollbackOptions{Traffic: &runbook.GradualRestore{Steps: []int{50, 10}, Interval: runbook.Duration(5 * time.Second)}}
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) { return failing(in), nil }
	var got []activities.RestoreWeightsInput
	h.restoreWeights = func(in activities.RestoreWeightsInput) (activities.RestoreResult, error) {
		got = append(got, in)
		return activities.RestoreResult{}, nil
	}
	r := h.run(rb)
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	require.Len(t, got, 3)
	assert.Equal(t, map[string]int{"stable": 50, "canary": 50}, got[0].Target)
	assert.Equal(t, map[string]int{"stable": 90, "canary": 10}, got[1].Target)
	assert.Equal(t, map[string]int{"stable": 50, "canary": 50}, got[1].Expect)
	assert.Nil(t, got[2].Target, "the last stage restores the captured weights")
	assert.True(t, got[2].CheckCapacity)
	require.Len(t, r.Compensations, 3)
	assert.Equal(t, CompDone, r.Compensations[2].State)
}

// A first stage that finds its weights already set (a retry after a lost
// answer) does not make the whole gradual restore "already restored" when
// the later stages wrote.
func TestGradualRestoreThatWroteIsDone(t *testing.T) {
	h := newHarness(t)
	rb := testRunbook()
	rb.Steps[2].Traffic.Weights = map[string]int{"stable": 20, "canary": 80}
	rb.Rollback = &runbook.RollbackOptions{Traffic: &runbook.GradualRestore{Steps: []int{50, 10}, Interval: runbook.Duration(5 * time.Second)}}
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) { return failing(in), nil }
	n := 0
	h.restoreWeights = func(in activities.RestoreWeightsInput) (activities.RestoreResult, error) {
		n++
		return activities.RestoreResult{AlreadyRestored: n == 1, Detail: fmt.Sprintf("stage %d", n)}, nil
	}
	r := h.run(rb)
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	require.Len(t, r.Compensations, 3)
	c := r.Compensations[2]
	assert.Equal(t, "canary-10", c.Step)
	assert.Equal(t, CompDone, c.State, "the later stages wrote")
	assert.Equal(t, "stage 3", c.Detail)
}

func TestInvalidBundleIsRefused(t *testing.T) {
	h := newHarness(t)
	b := bundleOf(t, testRunbook())
	b.Files[0].Content += "-- tampered\n"
	h.env.ExecuteWorkflow(Deploy, b)
	err := h.env.GetWorkflowError()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid bundle")
	assert.Empty(t, h.calls(true), "nothing is touched")
}

// A traffic step that captures weights other than those the previous
// traffic step on its route left (HAProxy restarted without its saved
// state) writes nothing and fails the deployment instead of building on
// the wrong state.
func TestTrafficCaptureDetectsLostWeights(t *testing.T) {
	h := newHarness(t)
	h.at(40*time.Second, func() { h.signal(SignalApprove, nil) })
	h.captureWeights = func(in activities.TrafficInput) (activities.WeightState, error) {
		// canary-10 left 90/10; the router came back at its configuration.
		return activities.WeightState{Weights: map[string]int{"stable": 100, "canary": 0}}, nil
	}
	r := h.run(testRunbook())
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	assert.Equal(t, "canary-100", r.FailedStep)
	assert.Contains(t, r.Reason, "route api is at canary=0% stable=100%, but step canary-10 left it at canary=10% stable=90%")
	assert.NotContains(t, h.calls(false), "SetWeights:canary-100", "nothing was written")
	assert.Equal(t, seq(forwardAll[:6], []string{"CaptureWeights:canary-100"}, undoAll), h.calls(false))
}
