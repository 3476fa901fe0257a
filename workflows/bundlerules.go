package workflows

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/runbook"
)

// bundleRulesChange is the workflow.GetVersion change ID of the stricter
// bundle rules (one name syntax, GET/HEAD checks, limits, migration
// annotations). A workflow that an earlier worker accepted under the old
// rules replays with DefaultVersion: the history records that decision, and
// re-judging it now would change the commands of a running deployment.
const bundleRulesChange = "bundle-rules-2"

// checkBundle decides what to do with a bundle. It returns a non-nil error
// to refuse the deployment before anything ran, and a non-nil refusal (with
// a nil error) when a continued run carries a bundle today's rules refuse:
// earlier runs of the same deployment already changed things, so the
// deployment must not stop here and strand them — it rolls them back.
func checkBundle(ctx workflow.Context, in *Input) (refusal error, err error) {
	strict := workflow.GetVersion(ctx, bundleRulesChange, workflow.DefaultVersion, 1) >= 1
	cerr := in.Check()
	switch {
	case cerr == nil:
		return nil, nil
	case !strict && !errors.Is(cerr, runbook.ErrHashMismatch):
		workflow.GetLogger(ctx).Warn("Bundle accepted by an earlier worker is refused by today's rules; keeping the recorded decision", "error", cerr)
		return nil, nil
	case in.Resume == nil || errors.Is(cerr, runbook.ErrHashMismatch):
		// Nothing has been touched yet (or the bundle was changed after it
		// was built): refuse it as a whole.
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("invalid bundle: %v", cerr), ErrTypeInvalidBundle, nil)
	}
	return fmt.Errorf("this worker's rules refuse the bundle this deployment started with, so it does not go on; rolling back what earlier runs applied: %w", cerr), nil
}
