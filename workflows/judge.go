package workflows

import (
	"fmt"

	"github.com/rollbook/rollbook/activities/contract"
	"github.com/rollbook/rollbook/runbook"
)

// judge turns one raw measurement into a verdict. It runs in the workflow so
// that the history shows the numbers and the reason next to each other.
func judge(c runbook.Check, m contract.Measurement) CheckJudgement {
	j := CheckJudgement{Check: c.Name}
	if m.Error != "" {
		j.Verdict, j.Reason = JudgeFail, "measurement failed: "+m.Error
		return j
	}
	switch c.Kind() {
	case runbook.CheckHTTP:
		h := c.HTTP
		want := h.ExpectStatus
		if want == 0 {
			want = 200
		}
		j.Value = m.LatencyMs
		switch {
		case m.Failures > 0:
			j.Verdict, j.Reason = JudgeFail, fmt.Sprintf("%d of %d requests failed (last status %d)", m.Failures, max(h.Samples, 1), m.Status)
		case m.Status != want:
			j.Verdict, j.Reason = JudgeFail, fmt.Sprintf("status %d, want %d", m.Status, want)
		case h.MaxLatency > 0 && m.LatencyMs > float64(h.MaxLatency.D().Milliseconds()):
			j.Verdict, j.Reason = JudgeFail, fmt.Sprintf("latency %.0fms above maxLatency %s", m.LatencyMs, h.MaxLatency)
		default:
			j.Verdict = JudgePass
		}
	case runbook.CheckPrometheus:
		p := c.Prometheus
		if m.NoData {
			// An empty result says nothing about the canary: inconclusive,
			// so a verification that only ever sees it fails at its end.
			j.Verdict, j.Reason = JudgeInconclusive, "no data: "+m.Detail
			return j
		}
		if m.Value == nil {
			j.Verdict, j.Reason = JudgeFail, "query returned no value"
			return j
		}
		v := *m.Value
		j.Value = v
		switch {
		case p.Min != nil && v < *p.Min:
			j.Verdict, j.Reason = JudgeFail, fmt.Sprintf("value %g below min %g", v, *p.Min)
		case p.Max != nil && v > *p.Max:
			j.Verdict, j.Reason = JudgeFail, fmt.Sprintf("value %g above max %g", v, *p.Max)
		default:
			j.Verdict = JudgePass
		}
	case runbook.CheckRouter:
		r := c.Router
		if m.BaselineRound {
			// The first round only records counters: an error rate needs
			// two readings.
			j.Verdict, j.Reason = JudgeBaseline, "first reading of the counters"
			return j
		}
		if m.Requests == 0 || m.Requests < int64(r.MinRequests) {
			j.Verdict, j.Reason = JudgeInconclusive, fmt.Sprintf("%d requests, need at least %d", m.Requests, max(r.MinRequests, 1))
			return j
		}
		rate := float64(m.Errors) / float64(m.Requests)
		j.Value = rate
		if rate > r.MaxErrorRate {
			j.Verdict, j.Reason = JudgeFail, fmt.Sprintf("error rate %.2f%% (%d/%d) above maxErrorRate %.2f%%", rate*100, m.Errors, m.Requests, r.MaxErrorRate*100)
		} else {
			j.Verdict = JudgePass
		}
	case runbook.CheckCompare:
		return judgeCompare(c, m)
	default:
		j.Verdict, j.Reason = JudgeFail, "unknown check kind"
	}
	return j
}

// checkTracker accumulates verdicts of one check across rounds.
type checkTracker struct {
	check        runbook.Check
	failures     int
	inconclusive int
	passes       int
	consecutive  int
	done         bool
}

// add records a verdict and returns a non-empty reason when the check has
// now failed.
func (t *checkTracker) add(j CheckJudgement, honourThreshold bool) string {
	switch j.Verdict {
	case JudgePass:
		t.passes++
		t.consecutive++
		if honourThreshold && t.check.SuccessThreshold > 0 && t.consecutive >= t.check.SuccessThreshold {
			t.done = true
		}
	case JudgeFail:
		t.failures++
		t.consecutive = 0
		if t.failures > t.check.FailureLimit {
			return fmt.Sprintf("check %s failed: %s (%d failed measurements, failureLimit %d)", t.check.Name, j.Reason, t.failures, t.check.FailureLimit)
		}
	case JudgeInconclusive:
		t.inconclusive++
		t.consecutive = 0
		if t.check.InconclusiveLimit > 0 && t.inconclusive > t.check.InconclusiveLimit {
			return fmt.Sprintf("check %s failed: %d inconclusive measurements (inconclusiveLimit %d): %s", t.check.Name, t.inconclusive, t.check.InconclusiveLimit, j.Reason)
		}
	}
	return ""
}
