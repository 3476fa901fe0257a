package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/activities/contract"
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
	p := measurePolicy
	p.timeout = timeout
	return p.options(summary)
}

// CheckRun is the progress of one verification (or the background
// analysis): everything needed to resume it after continue-as-new.
type CheckRun struct {
	Name      string                  `json:"name"`
	StartedAt time.Time               `json:"startedAt"`
	Round     int                     `json:"round"`
	Trackers  []TrackerState          `json:"trackers"`
	Prev      []contract.Measurement  `json:"prev,omitempty"`
	First     []*contract.Measurement `json:"first,omitempty"`
	// Compare holds the sequential tests of the compare checks (nil
	// entries for other checks; nil: fixed-sample tests, see
	// startSequential).
	Compare []*CompareState `json:"compare,omitempty"`
	// Watches counts the verdicts of the continuous checks' watch.
	Watches int `json:"watches,omitempty"`
}

// TrackerState is one check's tally across rounds.
type TrackerState struct {
	Failures     int  `json:"failures,omitempty"`
	Inconclusive int  `json:"inconclusive,omitempty"`
	Passes       int  `json:"passes,omitempty"`
	Consecutive  int  `json:"consecutive,omitempty"`
	Done         bool `json:"done,omitempty"`
}

func newCheckRun(ctx workflow.Context, name string, n int) *CheckRun {
	return &CheckRun{Name: name, StartedAt: workflow.Now(ctx), Trackers: make([]TrackerState, n), First: make([]*contract.Measurement, n)}
}

// errContinueAsNew asks Deploy to continue as new between two rounds, so a
// long verification does not grow one history without bound.
var errContinueAsNew = errors.New("continue as new")

// runChecks measures list every interval until duration passes (0: until ctx
// is cancelled, for background analysis), judging each round. It returns a
// *checkFailure when a check fails. run holds its progress and may come from
// a previous run of the workflow; mayContinue lets it return
// errContinueAsNew when the history has grown long.
//
// watched marks the checks a watch judges instead (nil: none); they are not
// measured in rounds and do not count for allDone or noConclusivePass.
func (d *deployment) runChecks(ctx workflow.Context, run *CheckRun, list []runbook.Check, watched []bool, interval, duration time.Duration, honourThreshold, mayContinue bool) error {
	if interval <= 0 {
		interval = defaultInterval
	}
	if len(run.Trackers) != len(list) || len(run.First) != len(list) {
		return fmt.Errorf("resumed check state of %s does not match its %d checks", run.Name, len(list))
	}
	if err := startSequential(ctx, run, list); err != nil {
		return err
	}
	measured, idx := roundChecks(list, watched)
	if len(measured) == 0 {
		return waitOut(ctx, run, duration)
	}
	trackers := make([]*checkTracker, len(list))
	for i, c := range list {
		trackers[i] = &checkTracker{check: c, failures: run.Trackers[i].Failures, inconclusive: run.Trackers[i].Inconclusive,
			passes: run.Trackers[i].Passes, consecutive: run.Trackers[i].Consecutive, done: run.Trackers[i].Done}
	}
	actx := workflow.WithActivityOptions(ctx, measureOptions(fmt.Sprintf("%s: measure %d checks", run.Name, len(measured)), measured))
	for {
		if err := waitForRound(ctx, run, interval, duration); err != nil {
			return err
		}
		run.Round++
		var res contract.MeasureResult
		err := workflow.ExecuteActivity(actx, contract.ActivityMeasure, contract.MeasureInput{
			StepRef: d.ref(run.Name), Round: run.Round, Checks: measured, Routes: d.rb.Routes, Previous: run.Prev, Version: d.in.Version,
		}).Get(ctx, &res)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("measuring checks of %s: %w", run.Name, err)
		}
		run.Prev = res.Measurements
		rec := Round{Step: run.Name, Round: run.Round, At: workflow.Now(ctx)}
		allDone, failure := d.judgeRound(ctx, run, list, idx, res, trackers, honourThreshold, &rec)
		d.recordRound(rec)
		if failure != "" {
			d.log.Warn("Check failed", "step", run.Name, "round", run.Round, "reason", failure)
			return &checkFailure{reason: failure}
		}
		if honourThreshold && allDone && len(list) > 0 {
			return nil
		}
		if duration > 0 && workflow.Now(ctx).Sub(run.StartedAt) >= duration {
			return noConclusivePass(trackers, idx, duration)
		}
		if mayContinue && d.historyIsLong(ctx) {
			return errContinueAsNew
		}
	}
}

// waitForRound sleeps until the next round is due; the first round of a run
// starts at once.
func waitForRound(ctx workflow.Context, run *CheckRun, interval, duration time.Duration) error {
	if run.Round == 0 {
		return nil
	}
	elapsed := workflow.Now(ctx).Sub(run.StartedAt)
	wait := interval
	if duration > 0 && duration-elapsed < wait {
		wait = duration - elapsed
	}
	if wait > 0 {
		return workflow.Sleep(ctx, wait)
	}
	return nil
}

// judgeRound judges one round's measurements into rec and the trackers
// (saved back into run). Measurement k belongs to list[idx[k]]. It returns
// whether every measured check is done and the first failure, if any.
func (d *deployment) judgeRound(ctx workflow.Context, run *CheckRun, list []runbook.Check, idx []int, res contract.MeasureResult, trackers []*checkTracker, honourThreshold bool, rec *Round) (allDone bool, failure string) {
	allDone = true
	for k, i := range idx {
		c := list[i]
		var j CheckJudgement
		if k < len(res.Measurements) {
			m := res.Measurements[k]
			if c.Compare != nil {
				// first holds the check's first counter reading, so
				// that its statistics use everything seen since the
				// check started: at low traffic one interval alone
				// rarely holds enough requests.
				m = d.sinceFirst(c, &run.First[i], m)
			}
			j = judgeCheck(run, i, c, m)
			if c.Router != nil && subsetDown(m) && d.downFails(ctx) {
				j.Verdict, j.Reason = JudgeFail, fmt.Sprintf("the router marked subset %s DOWN (status %q): HAProxy took it out of rotation", c.Router.Subset, m.SubsetStatus)
			}
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
	for i, t := range trackers {
		run.Trackers[i] = TrackerState{Failures: t.failures, Inconclusive: t.inconclusive, Passes: t.passes, Consecutive: t.consecutive, Done: t.done}
	}
	return allDone, failure
}

// noConclusivePass fails a verification whose time is up when one of its
// measured checks (idx) never passed conclusively.
func noConclusivePass(trackers []*checkTracker, idx []int, duration time.Duration) error {
	for _, i := range idx {
		if t := trackers[i]; t.passes == 0 {
			return &checkFailure{reason: fmt.Sprintf("check %s had no conclusive passing measurement in %s", t.check.Name, duration)}
		}
	}
	return nil
}

// continueAsNewAfter is the history length after which a long verification
// continues as new (Temporal warns at 10 240 events and stops at 51 200).
var continueAsNewAfter = 8000

// historyLength reads the current history length (a variable so that unit
// tests, whose environment does not count events, can simulate one).
var historyLength = func(ctx workflow.Context) int { return workflow.GetInfo(ctx).GetCurrentHistoryLength() }

func (d *deployment) historyIsLong(ctx workflow.Context) bool {
	if !workflow.GetInfo(ctx).GetContinueAsNewSuggested() && historyLength(ctx) < continueAsNewAfter {
		return false
	}
	// The next run's input is the bundle plus the carried state. Past
	// Temporal's payload limit the server would refuse the hop and
	// terminate the deployment with its changes in place; a longer history
	// is the lesser harm (a verify round adds about a kilobyte).
	if n := d.nextInputSize(); n > maxContinueAsNewInput {
		if d.trimCarriedRounds(ctx) && d.nextInputSize() <= maxContinueAsNewInput {
			return true
		}
		if !d.canWarned {
			d.canWarned = true
			d.log.Warn("Not continuing as new: the next run's input would be too large; the history keeps growing",
				"bytes", n, "limit", maxContinueAsNewInput)
		}
		return false
	}
	return true
}

// maxContinueAsNewInput keeps the continue-as-new input well below
// Temporal's default 2 MiB blob limit (a variable for tests).
var maxContinueAsNewInput = 3 << 19 // 1.5 MiB

// nextInputSize is the JSON size of the input continueAsNew would send
// (json.Marshal is deterministic: struct order, sorted map keys).
func (d *deployment) nextInputSize() int {
	b, err := json.Marshal(d.nextInput())
	if err != nil {
		return math.MaxInt
	}
	return len(b)
}

// startAnalysis runs the background analysis from the current step to the
// end; a failure at any moment stops the deployment. run is nil on a fresh
// start, or the analysis state carried over continue-as-new.
func (d *deployment) startAnalysis(ctx workflow.Context, a *runbook.Analysis, run *CheckRun) {
	if run == nil {
		run = newCheckRun(ctx, "analysis", len(a.Checks))
	}
	d.analysis = run
	workflow.Go(ctx, func(c workflow.Context) {
		err := d.runWatched(c, run, a.Checks, a.Interval.D(), 0, false, false)
		if err == nil || c.Err() != nil {
			return
		}
		d.stop(stopIntent{kind: stopAnalysis, reason: "background analysis: " + err.Error(), step: d.status.CurrentStep})
	})
}

// sinceFirst turns a compare measurement into counts since the check's first
// counter reading (kept in *first). A reading whose counters went down (the
// router restarted) starts the window again.
func (d *deployment) sinceFirst(c runbook.Check, first **contract.Measurement, m contract.Measurement) contract.Measurement {
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
	side := func(subset string) *contract.SideSample {
		return &contract.SideSample{
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
