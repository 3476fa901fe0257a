package workflows

import (
	"fmt"
	"strings"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/activities/contract"
	"github.com/rollbook/rollbook/internal/clip"
)

// OutcomeRefused ends a deployment the preflight refused: a name the worker
// does not know, a backend or database that is not there, a key outside the
// allowed prefixes, a missing or bad signature. Nothing was changed.
const OutcomeRefused Phase = "refused"

// ErrTypeUntrustedResume fails a continued run whose input does not carry a
// valid signature although the worker requires one.
const ErrTypeUntrustedResume = "RollbookUntrustedResume"

// preflightChange is the workflow.GetVersion change ID of the preflight:
// histories recorded before it replay without the activity.
const preflightChange = "preflight"

// preflightOptions: the activity probes each live system for a few seconds
// at most. A fresh deployment gives up after a few attempts (and is refused:
// nothing ran yet); a continued one retries until a worker answers, because
// refusing it would strand the changes already made.
func preflightOptions(resumed bool) workflow.ActivityOptions {
	o := preflightPolicy.options("preflight: names, live systems and signature")
	if resumed {
		o.Summary = "preflight: signature of the continued run's input"
		o.RetryPolicy.MaximumAttempts = 0
	}
	return o
}

// preflight runs the Preflight activity before the first change. It returns
// the problems that refuse a fresh deployment (nil: go on). A continued run
// only re-checks its input's signature, and an untrusted one is an error:
// its carried compensations must not run. A cancellation (an abort during
// the preflight) returns no problems: the forward phase then stops at once
// and the usual path ends the deployment.
func (d *deployment) preflight(ctx workflow.Context) ([]string, error) {
	if workflow.GetVersion(ctx, preflightChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil, nil
	}
	resumed := d.in.Resume != nil
	b := d.in.Bundle
	// The files were checked with the hash; the preflight needs the rest.
	b.Files = nil
	in := contract.PreflightInput{StepRef: d.ref("preflight"), Bundle: b, SignatureOnly: resumed}
	actx := workflow.WithActivityOptions(ctx, preflightOptions(resumed))
	var res contract.PreflightResult
	err := workflow.ExecuteActivity(actx, contract.ActivityPreflight, in).Get(ctx, &res)
	switch {
	case err != nil && isCancel(ctx, err):
		return nil, nil
	case err != nil && resumed:
		return nil, err
	case err != nil:
		return []string{fmt.Sprintf("preflight could not run: %v", err)}, nil
	}
	d.status.SignedBy = res.SignedBy
	if resumed && len(res.Problems) > 0 {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"the continued run's input is not trusted (%s); its carried compensations were not run — a human must check %s",
			strings.Join(res.Problems, "; "), d.rb.Service), ErrTypeUntrustedResume, nil)
	}
	return res.Problems, nil
}

// refuse ends a deployment the preflight refused, listing every problem.
func (d *deployment) refuse(ctx workflow.Context, problems []string) Result {
	d.status.Problems = problems
	noun := "problems"
	if len(problems) == 1 {
		noun = "problem"
	}
	reason := fmt.Sprintf("preflight refused the deployment, nothing was changed (%d %s): %s", len(problems), noun, strings.Join(problems, "; "))
	d.log.Warn("Preflight refused the deployment", "problems", problems)
	return d.finish(ctx, OutcomeRefused, clip.Ellipsis(reason, 4000))
}
