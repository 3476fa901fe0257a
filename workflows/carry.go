package workflows

import "go.temporal.io/sdk/workflow"

// trimRoundsChange is the workflow.GetVersion change ID of dropping the
// status's measurement rounds from a continue-as-new input that would
// otherwise pass the limit. The rounds are only for display (the previous
// run's history keeps every one); without this, a deployment whose checks
// fail tolerated measurements with long errors could not hop, and its
// history grew until Temporal terminated it without a rollback.
const trimRoundsChange = "trim-carried-rounds"

// trimCarriedRounds drops the status's rounds when the deployment runs
// code with trimRoundsChange, and reports whether it dropped any. It asks
// GetVersion only on this rare path, so ordinary histories are unchanged.
func (d *deployment) trimCarriedRounds(ctx workflow.Context) bool {
	if len(d.status.Rounds) == 0 {
		return false
	}
	if !d.trimVersioned {
		d.trimVersioned = true
		d.trimOn = workflow.GetVersion(ctx, trimRoundsChange, workflow.DefaultVersion, 1) >= 1
	}
	if !d.trimOn {
		return false
	}
	d.log.Info("Dropping the status's measurement rounds from the continue-as-new input to fit the limit", "rounds", len(d.status.Rounds))
	d.status.Rounds = nil
	d.roundsTrimmed = true
	return true
}
