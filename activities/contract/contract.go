// Package contract is the activity contract of rollbook: the name of every
// activity, its input and output types, and the application error types the
// workflow branches on.
//
// It sits between the workflows (and the CLI) and the activity
// implementations so that the deterministic side links none of what the
// activities need to do their work: goose, pgx, SQLite, the Consul and
// Prometheus clients. It lives under activities/ because it is the
// activities' public face; it imports only the runbook model and the
// standard library, and a test keeps it that way.
//
// The names are the method names the activities had when the workflows
// referred to them by method value. They are recorded in every history, so
// they must never change: a renamed activity stops old histories replaying.
package contract

import "reflect"

// Activity names. The worker registers each implementation under its name;
// the workflows execute them by name.
const (
	ActivityPreflight = "Preflight"
	ActivityNotify    = "Notify"
	ActivityMeasure   = "Measure"
	// ActivityWatch watches continuous router checks (runbook
	// Check.Continuous) until one trips, its time is up, or it is
	// cancelled.
	ActivityWatch = "WatchRouter"

	ActivityCaptureSchema = "CaptureSchema"
	ActivityMigrateUp     = "MigrateUp"
	ActivityMigrateDown   = "MigrateDown"

	ActivityCaptureKV = "CaptureKV"
	ActivityApplyKV   = "ApplyKV"
	ActivityRestoreKV = "RestoreKV"

	ActivityCaptureWeights = "CaptureWeights"
	ActivitySetWeights     = "SetWeights"
	ActivityRestoreWeights = "RestoreWeights"

	ActivityCaptureRelease = "CaptureRelease"
	ActivityApplyRelease   = "ApplyRelease"
	ActivityRestoreRelease = "RestoreRelease"
)

// Application error types the workflow branches on. They are strings because
// they cross the Temporal boundary inside ApplicationError.Type.
const (
	// ErrConflict: the resource changed since we captured or applied it;
	// overwriting it would clobber someone else's change.
	ErrConflict = "RollbookConflict"
	// ErrInvalid: the input cannot work on this worker (unknown database
	// target or router, key outside the allowed prefixes, bad migration
	// file). Retrying does not help.
	ErrInvalid = "RollbookInvalid"
	// ErrMismatch: the live state does not match what history says we left
	// there in a way that is not someone's change (for example HAProxy lost
	// its runtime weights in a restart). Treated like a conflict.
	ErrMismatch = "RollbookMismatch"
	// ErrNoCapacity: a traffic restore would send traffic to servers that
	// are not up. The workflow stops in rollback-stuck instead of flipping
	// traffic onto a down pool.
	ErrNoCapacity = "RollbookNoCapacity"
)

// Spec is one activity of the contract: its name and the types it takes and
// returns (Out is nil for an activity that returns only an error). The
// worker's registration is tested against this list, so a signature that
// drifts from the contract fails a test instead of a deployment.
type Spec struct {
	Name string
	In   reflect.Type
	Out  reflect.Type
}

// Specs lists every activity of the contract.
var Specs = []Spec{
	{ActivityPreflight, reflect.TypeFor[PreflightInput](), reflect.TypeFor[PreflightResult]()},
	{ActivityNotify, reflect.TypeFor[NotifyInput](), nil},
	{ActivityMeasure, reflect.TypeFor[MeasureInput](), reflect.TypeFor[MeasureResult]()},
	{ActivityWatch, reflect.TypeFor[WatchInput](), reflect.TypeFor[WatchResult]()},

	{ActivityCaptureSchema, reflect.TypeFor[MigrateInput](), reflect.TypeFor[SchemaState]()},
	{ActivityMigrateUp, reflect.TypeFor[MigrateUpInput](), reflect.TypeFor[MigrateResult]()},
	{ActivityMigrateDown, reflect.TypeFor[MigrateDownInput](), reflect.TypeFor[RestoreResult]()},

	{ActivityCaptureKV, reflect.TypeFor[KVInput](), reflect.TypeFor[KVState]()},
	{ActivityApplyKV, reflect.TypeFor[KVApplyInput](), reflect.TypeFor[KVState]()},
	{ActivityRestoreKV, reflect.TypeFor[KVRestoreInput](), reflect.TypeFor[RestoreResult]()},

	{ActivityCaptureWeights, reflect.TypeFor[TrafficInput](), reflect.TypeFor[WeightState]()},
	{ActivitySetWeights, reflect.TypeFor[SetWeightsInput](), reflect.TypeFor[WeightState]()},
	{ActivityRestoreWeights, reflect.TypeFor[RestoreWeightsInput](), reflect.TypeFor[RestoreResult]()},

	{ActivityCaptureRelease, reflect.TypeFor[ReleaseInput](), reflect.TypeFor[ReleaseState]()},
	{ActivityApplyRelease, reflect.TypeFor[ApplyReleaseInput](), reflect.TypeFor[ReleaseResult]()},
	{ActivityRestoreRelease, reflect.TypeFor[RestoreReleaseInput](), reflect.TypeFor[RestoreResult]()},
}
