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

// The traffic step kind: forward (capture the weights, push the restore, set
// the new weights), its undo (restore the captured weights, instantly or
// through the rollback's gradual stages) and its merge rule (adjacent
// stages of one route go back in one write).
type trafficKind struct{}

func (trafficKind) forward(ctx workflow.Context, d *deployment, i int, _ *Resume) error {
	return d.traffic(ctx, i)
}

func (trafficKind) merge(d *deployment, i int) int { return d.mergeTraffic(i) }

// undo runs one attempt. For a gradual traffic restore it walks the
// remaining stages (p.stage counts those done, across attempts).
func (trafficKind) undo(ctx workflow.Context, d *deployment, c *Compensation, p *undoProgress) (contract.RestoreResult, error) {
	if !p.planned {
		p.stages, p.planned = d.trafficStages(c), true
	}
	var res contract.RestoreResult
	in := *c.Traffic
	in.CheckCapacity = d.capacityCheck()
	interval := time.Duration(0)
	if d.rb.Rollback != nil && d.rb.Rollback.Traffic != nil {
		interval = d.rb.Rollback.Traffic.Interval.D()
	}
	// The compensation is "already restored" only when no stage wrote
	// anything: each stage's answer is read on its own, because a
	// decoded true does not reset to false in a reused struct.
	wrote := false
	for ; p.stage <= len(p.stages); p.stage++ {
		s := in
		if p.stage > 0 {
			s.Expect = p.stages[p.stage-1]
		}
		target := in.Captured.Weights
		if p.stage < len(p.stages) {
			s.Target = p.stages[p.stage]
			target = s.Target
		}
		actx := workflow.WithActivityOptions(ctx, compOptions(fmt.Sprintf("undo %s: set %s to %s", c.Step, in.Route.Name, runbook.FormatWeights(target)), false))
		var r contract.RestoreResult
		if err := workflow.ExecuteActivity(actx, contract.ActivityRestoreWeights, s).Get(ctx, &r); err != nil {
			return r, err
		}
		wrote = wrote || !r.AlreadyRestored
		res = r
		if p.stage < len(p.stages) && interval > 0 {
			_ = workflow.Sleep(ctx, interval)
		}
	}
	res.AlreadyRestored = !wrote
	return res, nil
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

// mergeTraffic folds adjacent traffic compensations of the same route into
// the top one, so a canary at 50 % goes back to its original weights in one
// write instead of walking back through every stage. It returns the lowest
// index merged (i itself when nothing merges).
func (d *deployment) mergeTraffic(i int) int {
	top := &d.comps[i]
	if top.Traffic == nil || !top.ApplyDone {
		return i
	}
	j := i
	for j-1 >= 0 {
		c := &d.comps[j-1]
		if c.State != CompPending || c.Traffic == nil || !c.ApplyDone || !sameRoute(c.Traffic.Route, top.Traffic.Route) {
			break
		}
		j--
	}
	if j == i {
		return i
	}
	top.Traffic.Captured = d.comps[j].Traffic.Captured
	for k := j; k < i; k++ {
		top.Merged = append(top.Merged, d.comps[k].Step)
	}
	return j
}

func sameRoute(a, b runbook.Route) bool {
	return a.Router == b.Router && a.Backend == b.Backend
}

// trafficStages returns the intermediate weights of a gradual restore (none
// for the default instant flip). Each stage gives the canary the listed
// percentage and the stable subset the rest; the last stage, the captured
// weights, is implicit.
func (d *deployment) trafficStages(c *Compensation) []map[string]int {
	if c.Traffic == nil || d.rb.Rollback == nil || d.rb.Rollback.Traffic == nil {
		return nil
	}
	r := c.Traffic.Route
	current := c.Traffic.Applied[r.Canary]
	var stages []map[string]int
	for _, p := range d.rb.Rollback.Traffic.Steps {
		if p >= current || p <= c.Traffic.Captured.Weights[r.Canary] {
			continue
		}
		stages = append(stages, map[string]int{r.Stable: 100 - p, r.Canary: p})
	}
	return stages
}

func (d *deployment) capacityCheck() bool {
	if d.rb.Rollback != nil && d.rb.Rollback.Traffic != nil && d.rb.Rollback.Traffic.CapacityCheck != nil {
		return *d.rb.Rollback.Traffic.CapacityCheck
	}
	return true
}
