package workflows

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/activities"
	"github.com/rollbook/rollbook/activities/contract"
	"github.com/rollbook/rollbook/internal/stats"
	"github.com/rollbook/rollbook/runbook"
)

// compareRunbook verifies a 50/50 canary with a compare check for 60 s.
func compareRunbook() runbook.Runbook {
	rb := testRunbook()
	rb.Steps = []runbook.Step{
		rb.Steps[0], rb.Steps[1],
		{Name: "canary-50", Traffic: &runbook.TrafficStep{Route: "api", Weights: map[string]int{"stable": 50, "canary": 50}}},
		{Name: "judge", Verify: &runbook.VerifyStep{Duration: runbook.Duration(60 * time.Second), Interval: runbook.Duration(2 * time.Second),
			Checks: []runbook.Check{{Name: "canary-vs-stable", Compare: &runbook.CompareCheck{Route: "api", Metrics: []string{"errors"}}}}}},
	}
	return rb
}

// trafficAt simulates cumulative HAProxy counters at 20 requests/s split
// 50/50, with the canary failing canaryErrorRate of its requests.
func trafficAt(round int, canaryErrorRate float64) map[string]int64 {
	per := int64(20) // per side per 2 s round
	n := per * int64(round)
	return map[string]int64{
		"stable.requests": 1000 + n, "stable.errors5xx": 0,
		"canary.requests": 500 + n, "canary.errors5xx": int64(float64(n) * canaryErrorRate),
	}
}

func compareHarness(t *testing.T, rate float64) *harness {
	h := newHarness(t)
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) {
		return activities.MeasureResult{Measurements: []activities.Measurement{{
			Check: "canary-vs-stable", Kind: "compare", Counters: trafficAt(in.Round, rate), BaselineRound: in.Round == 1,
		}}}, nil
	}
	return h
}

// A canary failing 2 % of requests against a baseline with none, at about
// 20 requests/s, fails within 30 s: the exact test uses every request since
// the check began, not one interval's handful.
func TestCompareFailsTwoPercentCanaryWithin30s(t *testing.T) {
	h := compareHarness(t, 0.02)
	r := h.run(compareRunbook())
	require.Equal(t, OutcomeRolledBack, r.Outcome)
	assert.Contains(t, r.Reason, "sequential p=")
	verify := r.Steps[3]
	took := verify.EndedAt.Sub(verify.StartedAt)
	t.Logf("judged bad after %s: %s", took, r.Reason)
	assert.LessOrEqual(t, took, 30*time.Second, "judged bad after %s", took)
}

func TestComparePassesHealthyCanary(t *testing.T) {
	h := compareHarness(t, 0)
	r := h.run(compareRunbook())
	assert.Equal(t, OutcomeSucceeded, r.Outcome, r.Reason)
}

// compareCheck is a compare check on errors with default settings.
func compareCheck() runbook.Check {
	return runbook.Check{Name: "cmp", Compare: &runbook.CompareCheck{Route: "api", Metrics: []string{"errors"}}}
}

// sides is a compare measurement of cumulative counts since the first
// reading, as sinceFirst makes it.
func sides(cr, ce, br, be int64) contract.Measurement {
	return contract.Measurement{Check: "cmp", Kind: "compare", Counters: map[string]int64{},
		Canary: &contract.SideSample{Requests: cr, Errors: ce}, Baseline: &contract.SideSample{Requests: br, Errors: be}}
}

// Issue 14's low-count case: a baseline with 0 errors of 200 and a canary
// with 3 of 20 fails at the first judged look.
func TestJudgeCompareSequentialZeroBaseline(t *testing.T) {
	var st CompareState
	j := judgeCompareWith(compareCheck(), contract.Measurement{Canary: &contract.SideSample{}, Baseline: &contract.SideSample{}, BaselineRound: true}, &st)
	require.Equal(t, JudgeBaseline, j.Verdict)
	j = judgeCompareWith(compareCheck(), sides(20, 3, 200, 0), &st)
	assert.Equal(t, JudgeFail, j.Verdict, j.Reason)
	assert.Contains(t, j.Reason, "sequential p=0.0009259 (always valid, mSPRT over 1 looks)")
	assert.InDelta(t, 0.000926, j.Value, 1e-6)
}

// Moderate evidence that a fixed-sample test takes as proof is not enough
// for the sequential test, which may be looked at again; the same rates on
// four times the requests are.
func TestJudgeCompareSequentialNeedsMoreEvidenceThanFisher(t *testing.T) {
	m := sides(300, 10, 300, 2)
	fixed := judgeCompare(compareCheck(), m)
	assert.Equal(t, JudgeFail, fixed.Verdict, fixed.Reason)
	assert.Contains(t, fixed.Reason, "Fisher p=0.01")

	var st CompareState
	for look := int64(1); look <= 3; look++ {
		j := judgeCompareWith(compareCheck(), sides(100*look, 10*look/3, 100*look, 2*look/3), &st)
		assert.NotEqual(t, JudgeFail, j.Verdict, "look %d: %s", look, j.Reason)
	}
	assert.Equal(t, 3, st.Errors.Looks)
	var fail CheckJudgement
	for look := int64(4); look <= 12 && fail.Verdict != JudgeFail; look++ {
		fail = judgeCompareWith(compareCheck(), sides(100*look, 10*look/3, 100*look, 2*look/3), &st)
	}
	assert.Equal(t, JudgeFail, fail.Verdict, fail.Reason)
	assert.Less(t, fail.Value, 0.05)
	t.Logf("fixed: %s; sequential: %s", fixed.Reason, fail.Reason)
}

// Below minSamples a look is inconclusive but still counts as evidence;
// identical proportions pass with p = 1; a counter reset keeps the evidence.
func TestJudgeCompareSequentialState(t *testing.T) {
	var st CompareState
	j := judgeCompareWith(compareCheck(), sides(10, 2, 90, 0), &st)
	assert.Equal(t, JudgeInconclusive, j.Verdict, j.Reason)
	assert.Contains(t, j.Reason, "not enough data")
	p := st.Errors.P()
	assert.Less(t, p, 1.0, "the inconclusive look's errors are evidence")
	// The router restarted: the next reading is a new first reading.
	j = judgeCompareWith(compareCheck(), contract.Measurement{Canary: &contract.SideSample{}, Baseline: &contract.SideSample{}, BaselineRound: true}, &st)
	assert.Equal(t, JudgeBaseline, j.Verdict)
	assert.Equal(t, p, st.Errors.P())
	assert.Equal(t, int64(0), st.Errors.Canary.Requests)

	var healthy CompareState
	for look := int64(1); look <= 10; look++ {
		j = judgeCompareWith(compareCheck(), sides(100*look, look, 900*look, 9*look), &healthy)
		require.Equal(t, JudgePass, j.Verdict, j.Reason)
		assert.Equal(t, 1.0, j.Value)
	}
}

// A source without counters reports each round's counts: the sequential
// test adds them up.
func TestJudgeCompareSequentialPerRoundCounts(t *testing.T) {
	var st CompareState
	for range 3 {
		m := sides(10, 1, 90, 0)
		m.Counters = nil
		judgeCompareWith(compareCheck(), m, &st)
	}
	assert.Equal(t, stats.Counts{Requests: 30, Errors: 3}, st.Errors.Canary)
	assert.Equal(t, stats.Counts{Requests: 270, Errors: 0}, st.Errors.Baseline)
	assert.Less(t, st.Errors.P(), 0.01)
}

// Latency: every look's Mann-Whitney z feeds the sequential test. A canary
// twice as slow fails; one as fast as the baseline keeps passing.
func TestJudgeCompareSequentialLatency(t *testing.T) {
	c := runbook.Check{Name: "lat", Compare: &runbook.CompareCheck{Route: "api", Metrics: []string{"latency"}}}
	lat := func(scale float64) []float64 {
		v := make([]float64, 30)
		for i := range v {
			v[i] = scale * float64(10+i%7)
		}
		return v
	}
	var st CompareState
	for look := range 10 {
		m := contract.Measurement{Canary: &contract.SideSample{LatenciesMs: lat(1)}, Baseline: &contract.SideSample{LatenciesMs: lat(1)}}
		j := judgeCompareWith(c, m, &st)
		require.Equal(t, JudgePass, j.Verdict, "look %d: %s", look, j.Reason)
	}
	var slow CompareState
	m := contract.Measurement{Canary: &contract.SideSample{LatenciesMs: lat(2)}, Baseline: &contract.SideSample{LatenciesMs: lat(1)}}
	j := judgeCompareWith(c, m, &slow)
	assert.Equal(t, JudgeFail, j.Verdict, j.Reason)
	assert.Contains(t, j.Reason, "sequential p=")
}

// A history recorded before sequential-compare replays with the
// fixed-sample tests: GetVersion answers DefaultVersion and the reason
// names Fisher's test.
func TestCompareBeforeSequentialChangeUsesFisher(t *testing.T) {
	h := compareHarness(t, 0.02)
	h.env.OnGetVersion(sequentialCompareChange, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	r := h.run(compareRunbook())
	require.Equal(t, OutcomeRolledBack, r.Outcome)
	assert.Contains(t, r.Reason, "Fisher p=")
	assert.NotContains(t, r.Reason, "sequential")
	t.Logf("judged bad after %s: %s", r.Steps[3].EndedAt.Sub(r.Steps[3].StartedAt), r.Reason)
}

// The sequential state travels across continue-as-new: a bad canary judged
// over several hops is caught with the evidence of all its looks.
func TestCompareSequentialStateSurvivesContinueAsNew(t *testing.T) {
	rounds := simulateHistory(t)
	in := bundleOf(t, compareRunbook())
	var clock time.Time
	var r *Result
	hops, measured := 0, 0
	for r == nil {
		require.Less(t, hops, 40, "too many hops")
		h := newHarness(t)
		h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) {
			if in.Step != "judge" {
				return healthy(in), nil
			}
			measured++
			*rounds += 3
			return activities.MeasureResult{Measurements: []activities.Measurement{{
				Check: "canary-vs-stable", Kind: "compare", Counters: trafficAt(measured, 0.02), BaselineRound: measured == 1,
			}}}, nil
		}
		*rounds = 0
		var next *Input
		r, next = hop(t, h, in, &clock)
		if next != nil {
			require.NotNil(t, next.Resume.Verify)
			require.Len(t, next.Resume.Verify.Compare, 1)
			require.NotNil(t, next.Resume.Verify.Compare[0], "the compare check's state is carried")
			assert.Equal(t, next.Resume.Verify.Round-1, next.Resume.Verify.Compare[0].Errors.Looks)
			in = *next
			hops++
		}
	}
	require.Equal(t, OutcomeRolledBack, r.Outcome, r.Reason)
	assert.GreaterOrEqual(t, hops, 2)
	assert.Contains(t, r.Reason, fmt.Sprintf("mSPRT over %d looks", measured-1), "every look since the first reading counts")
}

// The recorded compare history (make histories) took the sequential path:
// it holds the sequential-compare marker at version 1 and its verdict names
// the sequential p-value, so TestReplayRecordedHistories replays that code.
func TestCompareHistoryRecordsSequentialChange(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "tests", "testdata", "histories", "compare-rolled-back.json"))
	require.NoError(t, err)
	defer f.Close()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, h.Events)
	dc := converter.GetDefaultDataConverter()
	found := false
	for _, ev := range h.Events {
		a := ev.GetMarkerRecordedEventAttributes()
		if a == nil || a.GetMarkerName() != "Version" {
			continue
		}
		var id string
		var version int
		require.NoError(t, dc.FromPayloads(a.GetDetails()["change-id"], &id))
		if id == sequentialCompareChange {
			require.NoError(t, dc.FromPayloads(a.GetDetails()["version"], &version))
			assert.Equal(t, 1, version)
			found = true
		}
	}
	assert.True(t, found, "no %s marker in the recorded compare history", sequentialCompareChange)
	last := h.Events[len(h.Events)-1]
	var res Result
	require.NoError(t, dc.FromPayloads(last.GetWorkflowExecutionCompletedEventAttributes().GetResult(), &res))
	assert.Contains(t, res.Reason, "sequential p=")
}
