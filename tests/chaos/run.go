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
// new worker, and checks the invariants.
func (h *harness) runOne(ctx context.Context, idx int, p killPoint) (res runResult) {
	start := time.Now()
	res = runResult{Index: idx, Point: p.Name, Kind: p.Kind, Phase: p.Phase, Path: p.Path, Trigger: p.trigger(), Why: p.Why,
		Expected: p.expected(), WorkflowID: workflows.WorkflowID(service)}
	defer func() {
		res.DurationMs = time.Since(start).Milliseconds()
		res.Consistent = len(res.Checks) > 0
		for _, c := range res.Checks {
			res.Consistent = res.Consistent && c.OK
		}
	}()
	fail := func(format string, args ...any) runResult {
		msg := fmt.Sprintf(format, args...)
		res.add(check{Name: "run completed", OK: false, Want: "no harness error", Got: msg})
		return res
	}

	// 1. Baseline.
	if err := h.state.reset(ctx); err != nil {
		return fail("reset: %v", err)
	}
	base, err := h.state.read(ctx)
	if err != nil {
		return fail("reading the baseline: %v", err)
	}
	for _, c := range stateChecks(base, false, "") {
		if !c.OK {
			return fail("baseline not reached: %s: want %s, got %s", c.Name, c.Want, c.Got)
		}
	}
	if h.rps > 0 {
		load := loadgen.StartMixed(loadgen.Mix{BaseURL: h.stack.HAProxyURL, Rate: h.rps})
		// Deferred after the deployment's own end (endDeployment below runs first): the
		// check sees the final state, whatever path the run took.
		defer h.checkWrites(ctx, &res, load)
	}
	if p.BadFromStart {
		if err := setCanaryBad(ctx, h.stack, 0.5); err != nil {
			return fail("%v", err)
		}
	}
	defer func() { _ = setCanaryBad(context.Background(), h.stack, 0) }()

	// 2. The worker that will die.
	tag := fmt.Sprintf("%02d-%s", idx, strings.Trim(unsafeChars.ReplaceAllString(p.Name, "_"), "_"))
	crashLog := filepath.Join(h.dir, "logs", tag+"-killed.log")
	res.Logs = append(res.Logs, crashLog)
	w1, err := startWorker(h.bin, h.cfg, h.env, p.crashpoint(), crashLog)
	if err != nil {
		return fail("%v", err)
	}
	defer w1.stop()
	if err := w1.waitStarted(30 * time.Second); err != nil {
		return fail("%v", err)
	}

	// 3. The deployment.
	b, err := h.bundle(fmt.Sprintf("chaos-%02d", idx))
	if err != nil {
		return fail("building the bundle: %v", err)
	}
	wr, err := h.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       res.WorkflowID,
		TaskQueue:                h.taskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SAService.ValueSet(service), workflows.SAVersion.ValueSet(b.Version), workflows.SAPhase.ValueSet(string(workflows.PhaseDeploying))),
		StaticSummary: "chaos " + p.Name + ": " + workflows.Summary(b),
	}, workflows.WorkflowType, workflows.Input{Bundle: *b})
	if err != nil {
		return fail("starting the deployment: %v", err)
	}
	res.RunID = wr.GetRunID()
	var (
		result    workflows.Result
		resultErr error
		done      = make(chan struct{})
	)
	go func() {
		defer close(done)
		resultErr = wr.Get(ctx, &result)
	}()
	// Whatever happens below, no deployment outlives its run.
	defer h.endDeployment(res.WorkflowID, done)

	mon := h.startMonitor(ctx, p, start)
	defer mon.stop()

	// 4. Wait for the kill point, and kill.
	kill := killRecord{Pid: w1.Pid}
	if p.crashpoint() != "" {
		select {
		case line := <-w1.reached:
			kill.Marker = line
		case <-done:
			return fail("the deployment ended (%s) before the worker reached %s: the kill point is not on this path", outcomeOf(result, resultErr), p.Name)
		case <-w1.exited:
			return fail("the worker exited before reaching the kill point: %v (log %s)", w1.state, crashLog)
		case <-time.After(reachTimeout):
			return fail("the worker did not reach %s within %s", p.Name, reachTimeout)
		case <-ctx.Done():
			return fail("interrupted")
		}
	} else {
		select {
		case <-mon.paused:
		case <-done:
			return fail("the deployment ended (%s) before pausing at approval", outcomeOf(result, resultErr))
		case <-time.After(reachTimeout):
			return fail("the deployment did not pause at approval within %s", reachTimeout)
		case <-ctx.Done():
			return fail("interrupted")
		}
	}
	kill.Phase, kill.Step = mon.last()
	if _, step, ok := strings.Cut(kill.Marker, " step="); ok {
		// The worker names the step it stopped in; the last status query
		// may be a few activities old.
		kill.Step, kill.Phase = step, ""
	}
	kill.At = time.Now()
	kill.SinceStartMs = kill.At.Sub(start).Milliseconds()
	sig, err := w1.kill()
	if err != nil {
		return fail("%v", err)
	}
	kill.Signal = sig
	res.Kills = append(res.Kills, kill)
	res.add(check{Name: "worker killed with SIGKILL at the point", OK: sig == "killed", Want: "killed", Got: sig})
	mon.event("worker pid %d killed (%s)", w1.Pid, sig)

	if p.AbortAfterKill {
		if err := h.abort(ctx, "chaos: abort while the worker is dead"); err != nil {
			return fail("abort: %v", err)
		}
		mon.event("abort sent while no worker runs")
	}

	// 5. A new worker finishes the deployment.
	recLog := filepath.Join(h.dir, "logs", tag+"-recovery.log")
	res.Logs = append(res.Logs, recLog)
	w2, err := startWorker(h.bin, h.cfg, h.env, "", recLog)
	if err != nil {
		return fail("%v", err)
	}
	defer w2.stop()
	res.RecoveryPid = w2.Pid
	if err := w2.waitStarted(30 * time.Second); err != nil {
		return fail("%v", err)
	}
	mon.event("new worker pid %d polls", w2.Pid)
	if p.Phase == "paused" {
		if p.Path == pathAbort {
			if err := h.abort(ctx, "chaos: abort while paused"); err != nil {
				return fail("abort: %v", err)
			}
			mon.event("abort sent while paused")
		} else {
			mon.allowApproval()
		}
	}
	select {
	case <-done:
	case <-time.After(finishTimeout):
		return fail("no outcome %s after the new worker started (phase %q)", finishTimeout, mon.phase())
	case <-ctx.Done():
		return fail("interrupted")
	}
	mon.stop()
	res.Events = mon.events()
	if resultErr != nil {
		return fail("the deployment failed: %v", resultErr)
	}

	// 6. Invariants, against the real components.
	res.Got = string(result.Outcome)
	res.FailedStep = result.FailedStep
	res.Reason = result.Reason
	res.add(eq("outcome", res.Expected, res.Got))
	live, err := h.state.read(ctx)
	if err != nil {
		return fail("reading the final state: %v", err)
	}
	for _, c := range stateChecks(live, res.Expected == string(workflows.OutcomeSucceeded), b.Version) {
		res.add(c)
	}
	res.Compensations, _ = compChecks(&res, result)
	return res
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
