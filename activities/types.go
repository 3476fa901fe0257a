// Package activities holds rollbook's Temporal activities: methods on structs
// that hold their clients (migrations, Consul KV, traffic routers, checks).
//
// Every mutating step has three activities with the same shape:
//   - Capture reads the current state; its result is recorded in the workflow
//     history and is the only thing a compensation restores to.
//   - Apply makes the change; it is idempotent, so a retry after a lost
//     response recognises its own write.
//   - Restore (the compensation) puts the captured state back; it treats
//     "already restored" as success and refuses to overwrite a change made by
//     someone else (a conflict, reported as a non-retryable error of type
//     ErrConflict so that the workflow stops and asks an operator).
//
// The names, inputs and outputs of the activities are the contract in
// activities/contract, which the workflows import instead of this package;
// the worker registers each method here under its contract name.
package activities

import "github.com/rollbook/rollbook/activities/contract"

// The contract types under their old names, so the implementations read as
// before: an alias is the same type, not a copy.
type (
	ApplyReleaseInput   = contract.ApplyReleaseInput
	ArchivedObject      = contract.ArchivedObject
	CatalogObject       = contract.CatalogObject
	FileObjects         = contract.FileObjects
	KVApplyInput        = contract.KVApplyInput
	KVEntry             = contract.KVEntry
	KVInput             = contract.KVInput
	KVRestoreInput      = contract.KVRestoreInput
	KVState             = contract.KVState
	MeasureInput        = contract.MeasureInput
	MeasureResult       = contract.MeasureResult
	Measurement         = contract.Measurement
	WatchInput          = contract.WatchInput
	WatchResult         = contract.WatchResult
	Message             = contract.Message
	MigrateDownInput    = contract.MigrateDownInput
	MigrateInput        = contract.MigrateInput
	MigrateResult       = contract.MigrateResult
	MigrateUpInput      = contract.MigrateUpInput
	NotifyInput         = contract.NotifyInput
	PreflightInput      = contract.PreflightInput
	PreflightResult     = contract.PreflightResult
	ReleaseInput        = contract.ReleaseInput
	ReleaseResult       = contract.ReleaseResult
	ReleaseState        = contract.ReleaseState
	RestoreReleaseInput = contract.RestoreReleaseInput
	RestoreResult       = contract.RestoreResult
	RestoreWeightsInput = contract.RestoreWeightsInput
	SchemaState         = contract.SchemaState
	SetWeightsInput     = contract.SetWeightsInput
	SideSample          = contract.SideSample
	StepRef             = contract.StepRef
	TrafficInput        = contract.TrafficInput
	WeightState         = contract.WeightState
)

// Contract constants the implementations use.
const (
	DetailBaselineRound = contract.DetailBaselineRound
	ErrArchive          = contract.ErrArchive
	ErrConflict         = contract.ErrConflict
	ErrInvalid          = contract.ErrInvalid
	ErrMismatch         = contract.ErrMismatch
	ErrNoCapacity       = contract.ErrNoCapacity
	ErrReleaseFailed    = contract.ErrReleaseFailed
	MaxCapturedKVBytes  = contract.MaxCapturedKVBytes
	ObjectColumn        = contract.ObjectColumn
	ObjectTable         = contract.ObjectTable
)

// ReleaseKey is the idempotency key of a release (contract.ReleaseKey).
func ReleaseKey(ref StepRef, direction string, attempt int) string {
	return contract.ReleaseKey(ref, direction, attempt)
}

// CapturedKVBytes is the size of the values a KV capture holds
// (contract.CapturedKVBytes).
func CapturedKVBytes(st KVState) int { return contract.CapturedKVBytes(st) }
