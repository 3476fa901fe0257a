package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/activities/contract"
	"github.com/rollbook/rollbook/runbook"
)

// Error type of a bundle the workflow refuses before changing anything.
const ErrTypeInvalidBundle = "RollbookInvalidBundle"

// Why the forward phase stopped early.
const (
	stopAbort    = "abort"
	stopFailure  = "failure"
	stopAnalysis = "analysis"
	stopDeadline = "deadline"
	stopCancel   = "cancelled"
)

type stopIntent struct {
	kind   string
	reason string
	step   string
}

// deployment is the state of one Deploy run, in named parts: what the run
// deploys, the saga, the operator's controls, the notifications and the
// continue-as-new bookkeeping. Signal handlers only record intents here; the
// main coroutine acts on them in one place (the argo-rollouts pattern), so
// ordering stays deterministic.
type deployment struct {
	in     *Input
	rb     *runbook.Runbook
	log    log.Logger
	id     string
	routes map[string]runbook.Route
	status Status

	saga
	operator
	notifications
	carry
}

// saga is the forward progress and the compensation stack.
type saga struct {
	comps         []Compensation
	cancelForward workflow.CancelFunc
	// intent is why the forward phase stops (the first one wins).
	intent      *stopIntent
	pivot       string
	rollingBack bool
	finished    bool
	// skipped: an operator skipped a compensation.
	skipped bool

	rollbackStarted time.Time
	rollbackEnded   time.Time

	// analysis is the background analysis's progress, once started.
	analysis *CheckRun
	// verify is the running verify step's progress.
	verify *CheckRun
	// current is the index of the step the forward phase is in.
	current int
	// kvVersioned, kvOneCopyOn: the GetVersion answer of kvOneCopyChange,
	// asked once (see kvvalues.go).
	kvVersioned bool
	kvOneCopyOn bool
}

// operator is what the operator's signals set: pause, approval, and the
// decision on a stuck compensation.
type operator struct {
	paused          bool
	waitingApproval string
	approved        bool
	stuckStep       string
	decision        string
}

// notifications are the phase-change messages and how they are sent.
type notifications struct {
	// nctx is a disconnected context for notifications, so that the
	// cancellation of the forward phase does not cancel them.
	nctx  workflow.Context
	notes []workflow.Future // runs from before ordered notifications
	// Ordered notifications (see notify): the queue, whether its sender
	// runs, and the GetVersion answer, asked once.
	noteQueue       []contract.NotifyInput
	noteSender      bool
	notifyVersioned bool
	notifyOrdered   bool
}

// carry is the continue-as-new bookkeeping.
type carry struct {
	generation int
	// canWarned: the warning that continue-as-new was refused was logged.
	canWarned bool
	// trimVersioned, trimOn: the GetVersion answer of trimRoundsChange
	// (carry.go), asked once.
	trimVersioned bool
	trimOn        bool
	// roundsTrimmed: this hop dropped the rounds to fit; rounds the
	// background analysis adds while the hop yields are dropped too.
	roundsTrimmed bool
}

// Deploy runs a runbook as a saga: capture → push compensation → apply for
// every mutating step, verification in the workflow, and a durable rollback
// in reverse order when anything fails or an operator aborts.
func Deploy(ctx workflow.Context, in Input) (Result, error) {
	refusal, err := checkBundle(ctx, &in)
	if err != nil {
		return Result{}, err
	}
	if err := checkResume(&in); err != nil {
		return Result{}, err
	}
	d := newDeployment(ctx, &in)
	from := 0
	if r := in.Resume; r != nil {
		from = d.resume(r)
	}
	if err := d.open(ctx); err != nil {
		return Result{}, err
	}

	fwd, cancel := workflow.WithCancel(ctx)
	d.cancelForward = cancel
	problems, err := d.preflight(fwd)
	if err != nil {
		cancel()
		return Result{}, err
	}
	if len(problems) > 0 {
		cancel()
		return d.refuse(ctx, problems), nil
	}
	d.startBackground(fwd)

	if refusal != nil {
		err = refusal
	} else {
		err = d.forward(fwd, from, in.Resume)
	}
	if errors.Is(err, errContinueAsNew) {
		// Yield once so the signal coroutine handles every signal that
		// already arrived: an abort must not be carried away by the hop.
		_ = workflow.Sleep(ctx, time.Millisecond)
		if d.intent == nil && ctx.Err() == nil {
			cancel()
			return Result{}, d.continueAsNew(ctx)
		}
	}
	// Stop background analysis and the deadline timer whatever happened.
	cancel()
	return d.conclude(ctx, err), nil
}

// open makes the deployment visible: the status query, the signals, and
// the first phase (a continued run keeps its phase and refreshes the UI).
func (d *deployment) open(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (Status, error) { return d.snapshot(), nil }); err != nil {
		return fmt.Errorf("registering the status query: %w", err)
	}
	d.listenForSignals(ctx)
	if d.in.Resume == nil {
		d.setPhase(ctx, PhaseDeploying)
	} else {
		d.updateDetails(ctx)
	}
	return nil
}

// startBackground starts the deadline timer and, in a continued run that
// carries one, the background analysis; both stop with ctx.
func (d *deployment) startBackground(ctx workflow.Context) {
	if dl := d.rb.Deadline.D(); dl > 0 {
		// The deadline counts from the first run's start, across
		// continue-as-new.
		left := dl - workflow.Now(ctx).Sub(d.status.StartedAt)
		workflow.Go(ctx, func(c workflow.Context) {
			if left <= 0 || workflow.Sleep(c, left) == nil {
				d.stop(stopIntent{kind: stopDeadline, reason: fmt.Sprintf("deployment deadline of %s exceeded", d.rb.Deadline)})
			}
		})
	}
	if r := d.in.Resume; r != nil && r.Analysis != nil && d.rb.Analysis != nil {
		d.startAnalysis(ctx, d.rb.Analysis, r.Analysis)
	}
}

// conclude ends the deployment after its forward phase returned err:
// success, or a stop past the point of no return, or a rollback.
func (d *deployment) conclude(ctx workflow.Context, err error) Result {
	if err == nil && d.intent == nil {
		return d.finish(ctx, OutcomeSucceeded, "")
	}
	if d.intent == nil {
		switch {
		case ctx.Err() != nil:
			d.intent = &stopIntent{kind: stopCancel, reason: "workflow cancellation requested"}
		default:
			d.intent = &stopIntent{kind: stopFailure, reason: err.Error(), step: d.status.CurrentStep}
		}
	}
	// The rest runs in a disconnected context: cancelling the workflow must
	// not stop its rollback.
	rctx, _ := workflow.NewDisconnectedContext(ctx)
	if d.pivot != "" {
		d.log.Warn("Failure after the point of no return; not rolling back", "pivot", d.pivot, "reason", d.intent.reason)
		return d.finish(rctx, OutcomeFailedAfterCommit, fmt.Sprintf("%s (after the point of no return %q: earlier steps are committed; a human must decide)", d.intent.reason, d.pivot))
	}
	d.rollback(rctx)
	outcome, reason := d.rollbackOutcome(rctx)
	return d.finish(rctx, outcome, reason)
}

// rollbackOutcome says how a finished rollback ends, running the
// runbook's verification after rollback when every compensation ran.
func (d *deployment) rollbackOutcome(rctx workflow.Context) (Phase, string) {
	outcome := OutcomeRolledBack
	if d.intent.kind == stopAbort || d.intent.kind == stopCancel {
		outcome = OutcomeAborted
	}
	reason := d.intent.reason
	if d.skipped {
		return OutcomeRollbackFailed, reason + "; rollback incomplete: an operator skipped a compensation"
	}
	if rv := d.rollbackVerify(); rv != nil {
		run := newCheckRun(rctx, "rollback-verify", len(rv.Checks))
		if vErr := d.runChecks(rctx, run, rv.Checks, nil, rv.Interval.D(), rv.Duration.D(), true, false); vErr != nil {
			return OutcomeRollbackFailed, reason + "; verification after rollback failed: " + vErr.Error()
		}
	}
	return outcome, reason
}

func newDeployment(ctx workflow.Context, in *Input) *deployment {
	info := workflow.GetInfo(ctx)
	d := &deployment{
		in:     in,
		rb:     &in.Runbook,
		log:    workflow.GetLogger(ctx),
		id:     info.WorkflowExecution.ID + "/" + info.WorkflowExecution.RunID,
		routes: map[string]runbook.Route{},
	}
	for _, r := range in.Runbook.Routes {
		d.routes[r.Name] = r
	}
	d.nctx, _ = workflow.NewDisconnectedContext(ctx)
	d.status = Status{
		Service:   in.Runbook.Service,
		Version:   in.Version,
		StartedBy: originString(in.StartedBy),
		StartedAt: workflow.Now(ctx),
	}
	for _, s := range in.Runbook.Steps {
		d.status.Steps = append(d.status.Steps, StepStatus{Name: s.Name, Kind: s.Kind(), State: StepPending, Irreversible: s.Irreversible})
	}
	return d
}

// forward runs the steps in order from step from (0, or the verify step a
// continued run resumes). It returns nil when every step passed, or the
// first error (including cancellation by an intent).
func (d *deployment) forward(ctx workflow.Context, from int, resume *Resume) error {
	for i := from; i < len(d.rb.Steps); i++ {
		step := d.rb.Steps[i]
		if a := d.rb.Analysis; a != nil && a.From == step.Name && d.analysis == nil {
			d.startAnalysis(ctx, a, nil)
		}
		if err := d.waitWhilePaused(ctx); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		resumed := resume != nil && i == from
		d.current = i
		if !resumed {
			d.beginStep(ctx, i)
		}
		var err error
		if k := stepKinds[step.Kind()]; k == nil {
			err = fmt.Errorf("step %q has no kind", step.Name)
		} else {
			var r *Resume
			if resumed {
				r = resume
			}
			err = k.forward(ctx, d, i, r)
		}
		if errors.Is(err, errContinueAsNew) {
			return err
		}
		if err != nil {
			state := StepFailed
			if ctx.Err() != nil {
				state = StepCancelled
			}
			d.endStep(ctx, i, state, err.Error())
			if d.intent == nil && ctx.Err() == nil {
				d.intent = &stopIntent{kind: stopFailure, reason: fmt.Sprintf("step %s: %v", step.Name, err), step: step.Name}
			}
			return err
		}
		state := StepPassed
		if step.Mutating() {
			state = StepApplied
		}
		if step.Irreversible {
			d.crossPivot(step.Name)
			state = StepCommitted
		}
		d.endStep(ctx, i, state, "")
		if d.status.Phase != PhaseDeploying && i < len(d.rb.Steps)-1 {
			d.setPhase(ctx, PhaseDeploying)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// stop records why the forward phase must end and cancels it. The first
// intent wins; later ones are logged and ignored.
func (d *deployment) stop(i stopIntent) {
	if d.intent != nil || d.rollingBack || d.finished {
		d.log.Info("Ignoring stop request: deployment already stopping", "kind", i.kind, "reason", i.reason)
		return
	}
	d.intent = &i
	d.log.Info("Stopping deployment", "kind", i.kind, "reason", i.reason)
	d.cancelForward()
}

// crossPivot discards the compensations pushed so far: past an irreversible
// step, undoing earlier steps would be unsafe.
func (d *deployment) crossPivot(step string) {
	d.pivot = step
	for i := range d.comps {
		if d.comps[i].State == CompPending {
			d.comps[i].State = CompDiscarded
			d.comps[i].Detail = "discarded at the point of no return " + step
		}
	}
}

func (d *deployment) waitWhilePaused(ctx workflow.Context) error {
	if !d.paused {
		return nil
	}
	prev := d.status.Phase
	d.setPhase(ctx, PhasePaused)
	err := workflow.Await(ctx, func() bool { return !d.paused })
	if err == nil {
		d.setPhase(ctx, prev)
	}
	return err
}

func (d *deployment) rollbackVerify() *runbook.VerifyStep {
	if d.rb.Rollback == nil {
		return nil
	}
	return d.rb.Rollback.Verify
}

func (d *deployment) finish(ctx workflow.Context, outcome Phase, reason string) Result {
	d.finished = true
	d.status.Outcome = outcome
	d.status.Reason = reason
	d.status.CurrentStep = ""
	d.setPhase(ctx, outcome)
	r := Result{
		Service:           d.rb.Service,
		Version:           d.in.Version,
		Outcome:           outcome,
		Reason:            reason,
		PointOfNoReturn:   d.pivot,
		Steps:             d.status.Steps,
		Compensations:     d.resultComps(),
		StartedAt:         d.status.StartedAt,
		EndedAt:           workflow.Now(ctx),
		RollbackStartedAt: d.rollbackStarted,
		RollbackEndedAt:   d.rollbackEnded,
		Problems:          d.status.Problems,
		SignedBy:          d.status.SignedBy,
	}
	if d.intent != nil {
		r.FailedStep = d.intent.step
	}
	d.countOutcome(ctx, outcome)
	d.waitForNotifications(ctx)
	d.log.Info("Deployment finished", "outcome", outcome, "reason", reason)
	return r
}

// isCancel tells cancellation apart from a real failure.
func isCancel(ctx workflow.Context, err error) bool {
	var ce *temporal.CanceledError
	return errors.As(err, &ce) || errors.Is(err, workflow.ErrCanceled) || ctx.Err() != nil
}

// resume restores the state a previous run carried over continue-as-new and
// returns the step to continue from.
func (d *deployment) resume(r *Resume) int {
	d.status = r.Status
	d.comps = r.Comps
	d.pivot = r.Pivot
	d.paused = r.Paused
	d.generation = r.Generation
	return r.StepIndex
}

// continueAsNew hands the deployment to a fresh run between two rounds of a
// long verification, carrying everything the next run needs.
func (d *deployment) continueAsNew(ctx workflow.Context) error {
	if d.roundsTrimmed {
		d.status.Rounds = nil
	}
	next := d.nextInput()
	d.log.Info("Continuing as new during a long verification", "step", d.rb.Steps[d.current].Name, "generation", next.Resume.Generation,
		"historyLength", workflow.GetInfo(ctx).GetCurrentHistoryLength())
	return workflow.NewContinueAsNewError(ctx, WorkflowType, next)
}

// nextInput is the input of the run that continues this one.
func (d *deployment) nextInput() Input {
	return Input{Bundle: d.in.Bundle, Resume: &Resume{
		Generation: d.generation + 1,
		StepIndex:  d.current,
		Verify:     d.verify,
		Analysis:   d.analysis,
		Status:     d.status,
		Comps:      d.comps,
		Pivot:      d.pivot,
		Paused:     d.paused,
	}}
}
