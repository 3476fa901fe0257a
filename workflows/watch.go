package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/activities/contract"
	"github.com/rollbook/rollbook/runbook"
)

// Continuous checks (runbook Check.Continuous) are judged by a watch: one
// long-running, heartbeating WatchRouter activity per verify step or
// analysis, side by side with the round-based checks of the same step. It
// returns as soon as a check's sliding window fails, so the rollback starts
// in the workflow task that receives it instead of at the next round.

// Changes guarded by workflow.GetVersion so that recorded histories replay:
// watching continuous checks (histories from before it measured every check
// in rounds), and failing a router check whose subset the router reports
// DOWN.
const (
	watchChange    = "continuous-watch"
	downRuleChange = "router-down-fails"
)

// watchPolicy: a watch only reads, so a cancel does not wait for it (an
// abort reaches the first compensation in the same task, and a step ends
// without waiting up to a heartbeat throttle for the activity to notice).
// A crashed worker is noticed by the heartbeat timeout; the retry starts a
// fresh window. The long timeout only bounds one attempt of the analysis's
// watch, which then starts again.
var watchPolicy = activityPolicy{timeout: 24 * time.Hour, heartbeat: 3 * time.Second,
	initial: 100 * time.Millisecond, backoff: 2, maxInterval: 2 * time.Second, attempts: 20, nonRetryable: []string{contract.ErrInvalid}}

// roundChecks returns the checks measured in rounds (those not watched)
// and their indexes in list.
func roundChecks(list []runbook.Check, watched []bool) ([]runbook.Check, []int) {
	if watched == nil {
		idx := make([]int, len(list))
		for i := range idx {
			idx[i] = i
		}
		return list, idx
	}
	var out []runbook.Check
	var idx []int
	for i, c := range list {
		if !watched[i] {
			out = append(out, c)
			idx = append(idx, i)
		}
	}
	return out, idx
}

// waitOut is runChecks with nothing to measure: the verify step's duration
// (or, for the analysis, until cancelled).
func waitOut(ctx workflow.Context, run *CheckRun, duration time.Duration) error {
	if duration <= 0 {
		return workflow.Await(ctx, func() bool { return false })
	}
	if left := duration - workflow.Now(ctx).Sub(run.StartedAt); left > 0 {
		return workflow.Sleep(ctx, left)
	}
	return nil
}

func subsetDown(m contract.Measurement) bool {
	return m.Error == "" && strings.HasPrefix(m.SubsetStatus, "DOWN")
}

// downFails asks (once a DOWN status is seen) whether this run fails a
// router check on a DOWN subset.
func (d *deployment) downFails(ctx workflow.Context) bool {
	return workflow.GetVersion(ctx, downRuleChange, workflow.DefaultVersion, 1) >= 1
}

// watchedChecks marks list's continuous checks, or returns nil when there
// are none or this run predates watching.
func watchedChecks(ctx workflow.Context, list []runbook.Check) []bool {
	var watched []bool
	for i, c := range list {
		if c.Continuous && c.Router != nil {
			if watched == nil {
				watched = make([]bool, len(list))
			}
			watched[i] = true
		}
	}
	if watched == nil || workflow.GetVersion(ctx, watchChange, workflow.DefaultVersion, 1) < 1 {
		return nil
	}
	return watched
}

// runWatched runs list's round-based checks and watches its continuous ones
// side by side until duration ends (0: until ctx is cancelled). The first
// failure of either stops both and is returned; so is errContinueAsNew,
// after the watch was cancelled (the next run starts it again). Both have
// returned when runWatched returns.
func (d *deployment) runWatched(ctx workflow.Context, run *CheckRun, list []runbook.Check, interval, duration time.Duration, honourThreshold, mayContinue bool) error {
	watched := watchedChecks(ctx, list)
	if watched == nil {
		return d.runChecks(ctx, run, list, nil, interval, duration, honourThreshold, mayContinue)
	}
	bctx, cancelBoth := workflow.WithCancel(ctx)
	var roundErr, watchErr error
	roundsDone, watchDone := false, false
	workflow.Go(bctx, func(c workflow.Context) {
		roundErr = d.runChecks(c, run, list, watched, interval, duration, honourThreshold, mayContinue)
		roundsDone = true
	})
	workflow.Go(bctx, func(c workflow.Context) {
		watchErr = d.watch(c, run, list, watched, interval, duration)
		watchDone = true
	})
	err := workflow.Await(ctx, func() bool {
		return (roundsDone && watchDone) || (roundsDone && roundErr != nil) || (watchDone && watchErr != nil)
	})
	cancelBoth()
	// Wait for both to return, even when ctx was cancelled: nothing of this
	// step may still run when the next one (or the rollback) starts.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	_ = workflow.Await(dctx, func() bool { return roundsDone && watchDone })
	switch {
	case err != nil:
		return err
	case watchErr != nil && (roundErr == nil || isCancel(ctx, roundErr)):
		return watchErr
	}
	return roundErr
}

// watch runs WatchRouter over the watched checks until it reports the end
// of duration, a failure beyond a check's failureLimit, or ctx is
// cancelled. A trip or an unreadable router within the limit starts a new
// watch with an empty window.
func (d *deployment) watch(ctx workflow.Context, run *CheckRun, list []runbook.Check, watched []bool, interval, duration time.Duration) error {
	if interval <= 0 {
		interval = defaultInterval
	}
	var checks []runbook.Check
	for i, c := range list {
		if watched[i] {
			checks = append(checks, c)
		}
	}
	in := contract.WatchInput{StepRef: d.ref(run.Name), Checks: checks, Routes: d.rb.Routes, DefaultWindow: interval}
	if duration > 0 {
		in.Until = run.StartedAt.Add(duration)
	}
	// A watch that starts late in its step (the step resumed after
	// continue-as-new) cannot be asked to have seen a full judged window.
	fresh := workflow.Now(ctx).Sub(run.StartedAt) < interval
	actx := workflow.WithActivityOptions(ctx, watchPolicy.options(fmt.Sprintf("%s: watch %d continuous checks", run.Name, len(checks))))
	for {
		var res contract.WatchResult
		if err := workflow.ExecuteActivity(actx, contract.ActivityWatch, in).Get(ctx, &res); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("watching the continuous checks of %s: %w", run.Name, err)
		}
		failure, again := d.judgeWatch(run, list, res)
		if failure != "" {
			d.log.Warn("Continuous check failed", "step", run.Name, "reason", failure)
			return &checkFailure{reason: failure}
		}
		if !again {
			if !fresh {
				return nil
			}
			return notJudged(list, watched, res.Judged, duration)
		}
	}
}

// judgeWatch records a watch's result. It returns the failure that stops
// the step, if any, and whether the watch must start again (a trip or an
// unreadable router within failureLimit).
func (d *deployment) judgeWatch(run *CheckRun, list []runbook.Check, res contract.WatchResult) (failure string, again bool) {
	name := res.Tripped
	if name == "" {
		name = res.Check
	}
	if name == "" {
		return "", false
	}
	i := checkIndex(list, name)
	if i < 0 {
		return fmt.Sprintf("the watch of %s returned unknown check %q", run.Name, name), false
	}
	j := CheckJudgement{Check: name, Verdict: JudgeFail, Reason: res.Reason}
	if res.Error != "" {
		j.Reason = "measurement failed: " + res.Error
	} else if res.Requests > 0 {
		j.Value = float64(res.Errors) / float64(res.Requests)
	}
	run.Watches++
	d.recordRound(Round{Step: run.Name, Round: run.Watches, Watch: true, At: res.At, Judgement: []CheckJudgement{j}})
	ts := run.Trackers[i]
	t := &checkTracker{check: list[i], failures: ts.Failures, inconclusive: ts.Inconclusive, passes: ts.Passes, consecutive: ts.Consecutive}
	failure = t.add(j, false)
	run.Trackers[i].Failures, run.Trackers[i].Consecutive = t.failures, t.consecutive
	if failure != "" && res.Error == "" {
		// The watch's reason already names the check and the window.
		failure = fmt.Sprintf("%s (%d failed windows, failureLimit %d)", res.Reason, t.failures, list[i].FailureLimit)
	}
	return failure, failure == ""
}

// notJudged fails a verify step whose continuous check never had a window
// with enough requests to judge.
func notJudged(list []runbook.Check, watched []bool, judged []string, duration time.Duration) error {
	if duration <= 0 {
		return nil
	}
	for i, c := range list {
		if watched[i] && !slices.Contains(judged, c.Name) {
			return &checkFailure{reason: fmt.Sprintf("continuous check %s had no window with at least %d requests in %s", c.Name, max(c.Router.MinRequests, 1), duration)}
		}
	}
	return nil
}

func checkIndex(list []runbook.Check, name string) int {
	for i, c := range list {
		if c.Name == name {
			return i
		}
	}
	return -1
}
