package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/activities"
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
	assert.LessOrEqual(t, took, 30*time.Second, "judged bad after %s", took)
}

func TestComparePassesHealthyCanary(t *testing.T) {
	h := compareHarness(t, 0)
	r := h.run(compareRunbook())
	assert.Equal(t, OutcomeSucceeded, r.Outcome, r.Reason)
}
