package workflows

import "go.temporal.io/sdk/workflow"

// workflowRegisterOptions registers Deploy under its stable type name.
func workflowRegisterOptions() workflow.RegisterOptions {
	return workflow.RegisterOptions{Name: WorkflowType}
}

// RegisterOptions is what workers pass to RegisterWorkflowWithOptions.
func RegisterOptions() workflow.RegisterOptions { return workflowRegisterOptions() }

// RevertRegisterOptions registers Revert under its stable type name.
func RevertRegisterOptions() workflow.RegisterOptions {
	return workflow.RegisterOptions{Name: RevertWorkflowType}
}
