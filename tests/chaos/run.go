package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/rollbook/rollbook/internal/loadgen"
	"github.com/rollbook/rollbook/internal/writecheck"
	"github.com/rollbook/rollbook/runbook"
	"github.com/rollbook/rollbook/workflows"
)

const service = "payments-api"

// Bounds of one run; a run that exceeds them is reported, not waited for.
const (
	reachTimeout  = 2 * time.Minute // until the worker reaches the kill point
	finishTimeout = 4 * time.Minute // from the new worker's start to the outcome
)

// runResult is one line of the table and one entry of details[].
type runResult struct {
	Index         int           `json:"index"`
	Point         string        `json:"point"`
	Kind          string        `json:"kind"`
	Phase         string        `json:"phase"`
	Path          string        `json:"path"`
	Trigger       string        `json:"trigger,omitempty"`
	Why           string        `json:"why"`
	Expected      string        `json:"expectedOutcome"`
	Got           string        `json:"gotOutcome"`
	Consistent    bool          `json:"consistent"`
	Checks        []check       `json:"checks"`
	Kills         []killRecord  `json:"kills"`
	RecoveryPid   int           `json:"recoveryWorkerPid,omitempty"`
	DurationMs    int64         `json:"durationMs"`
	FailedStep    string        `json:"failedStep,omitempty"`
	Reason        string        `json:"reason,omitempty"`
	Compensations []compSummary `json:"compensations,omitempty"`
	Events        []string      `json:"events,omitempty"`
	Notes         []string      `json:"notes,omitempty"`
	WorkflowID    string        `json:"workflowID"`
	RunID         string        `json:"runID,omitempty"`
	Logs          []string      `json:"workerLogs,omitempty"`
	// The run's mixed client load and what became of its acknowledged writes.
	Load               *loadgen.MixedCounts `json:"clientLoad,omitempty"`
	WritesAcknowledged int                  `json:"writesAcknowledged"`
	WritesLost         int                  `json:"writesLost"`
	WritesDuplicated   int                  `json:"writesDuplicated"`
}

type killRecord struct {
	Pid int       `json:"pid"`
	At  time.Time `json:"at"`
	// Marker is the worker's crash-point line (empty for the paused kill).
	Marker string `json:"marker,omitempty"`
	// Signal is how the process ended, as the kernel reported it.
	Signal string `json:"signal"`
	// Phase is the deployment's phase just before the kill (paused point).
	Phase string `json:"phase,omitempty"`
	// Step is the step the worker stopped in (from its marker line), or
	// the deployment's current step just before the kill.
	Step string `json:"step,omitempty"`
	// SinceStartMs is the kill's time since the run started.
	SinceStartMs int64 `json:"sinceStartMs"`
}

type compSummary struct {
	Step     string   `json:"step"`
	Kind     string   `json:"kind"`
	State    string   `json:"state"`
	Attempts int      `json:"attempts,omitempty"`
	Merged   []string `json:"merged,omitempty"`
	Detail   string   `json:"detail,omitempty"`
}

func (r *runResult) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (r *runResult) add(c check) {
	r.Checks = append(r.Checks, c)
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// runOne runs the example runbook once with the worker killed at p, then a
// new worker, and checks the invariants. A harness error ends the run early
// with a failed "run completed" check; what the run started is stopped in
// reverse order whatever the path.
func (h *harness) runOne(ctx context.Context, idx int, p killPoint) (res runResult) {
	r := &chaosRun{h: h, idx: idx, p: p, start: time.Now(), done: make(chan struct{})}
	r.res = runResult{Index: idx, Point: p.Name, Kind: p.Kind, Phase: p.Phase, Path: p.Path, Trigger: p.trigger(), Why: p.Why,
		Expected: p.expected(), WorkflowID: workflows.WorkflowID(service)}
	defer func() { res = r.finish() }()

	for _, stage := range []func(context.Context) error{
		r.baseline,       // components reset, load and canary mode started
		r.startDoomed,    // the worker that will die
		r.deploy,         // the deployment, watched by a monitor
		r.killAtPoint,    // SIGKILL once the worker reaches the point
		r.recoverAndWait, // a new worker finishes the deployment
		r.checkFinal,     // invariants, against the real components
	} {
		if err := stage(ctx); err != nil {
			r.res.add(check{Name: "run completed", OK: false, Want: "no harness error", Got: err.Error()})
			break
		}
	}
	return r.res
}

// chaosRun is the state of one runOne.
type chaosRun struct {
	h     *harness
	idx   int
	p     killPoint
	start time.Time
	res   runResult
	// cleanups run in reverse order at the end of the run.
	cleanups []func()

	tag       string
	w1        *workerProc
	crashLog  string
	bundle    *runbook.Bundle
	mon       *monitor
	done      chan struct{} // closed when result and resultErr are set
	result    workflows.Result
	resultErr error
}

func (r *chaosRun) later(f func()) { r.cleanups = append(r.cleanups, f) }

// finish stops what the run started, newest first, and settles its duration
// and verdict.
func (r *chaosRun) finish() runResult {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	r.res.DurationMs = time.Since(r.start).Milliseconds()
	r.res.Consistent = len(r.res.Checks) > 0
	for _, c := range r.res.Checks {
		r.res.Consistent = r.res.Consistent && c.OK
	}
	return r.res
}

// baseline resets the components, checks the starting state and starts the
// client load and the canary's bad mode the point asks for.
func (r *chaosRun) baseline(ctx context.Context) error {
	h := r.h
	if err := h.state.reset(ctx); err != nil {
		return fmt.Errorf("reset: %v", err)
	}
	base, err := h.state.read(ctx)
	if err != nil {
		return fmt.Errorf("reading the baseline: %v", err)
	}
	for _, c := range stateChecks(base, false, "") {
		if !c.OK {
			return fmt.Errorf("baseline not reached: %s: want %s, got %s", c.Name, c.Want, c.Got)
		}
	}
	if h.rps > 0 {
		load := loadgen.StartMixed(loadgen.Mix{BaseURL: h.stack.HAProxyURL, Rate: h.rps})
		// Cleaned up after the deployment's own end (endDeployment runs
		// first): the check sees the final state, whatever path the run took.
		r.later(func() { h.checkWrites(ctx, &r.res, load) })
	}
	if r.p.BadFromStart {
		if err := setCanaryBad(ctx, h.stack, 0.5); err != nil {
			return err
		}
	}
	r.later(func() { _ = setCanaryBad(context.Background(), h.stack, 0) })
	return nil
}

// startDoomed starts the worker armed with the point's crash point.
func (r *chaosRun) startDoomed(context.Context) error {
	r.tag = fmt.Sprintf("%02d-%s", r.idx, strings.Trim(unsafeChars.ReplaceAllString(r.p.Name, "_"), "_"))
	r.crashLog = filepath.Join(r.h.dir, "logs", r.tag+"-killed.log")
	r.res.Logs = append(r.res.Logs, r.crashLog)
	w1, err := startWorker(r.h.bin, r.h.cfg, r.h.env, r.p.crashpoint(), r.crashLog)
	if err != nil {
		return err
	}
	r.w1 = w1
	r.later(w1.stop)
	return w1.waitStarted(30 * time.Second)
}

// deploy starts the deployment, waits for its result in the background and
// watches it with a monitor.
func (r *chaosRun) deploy(ctx context.Context) error {
	h := r.h
	b, err := h.bundle(fmt.Sprintf("chaos-%02d", r.idx))
	if err != nil {
		return fmt.Errorf("building the bundle: %v", err)
	}
	r.bundle = b
	wr, err := h.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       r.res.WorkflowID,
		TaskQueue:                h.taskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SAService.ValueSet(service), workflows.SAVersion.ValueSet(b.Version), workflows.SAPhase.ValueSet(string(workflows.PhaseDeploying))),
		StaticSummary: "chaos " + r.p.Name + ": " + workflows.Summary(b),
	}, workflows.WorkflowType, workflows.Input{Bundle: *b})
	if err != nil {
		return fmt.Errorf("starting the deployment: %v", err)
	}
	r.res.RunID = wr.GetRunID()
	go func() {
		defer close(r.done)
		r.resultErr = wr.Get(ctx, &r.result)
	}()
	// Whatever happens below, no deployment outlives its run.
	r.later(func() { h.endDeployment(r.res.WorkflowID, r.done) })
	r.mon = h.startMonitor(ctx, r.p, r.start)
	r.later(r.mon.stop)
	return nil
}

// killAtPoint waits until the worker reaches the point (or the deployment
// pauses at approval, for the paused point) and kills it with SIGKILL.
func (r *chaosRun) killAtPoint(ctx context.Context) error {
	kill := killRecord{Pid: r.w1.Pid}
	marker, err := r.waitForPoint(ctx)
	if err != nil {
		return err
	}
	kill.Marker = marker
	kill.Phase, kill.Step = r.mon.last()
	if _, step, ok := strings.Cut(kill.Marker, " step="); ok {
		// The worker names the step it stopped in; the last status query
		// may be a few activities old.
		kill.Step, kill.Phase = step, ""
	}
	kill.At = time.Now()
	kill.SinceStartMs = kill.At.Sub(r.start).Milliseconds()
	sig, err := r.w1.kill()
	if err != nil {
		return err
	}
	kill.Signal = sig
	r.res.Kills = append(r.res.Kills, kill)
	r.res.add(check{Name: "worker killed with SIGKILL at the point", OK: sig == "killed", Want: "killed", Got: sig})
	r.mon.event("worker pid %d killed (%s)", r.w1.Pid, sig)
	if r.p.AbortAfterKill {
		if err := r.h.abort(ctx, "chaos: abort while the worker is dead"); err != nil {
			return fmt.Errorf("abort: %v", err)
		}
		r.mon.event("abort sent while no worker runs")
	}
	return nil
}

// waitForPoint returns the worker's crash-point line once it reaches the
// point, or "" once the deployment pauses at approval (the point without a
// crash point).
func (r *chaosRun) waitForPoint(ctx context.Context) (marker string, err error) {
	if r.p.crashpoint() == "" {
		select {
		case <-r.mon.paused:
			return "", nil
		case <-r.done:
			return "", fmt.Errorf("the deployment ended (%s) before pausing at approval", outcomeOf(r.result, r.resultErr))
		case <-time.After(reachTimeout):
			return "", fmt.Errorf("the deployment did not pause at approval within %s", reachTimeout)
		case <-ctx.Done():
			return "", errors.New("interrupted")
		}
	}
	select {
	case line := <-r.w1.reached:
		return line, nil
	case <-r.done:
		return "", fmt.Errorf("the deployment ended (%s) before the worker reached %s: the kill point is not on this path", outcomeOf(r.result, r.resultErr), r.p.Name)
	case <-r.w1.exited:
		return "", fmt.Errorf("the worker exited before reaching the kill point: %v (log %s)", r.w1.state, r.crashLog)
	case <-time.After(reachTimeout):
		return "", fmt.Errorf("the worker did not reach %s within %s", r.p.Name, reachTimeout)
	case <-ctx.Done():
		return "", errors.New("interrupted")
	}
}

// recoverAndWait starts a worker without crash point, plays the operator's
// part at a paused point, and waits for the deployment's outcome.
func (r *chaosRun) recoverAndWait(ctx context.Context) error {
	h := r.h
	recLog := filepath.Join(h.dir, "logs", r.tag+"-recovery.log")
	r.res.Logs = append(r.res.Logs, recLog)
	w2, err := startWorker(h.bin, h.cfg, h.env, "", recLog)
	if err != nil {
		return err
	}
	r.later(w2.stop)
	r.res.RecoveryPid = w2.Pid
	if err := w2.waitStarted(30 * time.Second); err != nil {
		return err
	}
	r.mon.event("new worker pid %d polls", w2.Pid)
	if r.p.Phase == "paused" {
		if r.p.Path == pathAbort {
			if err := h.abort(ctx, "chaos: abort while paused"); err != nil {
				return fmt.Errorf("abort: %v", err)
			}
			r.mon.event("abort sent while paused")
		} else {
			r.mon.allowApproval()
		}
	}
	select {
	case <-r.done:
	case <-time.After(finishTimeout):
		return fmt.Errorf("no outcome %s after the new worker started (phase %q)", finishTimeout, r.mon.phase())
	case <-ctx.Done():
		return errors.New("interrupted")
	}
	r.mon.stop()
	r.res.Events = r.mon.events()
	if r.resultErr != nil {
		return fmt.Errorf("the deployment failed: %v", r.resultErr)
	}
	return nil
}

// checkFinal compares the outcome and the live state of schema, keys and
// weights with what the point expects.
func (r *chaosRun) checkFinal(ctx context.Context) error {
	r.res.Got = string(r.result.Outcome)
	r.res.FailedStep = r.result.FailedStep
	r.res.Reason = r.result.Reason
	r.res.add(eq("outcome", r.res.Expected, r.res.Got))
	live, err := r.h.state.read(ctx)
	if err != nil {
		return fmt.Errorf("reading the final state: %v", err)
	}
	for _, c := range stateChecks(live, r.res.Expected == string(workflows.OutcomeSucceeded), r.bundle.Version) {
		r.res.add(c)
	}
	r.res.Compensations, _ = compChecks(&r.res, r.result)
	return nil
}

// checkWrites stops the run's load and looks for every write it was told succeeded, in the
// live tables or the rollback's archive (internal/writecheck).
func (h *harness) checkWrites(ctx context.Context, res *runResult, load *loadgen.MixedLoad) {
	rep := load.Stop()
	res.Load = &rep.Counts
	wr, err := writecheck.Check(ctx, h.stack.PGDSN, rep.Acks)
	if err != nil {
		res.add(check{Name: "acknowledged writes survive", OK: false, Want: "0 lost, 0 duplicated", Got: err.Error()})
		return
	}
	res.WritesAcknowledged, res.WritesLost, res.WritesDuplicated = wr.Acknowledged, wr.Lost, wr.Duplicated
	res.add(check{Name: "acknowledged writes survive", OK: wr.OK() && wr.Acknowledged > 0, Want: "some acknowledged, 0 lost, 0 duplicated",
		Got: fmt.Sprintf("%d acknowledged, %d lost, %d duplicated", wr.Acknowledged, wr.Lost, wr.Duplicated)})
	for _, s := range append(wr.LostSamples, wr.DuplicateSamples...) {
		res.note("%s", s)
	}
}

// compChecks checks the workflow's compensation stack: nothing skipped or
// left pending; on success everything was discarded at the point of no
// return, on rollback every compensation ran.
func compChecks(res *runResult, r workflows.Result) ([]compSummary, bool) {
	var sum []compSummary
	var bad []string
	already := 0
	for _, c := range r.Compensations {
		sum = append(sum, compSummary{Step: c.Step, Kind: c.Kind, State: string(c.State), Attempts: c.Attempts, Merged: c.Merged, Detail: c.Detail})
		switch {
		case c.State == workflows.CompSkipped:
			bad = append(bad, c.Step+" skipped")
		case res.Expected == string(workflows.OutcomeSucceeded) && c.State != workflows.CompDiscarded:
			bad = append(bad, c.Step+" "+string(c.State)+" (want discarded)")
		case res.Expected != string(workflows.OutcomeSucceeded) && c.State != workflows.CompDone && c.State != workflows.CompAlreadyRestored:
			bad = append(bad, c.Step+" "+string(c.State)+" (want done or already-restored)")
		}
		if c.State == workflows.CompAlreadyRestored {
			already++
		}
	}
	got := fmt.Sprintf("%d compensations, all fine", len(r.Compensations))
	if len(bad) > 0 {
		got = strings.Join(bad, "; ")
	}
	want := "all done or already-restored, none skipped"
	if res.Expected == string(workflows.OutcomeSucceeded) {
		want = "all discarded at the point of no return, none skipped"
	}
	ok := len(bad) == 0 && len(r.Compensations) > 0
	res.add(check{Name: "compensation stack", OK: ok, Want: want, Got: got})
	if res.Expected == string(workflows.OutcomeSucceeded) {
		res.add(eq("point of no return", stepContract, r.PointOfNoReturn))
	}
	if already > 0 {
		res.note("%d compensation(s) found the state already restored", already)
	}
	return sum, ok
}

func outcomeOf(r workflows.Result, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return string(r.Outcome)
}

func (h *harness) abort(ctx context.Context, reason string) error {
	return h.tc.SignalWorkflow(ctx, workflows.WorkflowID(service), "", workflows.SignalAbort, workflows.AbortSignal{Reason: reason, By: "chaos"})
}

// endDeployment makes sure a failed run leaves no deployment behind for the
// next one: terminate it if it still runs.
func (h *harness) endDeployment(id string, done <-chan struct{}) {
	select {
	case <-done:
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.tc.TerminateWorkflow(ctx, id, "", "chaos: run ended without an outcome"); err != nil {
		h.logf("terminating %s: %v", id, err)
	}
}

// bundle builds the example runbook's bundle for one run, with shortened
// durations (see shorten).
func (h *harness) bundle(version string) (*runbook.Bundle, error) {
	b, err := runbook.BuildBundle(h.runbookPath, version, runbook.Origin{User: "chaos", CIJob: "make chaos"})
	if err != nil {
		return nil, err
	}
	shorten(&b.Runbook)
	if b.Hash, err = b.ContentHash(); err != nil {
		return nil, err
	}
	if err := b.Check(); err != nil {
		return nil, fmt.Errorf("the shortened runbook does not check: %w", err)
	}
	return b, nil
}

// shorten keeps the example runbook's structure (expand migration of 3
// files, two flags, 10/50/100 traffic with a verification after each,
// background analysis, the irreversible contract migration, the gradual
// restore) but makes a run take seconds instead of a minute, and inserts an
// approval pause before canary-100 for the "killed while paused" point.
// Every verify keeps at least two judged rounds of its router check.
func shorten(rb *runbook.Runbook) {
	var steps []runbook.Step
	for _, s := range rb.Steps {
		if s.Name == "canary-100" {
			steps = append(steps, runbook.Step{Name: stepApproval, Pause: &runbook.PauseStep{Approval: true, Timeout: runbook.Duration(10 * time.Minute)}})
		}
		if s.Verify != nil {
			v := *s.Verify
			v.Duration, v.Interval = runbook.Duration(verifyDuration), runbook.Duration(verifyInterval)
			s.Verify = &v
		}
		steps = append(steps, s)
	}
	rb.Steps = steps
	if rb.Rollback != nil && rb.Rollback.Traffic != nil {
		t := *rb.Rollback.Traffic
		t.Interval = runbook.Duration(restoreInterval)
		rb.Rollback.Traffic = &t
	}
}

const (
	verifyDuration  = 4 * time.Second
	verifyInterval  = 2 * time.Second
	restoreInterval = time.Second
)

// shortenedNote says what shorten changed, for the table and the JSON.
var shortenedNote = fmt.Sprintf("durations shortened: every verify %s at %s intervals (example: 20s/2s, 15s/3s, 10s/2s); "+
	"gradual traffic restore interval %s (example: 5s); analysis unchanged (2s); an approval pause step %q inserted before canary-100",
	verifyDuration, verifyInterval, restoreInterval, stepApproval)

// ---- monitor: watches the status query and steers the run ----

type monitor struct {
	h     *harness
	p     killPoint
	start time.Time

	paused      chan struct{}
	pausedOnce  sync.Once
	approveOK   chan struct{}
	approveOnce sync.Once

	mu        sync.Mutex
	lastPhase string
	lastStep  string
	evs       []string

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (h *harness) startMonitor(ctx context.Context, p killPoint, start time.Time) *monitor {
	ctx, cancel := context.WithCancel(ctx)
	m := &monitor{h: h, p: p, start: start, paused: make(chan struct{}), approveOK: make(chan struct{}), cancel: cancel}
	if p.Phase != "paused" {
		m.allowApproval()
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.loop(ctx)
	}()
	return m
}

func (m *monitor) stop() {
	m.cancel()
	m.wg.Wait()
}

func (m *monitor) allowApproval() { m.approveOnce.Do(func() { close(m.approveOK) }) }

func (m *monitor) event(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.evs = append(m.evs, fmt.Sprintf("%6.2fs ", time.Since(m.start).Seconds())+fmt.Sprintf(format, args...))
}

func (m *monitor) events() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.evs...)
}

func (m *monitor) last() (phase, step string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastPhase, m.lastStep
}

func (m *monitor) phase() string { p, _ := m.last(); return p }

func (m *monitor) loop(ctx context.Context) {
	var badDone, abortDone bool
	var approvedAt time.Time
	for ctx.Err() == nil {
		st, err := m.h.status(ctx)
		if err != nil {
			// No worker answers while the worker is dead: try again.
			sleep(ctx, 200*time.Millisecond)
			continue
		}
		m.mu.Lock()
		if string(st.Phase) != m.lastPhase {
			m.evs = append(m.evs, fmt.Sprintf("%6.2fs phase %s (step %s)", time.Since(m.start).Seconds(), st.Phase, st.CurrentStep))
		}
		m.lastPhase, m.lastStep = string(st.Phase), st.CurrentStep
		m.mu.Unlock()
		// The release step replaces the canary's process, which forgets a bad mode set
		// before the deployment: a canary bad from the start is made bad again once the
		// new version takes traffic.
		if m.p.BadFromStart && !badDone && (st.CurrentStep == stepFirstTraffic || st.CurrentStep == stepFirstVerify) {
			badDone = true
			if err := setCanaryBad(ctx, m.h.stack, 0.5); err != nil {
				m.event("making the released canary bad: %v", err)
			} else {
				m.event("released canary made bad at step %s", st.CurrentStep)
			}
		}
		if m.p.BadAt != "" && !badDone && st.CurrentStep == m.p.BadAt {
			badDone = true
			if err := setCanaryBad(ctx, m.h.stack, 0.5); err != nil {
				m.event("making the canary bad: %v", err)
			} else {
				m.event("canary made bad at step %s", st.CurrentStep)
			}
		}
		if m.p.AbortAt != "" && !abortDone && st.CurrentStep == m.p.AbortAt {
			abortDone = true
			if err := m.h.abort(ctx, "chaos: abort at "+st.CurrentStep); err != nil {
				m.event("abort: %v", err)
			} else {
				m.event("abort sent at step %s", st.CurrentStep)
			}
		}
		if st.Phase == workflows.PhasePaused && strings.HasPrefix(st.WaitingFor, "approval") {
			m.pausedOnce.Do(func() { close(m.paused) })
			select {
			case <-m.approveOK:
				if time.Since(approvedAt) > 3*time.Second {
					approvedAt = time.Now()
					err := m.h.tc.SignalWorkflow(ctx, workflows.WorkflowID(service), "", workflows.SignalApprove, workflows.ApproveSignal{Step: stepApproval, By: "chaos"})
					if err != nil {
						m.event("approve: %v", err)
					} else {
						m.event("approved")
					}
				}
			default:
			}
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

func (h *harness) status(ctx context.Context) (workflows.Status, error) {
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var st workflows.Status
	v, err := h.tc.QueryWorkflow(qctx, workflows.WorkflowID(service), "", workflows.QueryStatus)
	if err != nil {
		return st, err
	}
	if err := v.Get(&st); err != nil {
		return st, errors.New("decoding the status: " + err.Error())
	}
	return st, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
