package workflows

import (
	"fmt"
	"strings"

	"github.com/rollbook/rollbook/activities/contract"
	"github.com/rollbook/rollbook/internal/stats"
	"github.com/rollbook/rollbook/runbook"
)

// Defaults of the compare check.
const (
	defaultSignificance  = 0.05
	defaultMinSamples    = 20
	defaultLatencyEffect = 0.10 // canary median 10 % slower
)

// judgeCompare judges canary against baseline: an exact test on error
// proportions (so a baseline with zero errors still fails a canary that has
// some) and a Mann-Whitney U test on latencies when samples are there. Too
// little data is inconclusive, never a pass.
func judgeCompare(c runbook.Check, m contract.Measurement) CheckJudgement {
	j := CheckJudgement{Check: c.Name}
	cc := c.Compare
	if m.Canary == nil || m.Baseline == nil {
		j.Verdict, j.Reason = JudgeInconclusive, "no samples from canary or baseline"
		return j
	}
	if m.BaselineRound {
		j.Verdict, j.Reason = JudgeBaseline, "first reading of the counters"
		return j
	}
	sig := cc.Significance
	if sig == 0 {
		sig = defaultSignificance
	}
	minN := int64(cc.MinSamples)
	if minN == 0 {
		minN = defaultMinSamples
	}
	metrics := cc.Metrics
	if len(metrics) == 0 {
		metrics = []string{"errors", "latency"}
	}
	var notes []string
	conclusive := false
	for _, metric := range metrics {
		switch metric {
		case "errors":
			ca, ba := m.Canary, m.Baseline
			if ca.Requests < minN || ba.Requests < minN {
				notes = append(notes, fmt.Sprintf("errors: not enough data (canary %d, baseline %d requests, need %d each)", ca.Requests, ba.Requests, minN))
				continue
			}
			conclusive = true
			p := stats.FisherGreater(ca.Errors, ca.Requests, ba.Errors, ba.Requests)
			cr := float64(ca.Errors) / float64(ca.Requests)
			br := float64(ba.Errors) / float64(ba.Requests)
			effect := cr - br
			j.Value = p
			note := fmt.Sprintf("errors: canary %d/%d (%.2f%%) vs baseline %d/%d (%.2f%%), Fisher p=%.4g, effect %+.2f pp", ca.Errors, ca.Requests, cr*100, ba.Errors, ba.Requests, br*100, p, effect*100)
			if p < sig && effect >= cc.MinEffect {
				j.Verdict, j.Reason = JudgeFail, note
				return j
			}
			notes = append(notes, note)
		case "latency":
			a, b := m.Canary.LatenciesMs, m.Baseline.LatenciesMs
			if int64(len(a)) < minN || int64(len(b)) < minN {
				notes = append(notes, fmt.Sprintf("latency: not enough data (canary %d, baseline %d samples, need %d each)", len(a), len(b), minN))
				continue
			}
			conclusive = true
			mw := stats.MannWhitneyGreater(a, b)
			ma, mb := stats.Median(a), stats.Median(b)
			effect := 0.0
			if mb > 0 {
				effect = ma/mb - 1
			}
			minEffect := cc.MinEffect
			if minEffect == 0 {
				minEffect = defaultLatencyEffect
			}
			note := fmt.Sprintf("latency: canary median %.1fms vs baseline %.1fms, U=%.0f p=%.4g (n=%d/%d), effect %+.0f%%", ma, mb, mw.U, mw.P, mw.NA, mw.NB, effect*100)
			if mw.P < sig && effect >= minEffect {
				j.Verdict, j.Reason = JudgeFail, note
				return j
			}
			notes = append(notes, note)
		}
	}
	j.Reason = strings.Join(notes, "; ")
	if !conclusive {
		j.Verdict = JudgeInconclusive
		return j
	}
	j.Verdict = JudgePass
	return j
}
