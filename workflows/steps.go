package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/activities/contract"
	"github.com/rollbook/rollbook/internal/router"
	"github.com/rollbook/rollbook/runbook"
)

// Activity timeouts. Temporal notices that a worker died (kill -9, OOM, a
// lost node) only through them, so they bound how long a crashed worker
// delays a deployment or, worse, its rollback: the abort of a step whose
// apply ran on a dead worker waits for the apply to time out
// (WaitForCancellation). Quick activities are one or two round trips to
// Consul, HAProxy (the driver bounds each at 5 s) or the database; long ones
// (migrations) heartbeat every 2 s, so 10 s without a heartbeat means the
// worker is gone. The crash campaign (tests/chaos, make chaos) exercises
// both; 30 s made every crash cost half a minute.
const (
	quickTimeout     = 10 * time.Second
	heartbeatTimeout = 10 * time.Second
)

// nonRetryable are the activity error types that retrying cannot fix.
var nonRetryable = []string{contract.ErrInvalid, contract.ErrConflict, contract.ErrMismatch, contract.ErrNoCapacity, contract.ErrArchive}

func captureOptions(summary string) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: quickTimeout,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        500 * time.Millisecond,
			BackoffCoefficient:     2,
			MaximumInterval:        10 * time.Second,
			MaximumAttempts:        5,
			NonRetryableErrorTypes: nonRetryable,
		},
	}
}

// applyOptions wait for cancellation: an abort that arrives while an apply
// runs must not let the step's compensation race the apply.
func applyOptions(summary string, long bool) workflow.ActivityOptions {
	o := workflow.ActivityOptions{
		StartToCloseTimeout: quickTimeout,
		WaitForCancellation: true,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        500 * time.Millisecond,
			BackoffCoefficient:     2,
			MaximumInterval:        5 * time.Second,
			MaximumAttempts:        3,
			NonRetryableErrorTypes: nonRetryable,
		},
	}
	if long {
		o.StartToCloseTimeout = 30 * time.Minute
		o.HeartbeatTimeout = heartbeatTimeout
	}
	return o
}

func (d *deployment) ref(step string) contract.StepRef {
	return contract.StepRef{DeploymentID: d.id, Step: step}
}

func (d *deployment) push(c Compensation) int {
	c.State = CompPending
	d.comps = append(d.comps, c)
	return len(d.comps) - 1
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

func (d *deployment) traffic(ctx workflow.Context, i int) error {
	step := d.rb.Steps[i]
	t := step.Traffic
	route := d.routes[t.Route]
	in := contract.TrafficInput{StepRef: d.ref(step.Name), Route: route}
	var captured contract.WeightState
	cctx := workflow.WithActivityOptions(ctx, captureOptions(fmt.Sprintf("%s: read weights of %s on %s", step.Name, route.Backend, route.Router)))
	if err := workflow.ExecuteActivity(cctx, contract.ActivityCaptureWeights, in).Get(ctx, &captured); err != nil {
		return fmt.Errorf("capturing weights of route %s: %w", route.Name, err)
	}
	d.status.Steps[i].Captured = &Captured{Weights: &captured, WeightsSet: t.Weights}
	if prev, left := d.lastTrafficApplied(route); prev != "" && !router.EqualWeights(route.Subsets, left, captured.Weights) {
		// HAProxy forgets runtime weights on a restart without saved
		// state and comes back at its configured ones: building on those
		// would treat a capture of the wrong state as the truth, and the
		// rollback would then "restore" it. Stop before writing anything;
		// the rollback's own checks find the same mismatch and ask a human.
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"route %s is at %s, but step %s left it at %s: the router was restarted without its saved state, or someone changed the weights since; nothing was written",
			route.Name, runbook.FormatWeights(captured.Weights), prev, runbook.FormatWeights(left)), contract.ErrMismatch, nil)
	}
	ci := d.push(Compensation{Step: step.Name, Kind: runbook.KindTraffic,
		Traffic: &contract.RestoreWeightsInput{TrafficInput: in, Captured: captured, Applied: t.Weights}})
	actx := workflow.WithActivityOptions(ctx, applyOptions(fmt.Sprintf("%s: set %s to %s", step.Name, route.Name, runbook.FormatWeights(t.Weights)), false))
	var after contract.WeightState
	if err := workflow.ExecuteActivity(actx, contract.ActivitySetWeights, contract.SetWeightsInput{TrafficInput: in, Weights: t.Weights, Captured: captured}).Get(ctx, &after); err != nil {
		return fmt.Errorf("setting weights of route %s: %w", route.Name, err)
	}
	d.comps[ci].ApplyDone = true
	d.status.Steps[i].Detail = fmt.Sprintf("%s: %s → %s", route.Name, runbook.FormatWeights(captured.Weights), runbook.FormatWeights(t.Weights))
	return nil
}

// lastTrafficApplied returns the latest step whose weights were applied to
// route, and those weights ("" when none was).
func (d *deployment) lastTrafficApplied(route runbook.Route) (string, map[string]int) {
	for j := len(d.comps) - 1; j >= 0; j-- {
		c := d.comps[j]
		if c.Traffic != nil && c.ApplyDone && c.Traffic.Route.Name == route.Name {
			return c.Step, c.Traffic.Applied
		}
	}
	return "", nil
}
