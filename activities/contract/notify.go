package contract

import (
	"time"
)

// Page actions (PagerDuty Events v2 event_action).
const (
	PageTrigger = "trigger"
	PageResolve = "resolve"
)

// NotifyInput is one phase change, for a chat webhook (Webhook) or a paging
// service (Page, with PageAction): exactly one of the two.
type NotifyInput struct {
	StepRef
	Webhook string `json:"webhook"`
	// Page names the paging service; PageAction is trigger or resolve.
	Page       string `json:"page,omitempty"`
	PageAction string `json:"pageAction,omitempty"`
	// WorkflowID is the deployment's workflow ID (rollbook-<service>), the
	// page's dedup key: a trigger and its resolve name the same incident.
	WorkflowID string `json:"workflowId,omitempty"`
	Service    string `json:"service"`
	Version    string `json:"version"`
	Phase      string `json:"phase"`
	Step       string `json:"currentStep,omitempty"`
	Reason     string `json:"reason,omitempty"`
	// Preserved says what a rollback kept or archived of the schema changes
	// (objects, rows, archive tables), so callers' data can be found.
	Preserved string `json:"preserved,omitempty"`
	// At is the workflow time of the change.
	At time.Time `json:"at"`
}

// Message is the JSON body posted: Slack's incoming-webhook "text", plus the
// same facts as fields for other receivers.
type Message struct {
	Text     string      `json:"text"`
	Rollbook NotifyInput `json:"rollbook"`
}
