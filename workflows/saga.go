package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/activities/contract"
)

// defaultStuckAfter is how long a failing compensation is retried before the
// workflow asks an operator. Long enough to ride out a Consul or database
// restart; conflicts do not wait for it.
const defaultStuckAfter = 5 * time.Minute

const maxCompBackoff = 15 * time.Second

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
		lowest := i
		if k := compensationKind(&d.comps[i]); k != nil {
			lowest = k.merge(d, i)
		}
		d.compensate(ctx, i, lowest)
		i = lowest
	}
	d.rollbackEnded = workflow.Now(ctx)
	d.timeRollback(ctx, d.rollbackEnded.Sub(d.rollbackStarted))
}

// compensate runs comps[i] until it succeeds or an operator skips it, then
// settles comps[lowest:i] that were merged into it.
func (d *deployment) compensate(ctx workflow.Context, i, lowest int) {
	c := &d.comps[i]
	c.State = CompRunning
	c.StartedAt = workflow.Now(ctx)
	d.status.CurrentStep = c.Step
	d.updateDetails(ctx)

	var progress undoProgress
	start := workflow.Now(ctx)
	backoff := time.Second
	stuckAfter := defaultStuckAfter
	if d.rb.Rollback != nil && d.rb.Rollback.StuckAfter > 0 {
		stuckAfter = d.rb.Rollback.StuckAfter.D()
	}
	final := CompDone
	for {
		c.Attempts++
		res, err := d.execCompensation(ctx, c, &progress)
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

func (d *deployment) settleStep(ctx workflow.Context, step string, compState CompState) {
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

// execCompensation runs one attempt of compensation c through its kind.
func (d *deployment) execCompensation(ctx workflow.Context, c *Compensation, p *undoProgress) (contract.RestoreResult, error) {
	k := compensationKind(c)
	if k == nil {
		return contract.RestoreResult{}, fmt.Errorf("compensation of %s has no action", c.Step)
	}
	return k.undo(ctx, d, c, p)
}
