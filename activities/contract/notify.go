package contract

import (
	"time"
)

// NotifyInput is one phase change.
type NotifyInput struct {
	StepRef
	Webhook string `json:"webhook"`
	Service string `json:"service"`
	Version string `json:"version"`
	Phase   string `json:"phase"`
	Step    string `json:"currentStep,omitempty"`
	Reason  string `json:"reason,omitempty"`
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
