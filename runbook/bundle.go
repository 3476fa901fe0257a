package runbook

// MaxBundleBytes bounds the JSON size of a bundle: it travels as workflow
// input, and Temporal's default blob limit is 2 MiB.
const MaxBundleBytes = 1 << 20

// MaxSteps bounds the number of steps of a runbook.
const MaxSteps = 100

// Bundle is what the CLI sends as the Deploy workflow's input: everything the
// worker needs, and nothing secret. The worker needs no checkout.
type Bundle struct {
	Runbook Runbook `json:"runbook"`
	// Version is the application version being deployed (for example a git
	// tag or an image tag).
	Version string `json:"version"`
	// Source is the runbook's path as given to the CLI, for messages.
	Source string `json:"source"`
	// Files holds every migration file the runbook references, keyed by
	// their slash-separated path relative to the runbook's folder.
	Files []File `json:"files,omitempty"`
	// StartedBy says who or what started the deployment.
	StartedBy Origin `json:"startedBy"`
	// Hash is the hex SHA-256 of the canonical content (runbook, version and
	// files); the workflow recomputes it to refuse a tampered or truncated
	// bundle.
	Hash string `json:"hash"`
	// Signature, when present, signs SigningMessage (see sign.go); a worker
	// whose configuration requires signed bundles refuses bundles without a
	// valid one from a trusted key.
	Signature *Signature `json:"signature,omitempty"`
}

// File is one migration file carried in the bundle.
type File struct {
	Path    string `json:"path"`
	Content string `json:"content"`
}

// Origin records who started a deployment, for the Web UI and audit.
type Origin struct {
	User  string `json:"user,omitempty"`
	Host  string `json:"host,omitempty"`
	CIJob string `json:"ciJob,omitempty"`
	CIURL string `json:"ciURL,omitempty"`
}
