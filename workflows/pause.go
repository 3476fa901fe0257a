package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"
)

// The pause step kind: wait for a duration, or for an approve signal. It
// changes nothing, so it has no undo.
type pauseKind struct {
	noMerge
	noUndo
}

func (pauseKind) forward(ctx workflow.Context, d *deployment, i int, _ *Resume) error {
	return d.pause(ctx, i)
}

func (d *deployment) pause(ctx workflow.Context, i int) error {
	p := d.rb.Steps[i].Pause
	name := d.rb.Steps[i].Name
	if !p.Approval {
		d.setPhase(ctx, PhasePaused)
		return workflow.Sleep(ctx, p.Duration.D())
	}
	d.waitingApproval, d.approved = name, false
	defer func() { d.waitingApproval = "" }()
	d.setPhase(ctx, PhasePaused)
	if p.Timeout == 0 {
		return workflow.Await(ctx, func() bool { return d.approved })
	}
	ok, err := workflow.AwaitWithTimeout(ctx, p.Timeout.D(), func() bool { return d.approved })
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("no approval within %s", p.Timeout)
	}
	return nil
}
