package workflows

import (
	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/activities/contract"
	"github.com/rollbook/rollbook/runbook"
)

// kvOneCopyChange is the workflow.GetVersion change ID of "one copy of the
// Consul values". Before it, a consul step's captured values (up to
// 512 KiB a key) were kept in its status step and in its compensation, and
// the values it writes three more times (the compensation's ops, its applied
// state, the status's applied state), so the continue-as-new input could
// pass the limit and the history then grew until Temporal terminated the
// deployment without a rollback. Now the compensation holds the captured
// values once, the values the step writes stay in the bundle only, and the
// captured values of a deployment are bounded (MaxCapturedKVBytes). The
// change alters what the status carries, and so the size that decides a
// continue-as-new: histories recorded before it keep the old shape.
const kvOneCopyChange = "kv-one-copy"

func (d *deployment) kvOneCopy(ctx workflow.Context) bool {
	if !d.kvVersioned {
		d.kvVersioned = true
		d.kvOneCopyOn = workflow.GetVersion(ctx, kvOneCopyChange, workflow.DefaultVersion, 1) >= 1
	}
	return d.kvOneCopyOn
}

// checkKVBudget refuses a capture that would carry more Consul values than
// a deployment may (the preflight projected it, but the keys may have grown
// since). Nothing was written by the step yet; its earlier steps roll back.
func (d *deployment) checkKVBudget(step string, captured contract.KVState) error {
	held := 0
	for i := range d.comps {
		if c := d.comps[i].KV; c != nil {
			held += contract.CapturedKVBytes(c.Captured)
		}
	}
	n := contract.CapturedKVBytes(captured)
	if held+n > contract.MaxCapturedKVBytes {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"the keys step %s changes hold %d bytes, %d with the earlier consul steps; a deployment captures at most %d bytes of Consul values (they travel in workflow history); nothing was written",
			step, n, held+n, contract.MaxCapturedKVBytes), contract.ErrInvalid, nil)
	}
	return nil
}

// withoutValues returns st with every value left out (keys, existence,
// flags and indexes stay).
func withoutValues(st contract.KVState) *contract.KVState {
	out := contract.KVState{Entries: make([]contract.KVEntry, len(st.Entries))}
	for i, e := range st.Entries {
		e.Value = nil
		out.Entries[i] = e
	}
	return &out
}

func opsWithoutValues(ops []runbook.KVOp) []runbook.KVOp {
	out := make([]runbook.KVOp, len(ops))
	for i, op := range ops {
		out[i] = runbook.KVOp{Key: op.Key, Delete: op.Delete}
	}
	return out
}

// kvRestoreInput is the restore's input for c: as recorded, or with the
// step's values put back from the runbook.
func (d *deployment) kvRestoreInput(c *Compensation) (contract.KVRestoreInput, error) {
	in := *c.KV
	if !c.KVValuesInRunbook {
		return in, nil
	}
	i := d.stepIndex(c.Step)
	if i < 0 || d.rb.Steps[i].Consul == nil {
		return in, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"compensation of %s: its values are in the runbook, which has no consul step of that name", c.Step), contract.ErrInvalid, nil)
	}
	ops := d.rb.Steps[i].Consul.Ops()
	if !sameKeys(ops, in.Ops) {
		return in, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"compensation of %s: its keys are not the runbook step's", c.Step), contract.ErrInvalid, nil)
	}
	in.Ops = ops
	if in.Applied != nil && len(in.Applied.Entries) == len(ops) {
		applied := contract.KVState{Entries: append([]contract.KVEntry(nil), in.Applied.Entries...)}
		for j, op := range ops {
			if !op.Delete && applied.Entries[j].Exists {
				applied.Entries[j].Value = []byte(op.Value)
			}
		}
		in.Applied = &applied
	}
	return in, nil
}

// resultComps are the compensations as the Result carries them: whole, so
// that a Revert (which has no runbook) can run them.
func (d *deployment) resultComps() []Compensation {
	out := make([]Compensation, len(d.comps))
	copy(out, d.comps)
	for i := range out {
		c := &out[i]
		if c.KV == nil || !c.KVValuesInRunbook {
			continue
		}
		in, err := d.kvRestoreInput(c)
		if err != nil {
			continue
		}
		c.KV = &in
		c.KVValuesInRunbook = false
	}
	return out
}
