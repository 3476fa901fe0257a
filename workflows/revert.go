package workflows

import (
	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/runbook"
)

// RevertWorkflowType is the registered name of the Revert workflow.
const RevertWorkflowType = "Revert"

// OutcomeReverted ends a Revert whose compensations all ran.
const OutcomeReverted Phase = "reverted"

// ErrTypeNotRevertible refuses a revert that would be unsafe.
const ErrTypeNotRevertible = "RollbookNotRevertible"

// RevertInput undoes a succeeded deployment from its recorded result: the
// compensations carry the state captured before each step and what the step
// applied, so the same conflict checks as a rollback apply (a key or weight
// changed since is a conflict, never overwritten).
type RevertInput struct {
	Service string `json:"service"`
	// Version is the version being reverted (for the Web UI).
	Version string `json:"version"`
	// RevertedRunID is the run of the succeeded deployment.
	RevertedRunID string `json:"revertedRunID"`
	By            string `json:"by,omitempty"`
	Reason        string `json:"reason,omitempty"`
	// Rollback carries the original runbook's rollback options (gradual
	// traffic restore, stuckAfter).
	Rollback *runbook.RollbackOptions `json:"rollback,omitempty"`
	// Deployment is the reverted run's result.
	Deployment Result `json:"deployment"`
	// Files are the reverted run's migration files (from its bundle): the
	// compensations in its result name their folder but do not carry them.
	Files []runbook.File `json:"files,omitempty"`
}

// Revertible says why a deployment result cannot be reverted, or "".
func Revertible(r Result) string {
	switch {
	case r.Outcome != OutcomeSucceeded:
		return fmt.Sprintf("the deployment ended %s, not succeeded: only a succeeded deployment can be reverted", r.Outcome)
	case r.PointOfNoReturn != "":
		return fmt.Sprintf("the deployment crossed the point of no return at step %q (irreversible): the steps before it were committed and their compensations discarded, so undoing them could break what depends on them", r.PointOfNoReturn)
	}
	for _, c := range r.Compensations {
		if c.State == CompPending {
			return ""
		}
	}
	return "the deployment changed nothing that can be undone"
}

// Revert runs a succeeded deployment's compensations in reverse order, as a
// rollback would have. It shares the workflow ID rollbook-<service> with
// Deploy, so it never runs next to a deployment of the same service.
func Revert(ctx workflow.Context, in RevertInput) (Result, error) {
	if why := Revertible(in.Deployment); why != "" {
		return Result{}, temporal.NewNonRetryableApplicationError("cannot revert: "+why, ErrTypeNotRevertible, nil)
	}
	b := &Input{Bundle: runbook.Bundle{Runbook: runbook.Runbook{Service: in.Service, Rollback: in.Rollback}, Version: in.Version, Files: in.Files}}
	d := newDeployment(ctx, b)
	d.status.Steps = append([]StepStatus(nil), in.Deployment.Steps...)
	for _, c := range in.Deployment.Compensations {
		if c.State != CompPending {
			continue
		}
		c.Merged, c.Attempts, c.Error, c.Detail = nil, 0, "", ""
		d.comps = append(d.comps, c)
	}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (Status, error) { return d.snapshot(), nil }); err != nil {
		return Result{}, fmt.Errorf("registering the status query: %w", err)
	}
	d.listenForSignals(ctx)
	reason := fmt.Sprintf("revert of %s %s (run %s)", in.Service, in.Version, in.RevertedRunID)
	if in.By != "" {
		reason += " requested by " + in.By
	}
	if in.Reason != "" {
		reason += ": " + in.Reason
	}
	d.intent = &stopIntent{kind: stopAbort, reason: reason}
	rctx, _ := workflow.NewDisconnectedContext(ctx)
	d.rollback(rctx)
	outcome := OutcomeReverted
	if d.skipped {
		outcome = OutcomeRollbackFailed
		reason += "; revert incomplete: an operator skipped a compensation"
	}
	return d.finish(rctx, outcome, reason), nil
}
