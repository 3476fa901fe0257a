package workflows

import (
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/rollbook/rollbook/runbook"
)

// StartOptions are the options every starter of a Deploy uses (the CLI,
// the benchmark): one deployment per service at a time (a second start
// fails with WorkflowExecutionAlreadyStarted), a finished ID can be reused,
// the search attributes the Web UI filters on and its summary.
func StartOptions(b *runbook.Bundle, taskQueue string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                                       WorkflowID(b.Runbook.Service),
		TaskQueue:                                taskQueue,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			SAService.ValueSet(b.Runbook.Service),
			SAVersion.ValueSet(b.Version),
			SAPhase.ValueSet(string(PhaseDeploying)),
		),
		StaticSummary: Summary(b),
		StaticDetails: Details(b),
	}
}
