package workflows

import (
	"fmt"
	"strings"

	"go.temporal.io/sdk/workflow"

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

// sequentialCompareChange is the workflow.GetVersion change ID of judging
// compare checks with sequential (always-valid) tests instead of
// fixed-sample tests re-run every round. The verdict decides whether the
// deployment rolls back, so a history recorded with the fixed-sample tests
// must keep them on replay.
const sequentialCompareChange = "sequential-compare"

// CompareState is the sequential tests' state of one compare check, carried
// in CheckRun across rounds and continue-as-new.
type CompareState struct {
	Errors  stats.ErrorTest `json:"errors"`
	Latency stats.ZTest     `json:"latency"`
}

// startSequential decides, once per check run, whether its compare checks
// are judged sequentially, and gives each one its state. A run carried over
// from code without sequential tests (rounds done, no state) keeps the
// fixed-sample tests; GetVersion is asked only when a run with compare
// checks starts, so other histories are unchanged.
func startSequential(ctx workflow.Context, run *CheckRun, list []runbook.Check) error {
	if run.Compare != nil {
		if len(run.Compare) != len(list) {
			return fmt.Errorf("resumed compare state of %s holds %d checks, the step has %d", run.Name, len(run.Compare), len(list))
		}
		return nil
	}
	if run.Round > 0 || !hasCompare(list) {
		return nil
	}
	if workflow.GetVersion(ctx, sequentialCompareChange, workflow.DefaultVersion, 1) < 1 {
		return nil
	}
	run.Compare = make([]*CompareState, len(list))
	for i, c := range list {
		if c.Compare != nil {
			run.Compare[i] = &CompareState{}
		}
	}
	return nil
}

func hasCompare(list []runbook.Check) bool {
	for _, c := range list {
		if c.Compare != nil {
			return true
		}
	}
	return false
}

// judgeCheck judges check i of run: compare checks with sequential state
// sequentially, everything else as judge does.
func judgeCheck(run *CheckRun, i int, c runbook.Check, m contract.Measurement) CheckJudgement {
	if c.Compare == nil || m.Error != "" || i >= len(run.Compare) || run.Compare[i] == nil {
		return judge(c, m)
	}
	return judgeCompareWith(c, m, run.Compare[i])
}

// compareParams are a compare check's settings with defaults applied.
type compareParams struct {
	sig, minEffect, latencyEffect float64
	minN                          int64
	metrics                       []string
}

func compareParamsOf(cc *runbook.CompareCheck) compareParams {
	p := compareParams{sig: cc.Significance, minEffect: cc.MinEffect, latencyEffect: cc.MinEffect, minN: int64(cc.MinSamples), metrics: cc.Metrics}
	if p.sig == 0 {
		p.sig = defaultSignificance
	}
	if p.minN == 0 {
		p.minN = defaultMinSamples
	}
	if len(p.metrics) == 0 {
		p.metrics = []string{"errors", "latency"}
	}
	if p.latencyEffect == 0 {
		p.latencyEffect = defaultLatencyEffect
	}
	return p
}

// judgeCompare judges canary against baseline with fixed-sample tests re-run
// every round: histories recorded before sequentialCompareChange.
func judgeCompare(c runbook.Check, m contract.Measurement) CheckJudgement {
	return judgeCompareWith(c, m, nil)
}

// judgeCompareWith judges canary against baseline on error proportions and,
// when samples are there, on latencies. With st (sequential), each metric's
// p-value is always-valid: looking every round keeps the chance of failing
// a healthy canary at most the significance. Without st, it is Fisher's
// exact test on the counts since the first reading and a Mann-Whitney U
// test on the round's latencies, as before. Both stay exact for errors at
// low counts and with a baseline without errors. Too little data is
// inconclusive, never a pass.
func judgeCompareWith(c runbook.Check, m contract.Measurement, st *CompareState) CheckJudgement {
	j := CheckJudgement{Check: c.Name}
	if m.Canary == nil || m.Baseline == nil {
		j.Verdict, j.Reason = JudgeInconclusive, "no samples from canary or baseline"
		return j
	}
	if m.BaselineRound {
		if st != nil {
			st.Errors.Restart() // counts since the first reading start again
		}
		j.Verdict, j.Reason = JudgeBaseline, "first reading of the counters"
		return j
	}
	p := compareParamsOf(c.Compare)
	var notes []string
	conclusive := false
	for _, metric := range p.metrics {
		var r metricResult
		switch metric {
		case "errors":
			r = judgeErrors(p, m, st)
			if r.conclusive {
				j.Value = r.p
			}
		case "latency":
			r = judgeLatency(p, m, st)
		default:
			continue
		}
		if r.fail {
			j.Verdict, j.Reason = JudgeFail, r.note
			return j
		}
		conclusive = conclusive || r.conclusive
		notes = append(notes, r.note)
	}
	j.Reason = strings.Join(notes, "; ")
	if !conclusive {
		j.Verdict = JudgeInconclusive
		return j
	}
	j.Verdict = JudgePass
	return j
}

type metricResult struct {
	conclusive, fail bool
	p                float64
	note             string
}

// judgeErrors tests "canary error proportion > baseline's". Sequentially,
// every round adds its evidence (also below minSamples: the p-value stays
// valid) but only a round with minSamples on both sides may fail the
// canary.
func judgeErrors(p compareParams, m contract.Measurement, st *CompareState) metricResult {
	ca, ba := stats.Counts{Requests: m.Canary.Requests, Errors: m.Canary.Errors}, stats.Counts{Requests: m.Baseline.Requests, Errors: m.Baseline.Errors}
	test := "Fisher"
	var pv float64
	if st != nil {
		if m.Counters == nil {
			// Without counters the sides are this round's counts.
			ca = stats.Counts{Requests: st.Errors.Canary.Requests + ca.Requests, Errors: st.Errors.Canary.Errors + ca.Errors}
			ba = stats.Counts{Requests: st.Errors.Baseline.Requests + ba.Requests, Errors: st.Errors.Baseline.Errors + ba.Errors}
		}
		pv = st.Errors.Look(ca, ba)
		test = fmt.Sprintf("sequential p=%.4g (always valid, mSPRT over %d looks)", pv, st.Errors.Looks)
	}
	if ca.Requests < p.minN || ba.Requests < p.minN {
		return metricResult{note: fmt.Sprintf("errors: not enough data (canary %d, baseline %d requests, need %d each)", ca.Requests, ba.Requests, p.minN)}
	}
	if st == nil {
		pv = stats.FisherGreater(ca.Errors, ca.Requests, ba.Errors, ba.Requests)
		test = fmt.Sprintf("Fisher p=%.4g", pv)
	}
	cr := float64(ca.Errors) / float64(ca.Requests)
	br := float64(ba.Errors) / float64(ba.Requests)
	effect := cr - br
	note := fmt.Sprintf("errors: canary %d/%d (%.2f%%) vs baseline %d/%d (%.2f%%), %s, effect %+.2f pp", ca.Errors, ca.Requests, cr*100, ba.Errors, ba.Requests, br*100, test, effect*100)
	return metricResult{conclusive: true, p: pv, note: note, fail: pv < p.sig && effect >= p.minEffect}
}

// judgeLatency tests "canary slower than baseline" with a Mann-Whitney U
// test on the round's latency samples. Sequentially, each round's z-score
// feeds a normal mSPRT (stats.ZTest) so that the repeated looks do not
// inflate false failures either.
func judgeLatency(p compareParams, m contract.Measurement, st *CompareState) metricResult {
	a, b := m.Canary.LatenciesMs, m.Baseline.LatenciesMs
	if int64(len(a)) < p.minN || int64(len(b)) < p.minN {
		return metricResult{note: fmt.Sprintf("latency: not enough data (canary %d, baseline %d samples, need %d each)", len(a), len(b), p.minN)}
	}
	mw := stats.MannWhitneyGreater(a, b)
	ma, mb := stats.Median(a), stats.Median(b)
	effect := 0.0
	if mb > 0 {
		effect = ma/mb - 1
	}
	pv, test := mw.P, fmt.Sprintf("U=%.0f p=%.4g", mw.U, mw.P)
	if st != nil {
		pv = st.Latency.Look(mw.Z)
		test = fmt.Sprintf("U=%.0f z=%.2f, sequential p=%.4g (always valid, over %d looks)", mw.U, mw.Z, pv, st.Latency.Looks)
	}
	note := fmt.Sprintf("latency: canary median %.1fms vs baseline %.1fms, %s (n=%d/%d), effect %+.0f%%", ma, mb, test, mw.NA, mw.NB, effect*100)
	return metricResult{conclusive: true, p: pv, note: note, fail: pv < p.sig && effect >= p.latencyEffect}
}
