package workflows

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/activities"
	"github.com/rollbook/rollbook/runbook"
)

func continuousCheck(name string, failureLimit int) runbook.Check {
	return runbook.Check{Name: name, Continuous: true, FailureLimit: failureLimit, Window: runbook.Duration(time.Second),
		Router: &runbook.RouterCheck{Route: "api", Subset: "canary", MaxErrorRate: 0.05, MinRequests: 10}}
}

// watchRunbook: verify-10 has a continuous check beside its http check, and
// the analysis (from canary-10) watches the canary continuously.
func watchRunbook(analysisLimit int) runbook.Runbook {
	rb := testRunbook()
	v := rb.Steps[3].Verify
	v.Checks = append(v.Checks, continuousCheck("canary-errors", 0))
	rb.Analysis = &runbook.Analysis{From: "canary-10", Interval: runbook.Duration(2 * time.Second),
		Checks: []runbook.Check{continuousCheck("canary-error-rate", analysisLimit)}}
	return rb
}

func trip(check string) activities.WatchResult {
	return activities.WatchResult{Tripped: check, Requests: 40, Errors: 20, WindowMs: 1000,
		Reason: "check " + check + " failed: error rate 50.00% (20/40) over the last 1s above maxErrorRate 5.00%"}
}

// recordMeasured makes h.measure note every check it is asked to measure.
func recordMeasured(h *harness) *[]string {
	var mu sync.Mutex
	var names []string
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) {
		mu.Lock()
		for _, c := range in.Checks {
			names = append(names, in.Step+"/"+c.Name)
		}
		mu.Unlock()
		return healthy(in), nil
	}
	return &names
}

func TestWatchHealthyDeploymentSucceeds(t *testing.T) {
	h := newHarness(t)
	measured := recordMeasured(h)
	h.at(40*time.Second, func() { h.signal(SignalApprove, ApproveSignal{By: "t"}) })
	r := h.run(watchRunbook(0))
	require.Equal(t, OutcomeSucceeded, r.Outcome, r.Reason)
	calls := h.calls(false)
	require.Contains(t, calls, "WatchRouter:verify-10")
	require.Contains(t, calls, "WatchRouter:analysis")
	// The analysis's watch starts with its from step, before the traffic
	// change: its first reading is the baseline of the canary's traffic.
	require.Less(t, slices.Index(calls, "WatchRouter:analysis"), slices.Index(calls, "SetWeights:canary-10"))
	for _, m := range *measured {
		require.NotContains(t, m, "canary-error", "a continuous check is never measured in rounds")
	}
	require.Contains(t, *measured, "verify-10/health", "the step's other checks keep their rounds")
	var verifyWatch *activities.WatchInput
	for i := range h.watches {
		if h.watches[i].Step == "verify-10" {
			verifyWatch = &h.watches[i]
		}
	}
	require.NotNil(t, verifyWatch)
	require.Equal(t, 10*time.Second, verifyWatch.DefaultWindow, "default window: the step's interval")
	require.False(t, verifyWatch.Until.IsZero(), "a verify step's watch ends with the step")
}

func TestWatchTripRollsBackAtOnce(t *testing.T) {
	h := newHarness(t)
	h.watch = func(in activities.WatchInput) (activities.WatchResult, error) {
		return trip(in.Checks[0].Name), nil
	}
	var tripAt, restoredAt time.Time
	h.restoreWeights = func(activities.RestoreWeightsInput) (activities.RestoreResult, error) {
		restoredAt = h.env.Now()
		return activities.RestoreResult{}, nil
	}
	h.watchAfter = func(step string) time.Duration {
		if step == "analysis" {
			// The canary turns bad 4 s into canary-10.
			tripAt = h.env.Now().Add(4 * time.Second)
			return 4 * time.Second
		}
		return time.Hour
	}
	r := h.run(watchRunbook(0))
	require.Equal(t, OutcomeRolledBack, r.Outcome)
	require.Contains(t, r.Reason, "background analysis: check canary-error-rate failed: error rate 50.00% (20/40) over the last 1s")
	require.Contains(t, r.Reason, "(1 failed windows, failureLimit 0)")
	require.Equal(t, "verify-10", r.FailedStep)
	// The rollback started in the task that received the watch's result:
	// no verify round or timer in between.
	require.WithinDuration(t, tripAt, restoredAt, 100*time.Millisecond)
	require.NotContains(t, h.calls(false), "SetWeights:canary-100")
	require.Contains(t, h.calls(false), "RestoreWeights:canary-10")
	require.Contains(t, h.cancelled, "WatchRouter", "verify-10's watch is cancelled when the analysis stops the step")
	st := h.query()
	var found bool
	for _, rd := range st.Rounds {
		for _, j := range rd.Judgement {
			if rd.Watch && rd.Round == 1 && j.Check == "canary-error-rate" && j.Verdict == JudgeFail && j.Value == 0.5 {
				found = true
			}
		}
	}
	require.True(t, found, "the watch's verdict is in the status rounds: %+v", st.Rounds)
}

func TestWatchFailureLimitRestartsTheWatch(t *testing.T) {
	h := newHarness(t)
	h.at(40*time.Second, func() { h.signal(SignalApprove, ApproveSignal{By: "t"}) })
	var analysisCalls int
	h.watchAfter = func(step string) time.Duration {
		if step == "analysis" {
			analysisCalls++
			if analysisCalls <= 2 {
				return 3 * time.Second
			}
			return 24 * time.Hour
		}
		return 30 * time.Second
	}
	h.watch = func(in activities.WatchInput) (activities.WatchResult, error) {
		if in.Step == "analysis" {
			if analysisCalls == 1 {
				return trip(in.Checks[0].Name), nil
			}
			return activities.WatchResult{Check: in.Checks[0].Name, Error: "reading counters of route api on edge failed for 5s: connection refused"}, nil
		}
		return activities.WatchResult{Judged: []string{in.Checks[0].Name}}, nil
	}
	r := h.run(watchRunbook(2))
	require.Equal(t, OutcomeSucceeded, r.Outcome, r.Reason)
	require.GreaterOrEqual(t, analysisCalls, 3, "a trip within failureLimit starts a new watch")

	// One more failure than failureLimit stops the deployment; an
	// unreadable router counts as a failed measurement.
	h = newHarness(t)
	h.watchAfter = func(step string) time.Duration {
		if step == "analysis" {
			return 2 * time.Second
		}
		return time.Hour
	}
	h.watch = func(in activities.WatchInput) (activities.WatchResult, error) {
		return activities.WatchResult{Check: in.Checks[0].Name, Error: "reading counters of route api on edge failed for 5s: connection refused"}, nil
	}
	r = h.run(watchRunbook(1))
	require.Equal(t, OutcomeRolledBack, r.Outcome)
	require.Contains(t, r.Reason, "check canary-error-rate failed: measurement failed: reading counters")
	require.Contains(t, r.Reason, "(2 failed measurements, failureLimit 1)")
}

func TestWatchVerifyNeedsAJudgedWindow(t *testing.T) {
	h := newHarness(t)
	h.watch = func(in activities.WatchInput) (activities.WatchResult, error) {
		return activities.WatchResult{}, nil // time up, too few requests
	}
	rb := testRunbook()
	rb.Steps[3].Verify.Checks = []runbook.Check{continuousCheck("canary-errors", 0)}
	r := h.run(rb)
	require.Equal(t, OutcomeRolledBack, r.Outcome)
	require.Contains(t, r.Reason, "continuous check canary-errors had no window with at least 10 requests in 30s")
	require.NotContains(t, strings.Join(h.calls(true), " "), "Measure:verify-10", "nothing left to measure in rounds")
}

func TestWatchAbortCancelsIt(t *testing.T) {
	h := newHarness(t)
	var abortAt, restoredAt time.Time
	h.restoreWeights = func(activities.RestoreWeightsInput) (activities.RestoreResult, error) {
		if restoredAt.IsZero() {
			restoredAt = h.env.Now()
		}
		return activities.RestoreResult{}, nil
	}
	h.at(5*time.Second, func() {
		abortAt = h.env.Now()
		h.signal(SignalAbort, AbortSignal{Reason: "stop", By: "t"})
	})
	r := h.run(watchRunbook(0))
	require.Equal(t, OutcomeAborted, r.Outcome)
	require.WithinDuration(t, abortAt, restoredAt, 100*time.Millisecond, "the watch does not hold the abort up")
	n := 0
	for _, c := range h.cancelled {
		if c == "WatchRouter" {
			n++
		}
	}
	require.Equal(t, 2, n, "both watches (verify-10 and the analysis) are cancelled")
}

func TestRouterCheckFailsOnDownSubset(t *testing.T) {
	h := newHarness(t)
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) {
		r := healthy(in)
		for i, c := range in.Checks {
			if c.Router != nil {
				r.Measurements[i] = activities.Measurement{Check: c.Name, Kind: c.Kind(), BaselineRound: true, SubsetStatus: "DOWN"}
			}
		}
		return r, nil
	}
	rb := testRunbook()
	rb.Steps[3].Verify.Checks = append(rb.Steps[3].Verify.Checks, runbook.Check{Name: "canary-errors",
		Router: &runbook.RouterCheck{Route: "api", Subset: "canary", MaxErrorRate: 0.01}})
	r := h.run(rb)
	require.Equal(t, OutcomeRolledBack, r.Outcome)
	require.Contains(t, r.Reason, `check canary-errors failed: the router marked subset canary DOWN (status "DOWN")`)
}

// A long verification with continuous checks continues as new between two
// rounds of its other checks: both watches stop with the run and start
// again in the next one, ending when the step would have ended.
func TestWatchContinueAsNewRestartsIt(t *testing.T) {
	rounds := simulateHistory(t)
	rb := longRunbook()
	soak := rb.Steps[3].Verify
	soak.Checks = append(soak.Checks, continuousCheck("canary-errors", 0))
	rb.Analysis.Checks = []runbook.Check{continuousCheck("canary-error-rate", 0)}
	in := bundleOf(t, rb)
	var clock time.Time
	var r *Result
	hops := 0
	var untils []time.Time
	for r == nil {
		require.Less(t, hops, 40, "too many hops")
		h := newHarness(t)
		h.measure = func(mi activities.MeasureInput) (activities.MeasureResult, error) {
			if mi.Step == "soak" {
				*rounds++
			}
			return healthy(mi), nil
		}
		h.mockWatch(rb)
		*rounds = 0
		var next *Input
		r, next = hop(t, h, in, &clock)
		starts := strings.Join(h.calls(false), " ")
		require.Contains(t, starts, "WatchRouter:analysis", "hop %d starts the analysis's watch", hops)
		require.Contains(t, starts, "WatchRouter:soak", "hop %d starts the soak's watch", hops)
		for _, w := range h.watches {
			if w.Step == "soak" {
				untils = append(untils, w.Until)
			}
		}
		if next != nil {
			in = *next
			hops++
		}
	}
	require.Equal(t, OutcomeSucceeded, r.Outcome, r.Reason)
	require.GreaterOrEqual(t, hops, 2)
	require.NotEmpty(t, untils, "the last hop's watch ran to the step's end")
	for _, u := range untils {
		require.Equal(t, untils[0], u, "every hop's watch ends when the step ends, not a full duration later")
	}
}
