package contract

import (
	"time"

	"github.com/rollbook/rollbook/runbook"
)

// StepRef identifies the step an activity works for; it is part of every
// input so that logs, idempotency keys and the Web UI can name it.
type StepRef struct {
	// DeploymentID is the workflow ID plus run ID: the business ID that
	// idempotency keys derive from.
	DeploymentID string `json:"deploymentID"`
	Step         string `json:"step"`
}

// RestoreResult is what every compensation returns.
type RestoreResult struct {
	// AlreadyRestored is true when the live state was already the captured
	// one, so nothing was written.
	AlreadyRestored bool   `json:"alreadyRestored,omitempty"`
	Detail          string `json:"detail,omitempty"`
	// Archived lists the data a migrate-down preserved before its Downs
	// ran (policy archive), read back from the archive catalog, so a retry
	// that finds the work done reports it too.
	Archived []ArchivedObject `json:"archived,omitempty"`
}

// ---- migrations ----

// MigrateInput names a migration folder carried in the bundle.
type MigrateInput struct {
	StepRef
	Database string `json:"database"`
	Dir      string `json:"dir"`
	// Files are the bundle's files under Dir (paths relative to the
	// runbook folder); the activity never reads the worker's disk.
	Files []runbook.File `json:"files"`
}

// SchemaState is the captured schema version of a database target.
type SchemaState struct {
	Database string `json:"database"`
	Version  int64  `json:"version"`
}

// MigrateUpInput applies migrations up to Target (0: the highest in Dir).
type MigrateUpInput struct {
	MigrateInput
	Target int64 `json:"target,omitempty"`
	// Policy is the step's onRollback policy. With "archive" the catalog
	// diff of each file is also recorded in the database
	// (rollbook_archive.migration_files) before the next file runs, so the
	// rollback can preserve data even if this activity's answer is lost.
	Policy string `json:"policy,omitempty"`
}

// MigrateResult reports what a migration activity did.
type MigrateResult struct {
	From    int64   `json:"from"`
	To      int64   `json:"to"`
	Applied []int64 `json:"applied,omitempty"`
	// Files is the catalog diff of each file this step applied (names
	// only), including files an earlier attempt applied when they were
	// recorded.
	Files []FileObjects `json:"files,omitempty"`
}

// MigrateDownInput reverts to the captured version.
type MigrateDownInput struct {
	MigrateInput
	Captured SchemaState `json:"captured"`
	// Policy is "archive" (preserve, then Down, file by file), "drop" (Down
	// only) or "" (recorded before onRollback existed: Down only). "keep"
	// never reaches the activity: the workflow leaves the schema.
	Policy string `json:"policy,omitempty"`
	// Created is the apply's catalog diff per file, when the workflow got
	// it; files missing here are looked up in migration_files.
	Created []FileObjects `json:"created,omitempty"`
}

// ---- Consul KV ----

// KVInput lists the operations of a consul step.
type KVInput struct {
	StepRef
	Ops []runbook.KVOp `json:"ops"`
}

// KVEntry is the state of one key.
type KVEntry struct {
	Key         string `json:"key"`
	Exists      bool   `json:"exists"`
	Value       []byte `json:"value,omitempty"`
	Flags       uint64 `json:"flags,omitempty"`
	ModifyIndex uint64 `json:"modifyIndex,omitempty"`
}

// KVState is the state of every key a step touches, in op order.
type KVState struct {
	Entries []KVEntry `json:"entries"`
}

// KVApplyInput applies Ops with check-and-set against Captured.
type KVApplyInput struct {
	KVInput
	Captured KVState `json:"captured"`
}

// KVRestoreInput restores Captured. Applied is the apply's result when the
// workflow got one (nil when the apply failed or its answer was lost); the
// restore then recognises our write by value.
type KVRestoreInput struct {
	KVInput
	Captured KVState  `json:"captured"`
	Applied  *KVState `json:"applied,omitempty"`
}

// ---- traffic ----

// TrafficInput names a route on a router.
type TrafficInput struct {
	StepRef
	Route runbook.Route `json:"route"`
}

// WeightState is a route's weights as percentages per subset, plus what the
// driver needs to detect changes (HAProxy raw weights, Consul ModifyIndex).
type WeightState struct {
	Weights map[string]int `json:"weights"`
	// Raw holds driver-level weights (HAProxy 0–256) per subset.
	Raw map[string]int `json:"raw,omitempty"`
	// Index is the Consul config entry ModifyIndex (consul-splitter only).
	Index uint64 `json:"index,omitempty"`
	// Initial is HAProxy's configured weight per server (iweight); live raw
	// weights equal to it where we expected ours suggest a restart.
	Initial map[string]int `json:"initial,omitempty"`
	// Absent is true when the consul-splitter entry did not exist; restoring
	// such a capture deletes the entry again.
	Absent bool `json:"absent,omitempty"`
	// Snapshot is the driver's exact representation, used by restore
	// (consul-splitter: the entry's splits and meta as JSON).
	Snapshot string `json:"snapshot,omitempty"`
	// Health is each subset's state when read ("UP", "DOWN", "MAINT",
	// "DRAIN"), for the history and the capacity check.
	Health map[string]string `json:"health,omitempty"`
}

// SetWeightsInput sets Weights (percent per subset).
type SetWeightsInput struct {
	TrafficInput
	Weights  map[string]int `json:"weights"`
	Captured WeightState    `json:"captured"`
}

// RestoreWeightsInput restores Captured. Applied is what our apply set (the
// step's target weights): the restore accepts live weights equal to Applied or
// Captured and reports anything else as a conflict.
type RestoreWeightsInput struct {
	TrafficInput
	Captured WeightState    `json:"captured"`
	Applied  map[string]int `json:"applied"`
	// Expect, when set, replaces Applied as the weights the restore expects
	// to find (a gradual restore's previous stage).
	Expect map[string]int `json:"expect,omitempty"`
	// Target, when set, is the stage to set instead of Captured (gradual
	// restore); the last stage is always Captured.
	Target map[string]int `json:"target,omitempty"`
	// CheckCapacity makes the restore verify that the servers receiving
	// traffic are up before moving any weight to them.
	CheckCapacity bool `json:"checkCapacity,omitempty"`
}

// ---- checks ----

// MeasureInput asks for one measurement round of a set of checks.
type MeasureInput struct {
	StepRef
	Round  int             `json:"round"`
	Checks []runbook.Check `json:"checks"`
	// Routes resolves the routes checks refer to.
	Routes []runbook.Route `json:"routes,omitempty"`
	// Previous is the previous round's measurements, so that counter-based
	// checks measure over the last interval only.
	Previous []Measurement `json:"previous,omitempty"`
	// Version is the version being deployed, which Prometheus queries may
	// name as {{version}}.
	Version string `json:"version,omitempty"`
}

// Measurement is one check's raw result; the workflow judges it.
type Measurement struct {
	Check string    `json:"check"`
	Kind  string    `json:"kind"`
	At    time.Time `json:"at"`
	// Error is set when the measurement itself failed (connection refused,
	// query error); the workflow counts it as a failed measurement.
	Error string `json:"error,omitempty"`

	// http
	Status    int     `json:"status,omitempty"`
	LatencyMs float64 `json:"latencyMs,omitempty"`
	// Samples records per-request results when HTTPCheck.Samples > 1.
	Failures int `json:"failures,omitempty"`

	// prometheus
	Value *float64 `json:"value,omitempty"`
	// NoData is set when the query ran but gave nothing to judge: no
	// sample, or NaN (a ratio over zero requests). The workflow counts it
	// as inconclusive, never as a pass.
	NoData bool `json:"noData,omitempty"`

	// router / compare: counters since the previous round, and cumulative
	// ones to compute the next delta.
	Requests int64            `json:"requests,omitempty"`
	Errors   int64            `json:"errors,omitempty"`
	Counters map[string]int64 `json:"counters,omitempty"`
	Baseline *SideSample      `json:"baseline,omitempty"`
	Canary   *SideSample      `json:"canary,omitempty"`
	Detail   string           `json:"detail,omitempty"`
	// BaselineRound is true for router/compare measurements without a usable
	// previous round (the first round, or counters that went down after a
	// router restart): Requests/Errors are then cumulative, not an interval,
	// and the round should be judged inconclusive.
	BaselineRound bool `json:"baselineRound,omitempty"`
	// SubsetStatus is the router's status of a router check's subset
	// (HAProxy "UP", "DOWN", "MAINT", "no check"); a subset the router
	// marked DOWN fails the check.
	SubsetStatus string `json:"subsetStatus,omitempty"`
}

// SideSample is one side of a compare check over the last interval.
type SideSample struct {
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
	// LatenciesMs are response-time samples, when the source has them.
	LatenciesMs []float64 `json:"latenciesMs,omitempty"`
}

// DetailBaselineRound marks a counter-based measurement taken without a
// previous reading: it only records the counters for the next round.
const DetailBaselineRound = "baseline round"

// MeasureResult holds one measurement per check, in check order.
type MeasureResult struct {
	Measurements []Measurement `json:"measurements"`
}
