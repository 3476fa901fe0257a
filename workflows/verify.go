package workflows

import (
	"go.temporal.io/sdk/workflow"
)

// The verify step kind: run its checks for a duration at an interval (the
// checks themselves are in checks.go). It changes nothing, so it has no
// undo; a failure triggers the rollback.
type verifyKind struct {
	noMerge
	noUndo
}

// forward runs the checks; a run that continued as new during this step
// picks its progress up from resume.
func (verifyKind) forward(ctx workflow.Context, d *deployment, i int, resume *Resume) error {
	step := d.rb.Steps[i]
	d.setPhase(ctx, PhaseVerifying)
	v := step.Verify
	d.verify = newCheckRun(ctx, step.Name, len(v.Checks))
	if resume != nil {
		d.verify = resume.Verify
	}
	return d.runWatched(ctx, d.verify, v.Checks, v.Interval.D(), v.Duration.D(), true, true)
}
