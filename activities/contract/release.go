package contract

import (
	"strconv"
)

// ErrReleaseFailed: a release's deploy failed or its target did not get
// healthy in time. An apply reports it non-retryable (the deployment rolls
// back at once); a restore reports it retryable (the workflow retries with
// backoff, then asks an operator).
const ErrReleaseFailed = "RollbookReleaseFailed"

// ReleaseInput names the target of a release step.
type ReleaseInput struct {
	StepRef
	// Target is a target name from the worker configuration.
	Target string `json:"target"`
}

// ReleaseState is a target's version when it was captured.
type ReleaseState struct {
	Target  string `json:"target"`
	Version string `json:"version"`
}

// ApplyReleaseInput releases Version onto the target.
type ApplyReleaseInput struct {
	ReleaseInput
	Version  string       `json:"version"`
	Captured ReleaseState `json:"captured"`
}

// ReleaseResult reports what an apply did.
type ReleaseResult struct {
	Version  string `json:"version"`
	Previous string `json:"previous"`
	// AlreadyThere is true when the target already ran Version, so no
	// deploy was made (a retry after a lost answer, or a no-op release).
	AlreadyThere bool   `json:"alreadyThere,omitempty"`
	Detail       string `json:"detail,omitempty"`
}

// RestoreReleaseInput puts Captured back. Applied is the version the step
// released; once the apply succeeded (ApplyDone), a target running neither
// is someone else's release and is not overwritten.
type RestoreReleaseInput struct {
	ReleaseInput
	Captured  ReleaseState `json:"captured"`
	Applied   string       `json:"applied"`
	ApplyDone bool         `json:"applyDone,omitempty"`
	// Attempt is the workflow's attempt at this compensation: each gets
	// its own idempotency key, so that a deploy the deployer reported
	// failed can be tried again, while the activity's own retries (a lost
	// answer) reuse the key.
	Attempt int `json:"attempt,omitempty"`
}

// ReleaseKey is the idempotency key of a release: the deployment, the step
// and the direction (apply, or restore with the attempt).
func ReleaseKey(ref StepRef, direction string, attempt int) string {
	k := ref.DeploymentID + "/" + ref.Step + "/" + direction
	if attempt > 0 {
		k += "/" + strconv.Itoa(attempt)
	}
	return k
}
