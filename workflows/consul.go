package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/activities/contract"
	"github.com/rollbook/rollbook/runbook"
)

// The consul step kind: forward (capture the keys, push the restore, write
// them in one transaction with check-and-set) and its undo (restore the
// captured values). Its captured values' storage rules are in kvvalues.go.
type consulKind struct{ noMerge }

func (consulKind) forward(ctx workflow.Context, d *deployment, i int, _ *Resume) error {
	return d.consul(ctx, i)
}

// undo restores the captured keys, refusing to overwrite someone else's
// change (a conflict asks an operator).
func (consulKind) undo(ctx workflow.Context, d *deployment, c *Compensation, _ *undoProgress) (contract.RestoreResult, error) {
	var res contract.RestoreResult
	in, err := d.kvRestoreInput(c)
	if err != nil {
		return res, err
	}
	actx := workflow.WithActivityOptions(ctx, compOptions(fmt.Sprintf("undo %s: restore %d Consul keys", c.Step, len(in.Ops)), false))
	err = workflow.ExecuteActivity(actx, contract.ActivityRestoreKV, in).Get(ctx, &res)
	return res, err
}

func (d *deployment) consul(ctx workflow.Context, i int) error {
	step := d.rb.Steps[i]
	in := contract.KVInput{StepRef: d.ref(step.Name), Ops: step.Consul.Ops()}
	var captured contract.KVState
	cctx := workflow.WithActivityOptions(ctx, captureOptions(fmt.Sprintf("%s: read %d Consul keys", step.Name, len(in.Ops))))
	if err := workflow.ExecuteActivity(cctx, contract.ActivityCaptureKV, in).Get(ctx, &captured); err != nil {
		return fmt.Errorf("capturing Consul keys: %w", err)
	}
	oneCopy := d.kvOneCopy(ctx)
	if oneCopy {
		if err := d.checkKVBudget(step.Name, captured); err != nil {
			return err
		}
	}
	d.status.Steps[i].Captured = &Captured{KV: &captured}
	comp := Compensation{Step: step.Name, Kind: runbook.KindConsul,
		KV: &contract.KVRestoreInput{KVInput: in, Captured: captured}}
	if oneCopy {
		// One copy of the captured values, in the compensation; the
		// runbook's own values stay in the bundle (see kvOneCopy).
		d.status.Steps[i].Captured.KV = withoutValues(captured)
		comp.KV.Ops = opsWithoutValues(in.Ops)
		comp.KVValuesInRunbook = true
	}
	// Pushed before the apply, so a half-done apply is undone too; for an
	// irreversible step it is discarded once the apply succeeds.
	ci := d.push(comp)
	actx := workflow.WithActivityOptions(ctx, applyOptions(fmt.Sprintf("%s: write %d Consul keys in one transaction", step.Name, len(in.Ops)), false))
	var applied contract.KVState
	if err := workflow.ExecuteActivity(actx, contract.ActivityApplyKV, contract.KVApplyInput{KVInput: in, Captured: captured}).Get(ctx, &applied); err != nil {
		return fmt.Errorf("writing Consul keys: %w", err)
	}
	rec := &applied
	if oneCopy {
		// What the apply wrote is the step's own values: keep the
		// indexes, take the values from the runbook when restoring.
		rec = withoutValues(applied)
	}
	d.status.Steps[i].Captured.KVApplied = rec
	// With the indexes our write produced, the restore can tell our write
	// from someone else's exactly.
	d.comps[ci].KV.Applied = rec
	d.comps[ci].ApplyDone = true
	d.status.Steps[i].Detail = fmt.Sprintf("%d keys written", len(in.Ops))
	return nil
}
