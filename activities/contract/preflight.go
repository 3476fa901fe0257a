package contract

import (
	"github.com/rollbook/rollbook/runbook"
)

// MaxCapturedKVBytes bounds the Consul values one deployment captures (the
// values its consul steps overwrite or delete, summed over its steps). The
// captured values travel in workflow history and in every continue-as-new
// input next to a bundle of up to runbook.MaxBundleBytes; with this bound
// the worst case stays under the workflow's continue-as-new limit (1.5 MiB,
// below Temporal's 2 MiB payload limit). The workflow measures it in
// TestContinueAsNewWorstCaseFitsTheLimit.
const MaxCapturedKVBytes = 256 << 10

// PreflightInput is what the preflight checks: the deployment's bundle,
// without its migration files (the workflow has checked them and the hash;
// the names and the signature are what is left).
type PreflightInput struct {
	StepRef
	Bundle runbook.Bundle `json:"bundle"`
	// SignatureOnly: a run that continued as new re-checks only the
	// signature of its input; its names and live systems were checked when
	// the deployment started, and refusing half-way would strand its
	// changes.
	SignatureOnly bool `json:"signatureOnly,omitempty"`
}

// PreflightResult lists every problem found; none means the deployment may
// start.
type PreflightResult struct {
	Problems []string `json:"problems,omitempty"`
	// SignedBy is the ID of the trusted key whose signature verified.
	SignedBy string `json:"signedBy,omitempty"`
	// CapturedKVBytes is the projected size of the Consul values the
	// deployment's consul steps will capture.
	CapturedKVBytes int `json:"capturedKVBytes,omitempty"`
}

// CapturedKVBytes is the size of the values a KV capture holds, the
// measure MaxCapturedKVBytes bounds.
func CapturedKVBytes(st KVState) int {
	n := 0
	for _, e := range st.Entries {
		n += len(e.Value)
	}
	return n
}
