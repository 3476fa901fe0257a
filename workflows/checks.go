package workflows

import (
	"fmt"
	"sort"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/activities"
	"github.com/rollbook/rollbook/runbook"
)

const defaultInterval = 10 * time.Second

// checkFailure is a verification verdict, not an infrastructure error.
type checkFailure struct{ reason string }

func (e *checkFailure) Error() string { return e.reason }

func measureOptions(summary string, list []runbook.Check) workflow.ActivityOptions {
	timeout := 10 * time.Second
	for _, c := range list {
		if c.HTTP != nil {
			per := 5 * time.Second
			if c.HTTP.Timeout > 0 {
				per = c.HTTP.Timeout.D()
			}
			if t := per*time.Duration(max(c.HTTP.Samples, 1)) + 5*time.Second; t > timeout {
				timeout = t
			}
		}
	}
	return workflow.ActivityOptions{
		StartToCloseTimeout: timeout,
		Summary:             summary,
		// A measurement is cheap to drop: on cancel, do not wait for it, so
		// an abort reaches the first compensation in the same workflow task.
		WaitForCancellation: false,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        200 * time.Millisecond,
			MaximumAttempts:        2,
			NonRetryableErrorTypes: []string{activities.ErrInvalid},
		},
	}
}

// runChecks measures list every interval until duration passes (0: until ctx
// is cancelled, for background analysis), judging each round. It returns a
// *checkFailure when a check fails.
func (d *deployment) runChecks(ctx workflow.Context, name string, list []runbook.Check, interval, duration time.Duration, honourThreshold bool) error {
	if interval <= 0 {
		interval = defaultInterval
	}
	trackers := make([]*checkTracker, len(list))
	for i, c := range list {
		trackers[i] = &checkTracker{check: c}
	}
	started := workflow.Now(ctx)
	actx := workflow.WithActivityOptions(ctx, measureOptions(fmt.Sprintf("%s: measure %d checks", name, len(list)), list))
	var prev []activities.Measurement
	// first holds each compare check's first counter reading, so that its
	// statistics use everything seen since the check started: at low
	// traffic one interval alone rarely holds enough requests.
	first := make([]*activities.Measurement, len(list))
	for round := 1; ; round++ {
		var res activities.MeasureResult
		err := workflow.ExecuteActivity(actx, checks.Measure, activities.MeasureInput{
			StepRef: d.ref(name), Round: round, Checks: list, Routes: d.rb.Routes, Previous: prev,
		}).Get(ctx, &res)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("measuring checks of %s: %w", name, err)
		}
		prev = res.Measurements
		rec := Round{Step: name, Round: round, At: workflow.Now(ctx)}
		allDone := true
		var failure string
		for i, c := range list {
			var j CheckJudgement
			if i < len(res.Measurements) {
				m := res.Measurements[i]
				if c.Compare != nil {
					m = d.sinceFirst(c, &first[i], m)
				}
				j = judge(c, m)
			} else {
				j = CheckJudgement{Check: c.Name, Verdict: JudgeFail, Reason: "no measurement returned"}
			}
			rec.Judgement = append(rec.Judgement, j)
			if trackers[i].done {
				continue
			}
			if reason := trackers[i].add(j, honourThreshold); reason != "" && failure == "" {
				failure = reason
			}
			if !trackers[i].done {
				allDone = false
			}
		}
		d.recordRound(rec)
		if failure != "" {
			d.log.Warn("Check failed", "step", name, "round", round, "reason", failure)
			return &checkFailure{reason: failure}
		}
		if honourThreshold && allDone && len(list) > 0 {
			return nil
		}
		elapsed := workflow.Now(ctx).Sub(started)
		if duration > 0 && elapsed >= duration {
			for _, t := range trackers {
				if t.passes == 0 {
					return &checkFailure{reason: fmt.Sprintf("check %s had no conclusive passing measurement in %s", t.check.Name, duration)}
				}
			}
			return nil
		}
		wait := interval
		if duration > 0 && duration-elapsed < wait {
			wait = duration - elapsed
		}
		if err := workflow.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// startAnalysis runs the background analysis from the current step to the
// end; a failure at any moment stops the deployment.
func (d *deployment) startAnalysis(ctx workflow.Context, a *runbook.Analysis) {
	workflow.Go(ctx, func(c workflow.Context) {
		err := d.runChecks(c, "analysis", a.Checks, a.Interval.D(), 0, false)
		if err == nil || c.Err() != nil {
			return
		}
		d.stop(stopIntent{kind: stopAnalysis, reason: "background analysis: " + err.Error(), step: d.status.CurrentStep})
	})
}

// sinceFirst turns a compare measurement into counts since the check's first
// counter reading (kept in *first). A reading whose counters went down (the
// router restarted) starts the window again.
func (d *deployment) sinceFirst(c runbook.Check, first **activities.Measurement, m activities.Measurement) activities.Measurement {
	if m.Error != "" || m.Counters == nil {
		return m
	}
	route := d.routes[c.Compare.Route]
	canary, base := c.Compare.Canary, c.Compare.Baseline
	if canary == "" {
		canary = route.Canary
	}
	if base == "" {
		base = route.Stable
	}
	f := *first
	if f == nil || m.BaselineRound || counterWentDown(f.Counters, m.Counters) {
		kept := m
		*first = &kept
		m.BaselineRound = true
		return m
	}
	side := func(subset string) *activities.SideSample {
		return &activities.SideSample{
			Requests: m.Counters[subset+".requests"] - f.Counters[subset+".requests"],
			Errors:   m.Counters[subset+".errors5xx"] - f.Counters[subset+".errors5xx"],
		}
	}
	m.Canary, m.Baseline = side(canary), side(base)
	return m
}

func counterWentDown(old, cur map[string]int64) bool {
	for _, k := range sortedCounterKeys(cur) {
		if cur[k] < old[k] {
			return true
		}
	}
	return false
}

// sortedCounterKeys keeps map iteration out of the decision path.
func sortedCounterKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
