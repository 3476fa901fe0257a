package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/activities/contract"
	"github.com/rollbook/rollbook/runbook"
)

// defaultStuckAfter is how long a failing compensation is retried before the
// workflow asks an operator. Long enough to ride out a Consul or database
// restart; conflicts do not wait for it.
const defaultStuckAfter = 5 * time.Minute

const maxCompBackoff = 15 * time.Second

func compOptions(summary string, long bool) workflow.ActivityOptions {
	o := workflow.ActivityOptions{
		StartToCloseTimeout: quickTimeout, // see quickTimeout: a crashed worker must not stall the rollback
		Summary:             summary,
		// A few quick attempts inside the activity; slower retries happen
		// in the workflow so the status can say what we are waiting on.
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        200 * time.Millisecond,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Second,
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

// rollback runs the pending compensations in reverse order. ctx must be a
// disconnected context: nothing may cancel a rollback half-way.
func (d *deployment) rollback(ctx workflow.Context) {
	d.rollingBack = true
	d.rollbackStarted = workflow.Now(ctx)
	d.status.Reason = d.intent.reason
	d.setPhase(ctx, PhaseRollingBack)
	for i := len(d.comps) - 1; i >= 0; i-- {
		if d.comps[i].State != CompPending {
			continue
		}
		lowest := d.mergeTraffic(i)
		d.compensate(ctx, i, lowest)
		i = lowest
	}
	d.rollbackEnded = workflow.Now(ctx)
	d.timeRollback(ctx, d.rollbackEnded.Sub(d.rollbackStarted))
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

// compensate runs comps[i] until it succeeds or an operator skips it, then
// settles comps[lowest:i] that were merged into it.
func (d *deployment) compensate(ctx workflow.Context, i, lowest int) {
	c := &d.comps[i]
	c.State = CompRunning
	c.StartedAt = workflow.Now(ctx)
	d.status.CurrentStep = c.Step
	d.updateDetails(ctx)

	stages := d.trafficStages(c)
	stage := 0
	start := workflow.Now(ctx)
	backoff := time.Second
	stuckAfter := defaultStuckAfter
	if d.rb.Rollback != nil && d.rb.Rollback.StuckAfter > 0 {
		stuckAfter = d.rb.Rollback.StuckAfter.D()
	}
	final := CompDone
	for {
		c.Attempts++
		res, err := d.execCompensation(ctx, c, stages, &stage)
		if err == nil {
			if res.AlreadyRestored {
				final = CompAlreadyRestored
			}
			c.Detail = res.Detail
			c.Error = ""
			d.recordPreserved(c, res)
			break
		}
		c.Error = err.Error()
		d.countRetry(ctx, c.Kind)
		d.log.Warn("Compensation failed", "step", c.Step, "attempt", c.Attempts, "error", err)
		if hardFailure(err) || workflow.Now(ctx).Sub(start) >= stuckAfter {
			if d.waitForOperator(ctx, c) {
				start, backoff = workflow.Now(ctx), time.Second
				continue
			}
			final = CompSkipped
			d.skipped = true
			break
		}
		c.Detail = fmt.Sprintf("attempt %d failed, retrying in %s", c.Attempts, backoff)
		d.updateDetails(ctx)
		_ = workflow.Sleep(ctx, backoff)
		backoff = min(backoff*2, maxCompBackoff)
	}
	c.State = final
	c.EndedAt = workflow.Now(ctx)
	d.settleStep(ctx, c.Step, final)
	for k := lowest; k < i; k++ {
		m := &d.comps[k]
		m.State = final
		m.Detail = "restored together with " + c.Step
		m.StartedAt, m.EndedAt = c.StartedAt, c.EndedAt
		d.settleStep(ctx, m.Step, final)
	}
	d.updateDetails(ctx)
}

func (d *deployment) settleStep(ctx workflow.Context, step, compState string) {
	i := d.stepIndex(step)
	if i < 0 {
		return
	}
	st := &d.status.Steps[i]
	if compState == CompSkipped {
		st.State = StepSkipped
		st.Detail = "compensation skipped by an operator: " + st.Detail
	} else {
		st.State = StepCompensated
	}
	st.EndedAt = workflow.Now(ctx)
}

// hardFailure: errors that retrying cannot fix and that must not be forced
// (someone else changed the resource, or the input cannot work here).
func hardFailure(err error) bool {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		for _, t := range nonRetryable {
			if ae.Type() == t {
				return true
			}
		}
	}
	return false
}

// waitForOperator parks the rollback in rollback-stuck until a retry (true)
// or skip (false) signal arrives.
func (d *deployment) waitForOperator(ctx workflow.Context, c *Compensation) bool {
	c.State = CompStuck
	d.countStuck(ctx, c.Kind)
	d.stuckStep = c.Step
	d.decision = ""
	d.status.Reason = fmt.Sprintf("compensation of %s is stuck: %s", c.Step, c.Error)
	d.setPhase(ctx, PhaseRollbackStuck)
	_ = workflow.Await(ctx, func() bool { return d.decision != "" })
	decision := d.decision
	d.decision, d.stuckStep = "", ""
	d.status.Reason = d.intent.reason
	c.State = CompRunning
	d.setPhase(ctx, PhaseRollingBack)
	return decision == SignalRetry
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

// execCompensation runs one attempt. For a gradual traffic restore it walks
// the remaining stages (stage counts those done, across attempts).
func (d *deployment) execCompensation(ctx workflow.Context, c *Compensation, stages []map[string]int, stage *int) (contract.RestoreResult, error) {
	var res contract.RestoreResult
	switch {
	case c.Migrate != nil:
		return d.undoMigrate(ctx, c)
	case c.KV != nil:
		in, err := d.kvRestoreInput(c)
		if err != nil {
			return res, err
		}
		actx := workflow.WithActivityOptions(ctx, compOptions(fmt.Sprintf("undo %s: restore %d Consul keys", c.Step, len(in.Ops)), false))
		err = workflow.ExecuteActivity(actx, contract.ActivityRestoreKV, in).Get(ctx, &res)
		return res, err
	case c.Traffic != nil:
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
		for ; *stage <= len(stages); *stage++ {
			s := in
			if *stage > 0 {
				s.Expect = stages[*stage-1]
			}
			target := in.Captured.Weights
			if *stage < len(stages) {
				s.Target = stages[*stage]
				target = s.Target
			}
			actx := workflow.WithActivityOptions(ctx, compOptions(fmt.Sprintf("undo %s: set %s to %s", c.Step, in.Route.Name, runbook.FormatWeights(target)), false))
			var r contract.RestoreResult
			if err := workflow.ExecuteActivity(actx, contract.ActivityRestoreWeights, s).Get(ctx, &r); err != nil {
				return r, err
			}
			wrote = wrote || !r.AlreadyRestored
			res = r
			if *stage < len(stages) && interval > 0 {
				_ = workflow.Sleep(ctx, interval)
			}
		}
		res.AlreadyRestored = !wrote
		return res, nil
	case c.Release != nil:
		return d.execReleaseCompensation(ctx, c)
	}
	return res, fmt.Errorf("compensation of %s has no action", c.Step)
}
