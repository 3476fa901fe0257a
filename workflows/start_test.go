package workflows

import (
	"testing"

	"github.com/stretchr/testify/assert"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/rollbook/rollbook/runbook"
)

func TestStartOptions(t *testing.T) {
	b := &runbook.Bundle{Runbook: testRunbook(), Version: "v2"}
	o := StartOptions(b, "rollbook-q")
	assert.Equal(t, WorkflowID(b.Runbook.Service), o.ID)
	assert.Equal(t, "rollbook-q", o.TaskQueue)
	assert.Equal(t, enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL, o.WorkflowIDConflictPolicy, "one deployment per service at a time")
	assert.Equal(t, enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE, o.WorkflowIDReusePolicy, "a finished ID can be reused")
	assert.True(t, o.WorkflowExecutionErrorWhenAlreadyStarted)
	phase, ok := o.TypedSearchAttributes.GetKeyword(SAPhase)
	assert.True(t, ok)
	assert.Equal(t, string(PhaseDeploying), phase)
	version, _ := o.TypedSearchAttributes.GetKeyword(SAVersion)
	assert.Equal(t, "v2", version)
	assert.Equal(t, Summary(b), o.StaticSummary)
}
