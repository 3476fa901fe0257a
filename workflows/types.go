// Package workflows holds the Deploy saga workflow. Everything here is
// workflow code: deterministic, no goroutines, no select, no time.Now, no map
// iteration whose order matters — only the workflow APIs.
package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/rollbook/rollbook/activities/contract"
	"github.com/rollbook/rollbook/runbook"
)

// WorkflowType is the registered name of the Deploy workflow.
const WorkflowType = "Deploy"

// WorkflowIDPrefix makes the workflow ID rollbook-<service>: one deployment
// per service at a time, enforced by Temporal's ID uniqueness.
const WorkflowIDPrefix = "rollbook-"

// WorkflowID returns the workflow ID of a service's deployment.
func WorkflowID(service string) string { return WorkflowIDPrefix + service }

// QueryStatus is the name of the status query.
const QueryStatus = "status"

// Signal names. Payloads are small JSON objects so they can be typed into the
// Web UI or `temporal workflow signal --input`.
const (
	SignalAbort   = "abort"
	SignalPause   = "pause"
	SignalResume  = "resume"
	SignalApprove = "approve"
	SignalRetry   = "retry"
	SignalSkip    = "skip"
)

// Phase is where a deployment is (the RollbookPhase search attribute, the
// status query). The outcomes double as final phases, so an outcome is a
// Phase too.
type Phase string

// Phases and outcomes.
const (
	PhaseDeploying     Phase = "deploying"
	PhaseVerifying     Phase = "verifying"
	PhasePaused        Phase = "paused"
	PhaseRollingBack   Phase = "rolling-back"
	PhaseRollbackStuck Phase = "rollback-stuck"

	OutcomeSucceeded         Phase = "succeeded"
	OutcomeRolledBack        Phase = "rolled-back"
	OutcomeAborted           Phase = "aborted"
	OutcomeRollbackFailed    Phase = "rollback-failed"
	OutcomeFailedAfterCommit Phase = "failed-after-commit"
)

// Typed search attributes, registered on the namespace by the dev stack
// (temporal server start-dev --search-attribute Name=Keyword).
var (
	SAService = temporal.NewSearchAttributeKeyKeyword("RollbookService")
	SAVersion = temporal.NewSearchAttributeKeyKeyword("RollbookVersion")
	SAPhase   = temporal.NewSearchAttributeKeyKeyword("RollbookPhase")
)

// AbortSignal asks for a rollback. Both fields are optional.
type AbortSignal struct {
	Reason string `json:"reason,omitempty"`
	By     string `json:"by,omitempty"`
}

// ApproveSignal releases a pause step waiting for approval. An empty Step
// approves whichever step is waiting.
type ApproveSignal struct {
	Step string `json:"step,omitempty"`
	By   string `json:"by,omitempty"`
}

// OperatorSignal is the payload of pause, resume, retry and skip. For skip,
// Step must name the stuck step when given (a guard against skipping the
// wrong one).
type OperatorSignal struct {
	Step   string `json:"step,omitempty"`
	By     string `json:"by,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// StepState is a runbook step's state, as shown in Status and Result.
// "pending" means not started yet, "skipped" that its compensation was
// skipped by an operator (CompState has its own meanings of both).
type StepState string

// Step states.
const (
	StepPending     StepState = "pending"
	StepRunning     StepState = "running"
	StepApplied     StepState = "applied"
	StepPassed      StepState = "passed"
	StepFailed      StepState = "failed"
	StepCancelled   StepState = "cancelled"
	StepCompensated StepState = "compensated"
	StepSkipped     StepState = "skipped"
	StepCommitted   StepState = "committed"
)

// StepStatus is one runbook step's progress.
type StepStatus struct {
	Name         string    `json:"name"`
	Kind         string    `json:"kind"`
	State        StepState `json:"state"`
	Irreversible bool      `json:"irreversible,omitempty"`
	StartedAt    time.Time `json:"startedAt,omitempty"`
	EndedAt      time.Time `json:"endedAt,omitempty"`
	Detail       string    `json:"detail,omitempty"`
	// Captured is the state captured before the step's apply; a later
	// revert restores it.
	Captured *Captured `json:"captured,omitempty"`
}

// Captured holds one step's captured and applied state (one field set).
type Captured struct {
	Schema *contract.SchemaState `json:"schema,omitempty"`
	// SchemaTarget is the version the step migrated to.
	SchemaTarget int64                 `json:"schemaTarget,omitempty"`
	KV           *contract.KVState     `json:"kv,omitempty"`
	KVApplied    *contract.KVState     `json:"kvApplied,omitempty"`
	Weights      *contract.WeightState `json:"weights,omitempty"`
	WeightsSet   map[string]int        `json:"weightsSet,omitempty"`

	// Release is the version a release step found on its target;
	// ReleaseApplied the version it released.
	Release        *contract.ReleaseState `json:"release,omitempty"`
	ReleaseApplied string                 `json:"releaseApplied,omitempty"`
}

// CompState is a compensation's state. "pending" means pushed and not run
// yet (it runs if the deployment rolls back), "skipped" that an operator
// gave up on it.
type CompState string

// Compensation states.
const (
	CompPending         CompState = "pending"
	CompRunning         CompState = "running"
	CompDone            CompState = "done"
	CompAlreadyRestored CompState = "already-restored"
	CompSkipped         CompState = "skipped"
	CompStuck           CompState = "stuck"
	CompDiscarded       CompState = "discarded"
)

// Compensation is one entry of the saga's compensation stack. Exactly one of
// Migrate, KV, Traffic and Release is set: the captured state the undo restores,
// recorded in history at capture time, never re-read at rollback time.
type Compensation struct {
	Step     string    `json:"step"`
	Kind     string    `json:"kind"`
	State    CompState `json:"state"`
	Attempts int       `json:"attempts,omitempty"`
	// ApplyDone is true once the step's apply returned success, so the
	// live state is known to be the applied one.
	ApplyDone bool   `json:"applyDone,omitempty"`
	Error     string `json:"error,omitempty"`
	Detail    string `json:"detail,omitempty"`
	// Merged lists later steps on the same route whose traffic
	// compensations this one performed in the same write.
	Merged []string `json:"merged,omitempty"`
	// Kept is true when a migrate compensation left the schema as the step
	// migrated it (onRollback: keep): the data stays in the live tables.
	Kept bool `json:"kept,omitempty"`
	// Preserved lists what a migrate compensation archived before its
	// Downs (onRollback: archive): objects, rows, archive tables.
	Preserved []contract.ArchivedObject `json:"preserved,omitempty"`
	StartedAt time.Time                 `json:"startedAt,omitempty"`
	EndedAt   time.Time                 `json:"endedAt,omitempty"`

	// KVValuesInRunbook: the KV record leaves out the values the step
	// writes (its ops' values and the applied state's): they are the
	// runbook's, carried once in the bundle, and the workflow puts them
	// back before running the restore and in the Result.
	KVValuesInRunbook bool `json:"kvValuesInRunbook,omitempty"`

	Migrate *contract.MigrateDownInput    `json:"migrate,omitempty"`
	KV      *contract.KVRestoreInput      `json:"kv,omitempty"`
	Traffic *contract.RestoreWeightsInput `json:"traffic,omitempty"`

	Release *contract.RestoreReleaseInput `json:"release,omitempty"`
}

// Judgement states of one check.
const (
	JudgePass         = "pass"
	JudgeFail         = "fail"
	JudgeInconclusive = "inconclusive"
	JudgeBaseline     = "baseline"
)

// CheckJudgement is the workflow's verdict on one measurement.
type CheckJudgement struct {
	Check   string  `json:"check"`
	Verdict string  `json:"verdict"`
	Value   float64 `json:"value,omitempty"`
	Reason  string  `json:"reason,omitempty"`
}

// Round is one verification or analysis round, kept in Status (bounded).
type Round struct {
	Step      string           `json:"step"`
	Round     int              `json:"round"`
	At        time.Time        `json:"at"`
	Judgement []CheckJudgement `json:"judgement"`
	// Watch marks the verdict of a continuous check's watch (at the time
	// of the reading that tripped it); Round then counts the step's watch
	// verdicts, not its measurement rounds.
	Watch bool `json:"watch,omitempty"`
}

// IgnoredSignal records a signal that made no sense in the phase it arrived.
type IgnoredSignal struct {
	Signal string    `json:"signal"`
	At     time.Time `json:"at"`
	Why    string    `json:"why"`
}

// Status is what the status query returns.
type Status struct {
	Service     string       `json:"service"`
	Version     string       `json:"version"`
	Phase       Phase        `json:"phase"`
	CurrentStep string       `json:"currentStep,omitempty"`
	Paused      bool         `json:"paused,omitempty"`
	WaitingFor  string       `json:"waitingFor,omitempty"`
	Reason      string       `json:"reason,omitempty"`
	StartedBy   string       `json:"startedBy,omitempty"`
	StartedAt   time.Time    `json:"startedAt"`
	Steps       []StepStatus `json:"steps"`
	// Rounds holds the most recent measurement rounds (bounded so that a
	// long verification does not grow the query answer without limit).
	Rounds        []Round         `json:"rounds,omitempty"`
	Compensations []Compensation  `json:"compensations,omitempty"`
	Ignored       []IgnoredSignal `json:"ignoredSignals,omitempty"`
	Outcome       Phase           `json:"outcome,omitempty"`
	// Problems are what the preflight refused the deployment for.
	Problems []string `json:"problems,omitempty"`
	// SignedBy is the ID of the trusted key whose bundle signature the
	// preflight verified.
	SignedBy string `json:"signedBy,omitempty"`
}

// Result is the Deploy workflow's result.
type Result struct {
	Service    string `json:"service"`
	Version    string `json:"version"`
	Outcome    Phase  `json:"outcome"`
	FailedStep string `json:"failedStep,omitempty"`
	Reason     string `json:"reason,omitempty"`
	// PointOfNoReturn names the irreversible step that was crossed, if any.
	PointOfNoReturn string         `json:"pointOfNoReturn,omitempty"`
	Steps           []StepStatus   `json:"steps"`
	Compensations   []Compensation `json:"compensations,omitempty"`
	StartedAt       time.Time      `json:"startedAt"`
	EndedAt         time.Time      `json:"endedAt"`
	// RollbackStartedAt and RollbackEndedAt time the rollback, if any.
	RollbackStartedAt time.Time `json:"rollbackStartedAt,omitempty"`
	RollbackEndedAt   time.Time `json:"rollbackEndedAt,omitempty"`
	// Problems are what the preflight refused the deployment for
	// (outcome refused).
	Problems []string `json:"problems,omitempty"`
	SignedBy string   `json:"signedBy,omitempty"`
}

// Input is the workflow input: the bundle the CLI built (its fields are
// embedded, so the JSON payload is the bundle itself), plus the state a
// long deployment carries across continue-as-new.
type Input struct {
	runbook.Bundle
	Resume *Resume `json:"resume,omitempty"`
}

// Resume is the state of a deployment that continued as new in the middle
// of a long verification: the history restarts, the deployment does not.
type Resume struct {
	// Generation counts the continue-as-new hops.
	Generation int `json:"generation"`
	// StepIndex is the verify step that was running.
	StepIndex int            `json:"stepIndex"`
	Verify    *CheckRun      `json:"verify"`
	Analysis  *CheckRun      `json:"analysis,omitempty"`
	Status    Status         `json:"status"`
	Comps     []Compensation `json:"compensations"`
	Pivot     string         `json:"pivot,omitempty"`
	Paused    bool           `json:"paused,omitempty"`
}
