package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/activities/contract"
	"github.com/rollbook/rollbook/runbook"
)

// The release step kind: its forward action, its undo, and their activity
// options, in one place.

// releaseKind is the release step kind; each compensation is undone on its
// own.
type releaseKind struct{ noMerge }

func (releaseKind) forward(ctx workflow.Context, d *deployment, i int, _ *Resume) error {
	return d.release(ctx, i)
}

func (releaseKind) undo(ctx workflow.Context, d *deployment, c *Compensation, _ *undoProgress) (contract.RestoreResult, error) {
	return d.execReleaseCompensation(ctx, c)
}

// releaseReadTimeout bounds the capture: one current command or request,
// which the worker configuration bounds at 1 minute
// (worker.MaxReleaseReadTimeout). The activity heartbeats, so a dead
// worker is still noticed after heartbeatTimeout.
const releaseReadTimeout = 2 * time.Minute

// release captures the version the target runs, pushes the compensation
// that puts it back, then releases the new version and waits for health.
// Apply and restore are long activities (a deploy plus a health wait, at
// most worker.MaxReleaseDeployAndWait) that heartbeat, and the apply waits
// for its cancellation, so an abort never lets the restore race the deploy.
func (d *deployment) release(ctx workflow.Context, i int) error {
	step := d.rb.Steps[i]
	r := step.Release
	version := r.VersionFor(d.in.Version)
	in := contract.ReleaseInput{StepRef: d.ref(step.Name), Target: r.Target}
	var captured contract.ReleaseState
	cctx := workflow.WithActivityOptions(ctx, releaseCaptureOptions(fmt.Sprintf("%s: read the version on %s", step.Name, r.Target)))
	if err := workflow.ExecuteActivity(cctx, contract.ActivityCaptureRelease, in).Get(ctx, &captured); err != nil {
		return fmt.Errorf("capturing the version on target %s: %w", r.Target, err)
	}
	d.status.Steps[i].Captured = &Captured{Release: &captured, ReleaseApplied: version}
	// Pushed before the apply, so a deploy that fails half-way is undone
	// too; for an irreversible step it is discarded once the apply succeeds.
	ci := d.push(Compensation{Step: step.Name, Kind: runbook.KindRelease,
		Release: &contract.RestoreReleaseInput{ReleaseInput: in, Captured: captured, Applied: version}})
	actx := workflow.WithActivityOptions(ctx, applyOptions(fmt.Sprintf("%s: release %s onto %s (now %s) and wait until healthy", step.Name, version, r.Target, captured.Version), true))
	var res contract.ReleaseResult
	if err := workflow.ExecuteActivity(actx, contract.ActivityApplyRelease,
		contract.ApplyReleaseInput{ReleaseInput: in, Version: version, Captured: captured}).Get(ctx, &res); err != nil {
		return fmt.Errorf("releasing %s onto target %s: %w", version, r.Target, err)
	}
	d.comps[ci].ApplyDone = true
	// From now on a target running neither version is someone else's
	// release, which the restore must not overwrite.
	d.comps[ci].Release.ApplyDone = true
	d.status.Steps[i].Detail = res.Detail
	return nil
}

// execReleaseCompensation runs one attempt at putting the captured version
// back. Each workflow attempt gets its own idempotency key (a deploy the
// deployer reported failed can be tried again); the activity's own retries
// reuse it.
func (d *deployment) execReleaseCompensation(ctx workflow.Context, c *Compensation) (contract.RestoreResult, error) {
	in := *c.Release
	in.Attempt = c.Attempts
	actx := workflow.WithActivityOptions(ctx, compOptions(fmt.Sprintf("undo %s: put %s back onto %s and wait until healthy", c.Step, in.Captured.Version, in.Target), true))
	var res contract.RestoreResult
	err := workflow.ExecuteActivity(actx, contract.ActivityRestoreRelease, in).Get(ctx, &res)
	return res, err
}

// releaseSummary is the Web UI's line for a release step.
func releaseSummary(s runbook.Step) string {
	v := "the deployment's version"
	if s.Release.Version != "" {
		v = "`" + s.Release.Version + "`"
	}
	return fmt.Sprintf("release %s onto target `%s`", v, s.Release.Target)
}
