package contract

import (
	"time"

	"github.com/rollbook/rollbook/runbook"
)

// WatchInput asks for a watch of continuous router checks.
type WatchInput struct {
	StepRef
	// Checks are the continuous router checks of one verify step or of
	// the analysis.
	Checks []runbook.Check `json:"checks"`
	Routes []runbook.Route `json:"routes,omitempty"`
	// DefaultWindow is the window of a check without its own (the step's
	// or the analysis's interval).
	DefaultWindow time.Duration `json:"defaultWindow"`
	// Until, when set, ends a watch that did not trip at this time (the end
	// of a verify step); zero watches until cancelled (the analysis).
	Until time.Time `json:"until,omitzero"`
}

// WatchResult is how a watch ended: a tripped check, an unreadable router
// (Error), or time up with nothing tripped.
type WatchResult struct {
	// Tripped is the check whose criterion held; empty when none did.
	Tripped string `json:"tripped,omitempty"`
	// Reason says why, with the window's counts.
	Reason string `json:"reason,omitempty"`
	// Requests and Errors are the tripped check's counts over the window,
	// WindowMs its span.
	Requests int64 `json:"requests,omitempty"`
	Errors   int64 `json:"errors,omitempty"`
	WindowMs int64 `json:"windowMs,omitempty"`
	// Down: the router reported the subset DOWN.
	Down bool `json:"down,omitempty"`
	// At is the time of the reading that tripped the check (or of the
	// last reading).
	At time.Time `json:"at"`
	// Error is set when the router could not be read for too long; the
	// workflow counts it as a failed measurement of Check.
	Error string `json:"error,omitempty"`
	Check string `json:"check,omitempty"`
	// Judged lists the checks whose window held at least minRequests at
	// some reading: a verify step fails a check that never had one.
	Judged []string `json:"judged,omitempty"`
	// Readings is how many counter readings the watch took.
	Readings int `json:"readings"`
}
