package workflows

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"

	"github.com/rollbook/rollbook/activities"
	"github.com/rollbook/rollbook/runbook"
)

// bigKVRunbook is the long runbook whose consul step changes the most keys
// one step may (64), with values as large as the bundle limit allows.
func bigKVRunbook(t *testing.T) runbook.Runbook {
	t.Helper()
	rb := longRunbook()
	set := map[string]string{}
	for k := 0; k < runbook.MaxConsulOps; k++ {
		set[fmt.Sprintf("app/k%02d", k)] = "x"
	}
	rb.Steps[1].Consul = &runbook.ConsulStep{Set: set}
	// The most checks a verify step and the analysis may have: each adds a
	// judgement to every one of the rounds the status keeps.
	soak, analysis := rb.Steps[3].Verify, rb.Analysis
	for len(soak.Checks) < runbook.MaxChecks {
		soak.Checks = append(soak.Checks, runbook.Check{Name: fmt.Sprintf("health-%02d", len(soak.Checks)), HTTP: &runbook.HTTPCheck{Endpoint: "edge", Path: "/healthz"}})
	}
	for len(analysis.Checks) < runbook.MaxChecks {
		analysis.Checks = append(analysis.Checks, runbook.Check{Name: fmt.Sprintf("a-health-%02d", len(analysis.Checks)), HTTP: &runbook.HTTPCheck{Endpoint: "edge", Path: "/healthz"}})
	}
	in := bundleOf(t, rb)
	data, err := json.Marshal(in.Bundle)
	require.NoError(t, err)
	// Fill the bundle to 2 KiB under its limit.
	per := (runbook.MaxBundleBytes - len(data) - 2048) / runbook.MaxConsulOps
	for k := range set {
		set[k] = strings.Repeat("v", per)
	}
	return rb
}

// kvStates answers CaptureKV with captured values that use the whole
// MaxCapturedKVBytes budget, and ApplyKV with what a real apply returns:
// the values written, with new indexes.
func kvStates(h *harness) {
	h.captureKV = func(in activities.KVInput) (activities.KVState, error) {
		per := activities.MaxCapturedKVBytes / len(in.Ops)
		st := activities.KVState{}
		for i, op := range in.Ops {
			// Random-looking bytes: base64 in JSON, as real binary values.
			v := make([]byte, per)
			for j := range v {
				v[j] = byte(i*31 + j*7)
			}
			st.Entries = append(st.Entries, activities.KVEntry{Key: op.Key, Exists: true, Value: v, ModifyIndex: uint64(10 + i)})
		}
		return st, nil
	}
	h.applyKV = func(in activities.KVApplyInput) (activities.KVState, error) {
		st := activities.KVState{}
		for i, op := range in.Ops {
			e := activities.KVEntry{Key: op.Key, ModifyIndex: uint64(100 + i)}
			if !op.Delete {
				e.Exists, e.Value = true, []byte(op.Value)
			}
			st.Entries = append(st.Entries, e)
		}
		return st, nil
	}
}

// The worst case of finding 6: a bundle at its size limit made of the
// largest consul step, captured values at the deployment's budget, the most
// checks per verify step and analysis, the status full of rounds and
// ignored signals. The continue-as-new input must
// stay under the limit, or the deployment cannot hop and its history grows
// until Temporal terminates it without a rollback.
func TestContinueAsNewWorstCaseFitsTheLimit(t *testing.T) {
	old := continueAsNewAfter
	rounds := simulateHistory(t)
	continueAsNewAfter = 12 * (maxRounds + 5) // enough rounds to fill Status.Rounds
	defer func() { continueAsNewAfter = old }()

	h := newHarness(t)
	kvStates(h)
	h.measure = func(mi activities.MeasureInput) (activities.MeasureResult, error) {
		if mi.Step == "soak" {
			*rounds++
		}
		return healthy(mi), nil
	}
	for i := 0; i < maxIgnored+10; i++ {
		h.at(time.Duration(i+1)*time.Second, func() { h.signal(SignalRetry, OperatorSignal{By: strings.Repeat("o", 64)}) })
	}
	in := bundleOf(t, bigKVRunbook(t))
	bundleJSON, err := json.Marshal(in.Bundle)
	require.NoError(t, err)

	var clock time.Time
	_, next := hop(t, h, in, &clock)
	require.NotNil(t, next, "the deployment continued as new")
	p, err := converter.GetDefaultDataConverter().ToPayload(*next)
	require.NoError(t, err)
	size := len(p.Data)
	t.Logf("continue-as-new input: %d bytes (bundle %d, carried state %d); limit %d", size, len(bundleJSON), size-len(bundleJSON), maxContinueAsNewInput)
	assert.LessOrEqual(t, size, maxContinueAsNewInput)
	assert.Len(t, next.Resume.Status.Rounds, maxRounds)
	assert.Len(t, next.Resume.Status.Ignored, maxIgnored)

	// One copy: the compensation holds the captured values; the status
	// and the values the step wrote hold none.
	kvComp := next.Resume.Comps[1]
	require.NotNil(t, kvComp.KV)
	assert.Equal(t, activities.MaxCapturedKVBytes, activities.CapturedKVBytes(kvComp.KV.Captured))
	assert.Zero(t, activities.CapturedKVBytes(*kvComp.KV.Applied))
	for _, op := range kvComp.KV.Ops {
		assert.Empty(t, op.Value)
	}
	st := next.Resume.Status.Steps[1].Captured
	assert.Zero(t, activities.CapturedKVBytes(*st.KV))
	assert.Zero(t, activities.CapturedKVBytes(*st.KVApplied))
}

// The restore gets the whole input back: the step's values from the
// runbook, the applied values, the captured ones; so does the Result that
// a revert runs from.
func TestKVRestoreGetsTheValuesBack(t *testing.T) {
	h := newHarness(t)
	var got activities.KVRestoreInput
	h.restoreKV = func(in activities.KVRestoreInput) (activities.RestoreResult, error) {
		got = in
		return activities.RestoreResult{}, nil
	}
	h.measure = func(mi activities.MeasureInput) (activities.MeasureResult, error) { return failing(mi), nil }
	r := h.run(testRunbook())
	require.Equal(t, OutcomeRolledBack, r.Outcome)

	want := testRunbook().Steps[1].Consul.Ops()
	assert.Equal(t, want, got.Ops)
	require.NotNil(t, got.Applied)
	assert.Equal(t, "on", string(got.Applied.Entries[0].Value), "the applied value, from the runbook")
	assert.False(t, got.Applied.Entries[1].Exists)
	assert.Equal(t, "off", string(got.Captured.Entries[0].Value))
	assert.Equal(t, "x", string(got.Captured.Entries[1].Value))

	kvComp := r.Compensations[1]
	assert.False(t, kvComp.KVValuesInRunbook, "the Result carries whole compensations")
	assert.Equal(t, want, kvComp.KV.Ops)
	assert.Nil(t, r.Steps[1].Captured.KV.Entries[0].Value, "the status step keeps no second copy")
}

// Captured values over the budget stop the step before it writes; the
// earlier steps roll back.
func TestKVCaptureOverBudgetWritesNothing(t *testing.T) {
	h := newHarness(t)
	kvStates(h)
	base := h.captureKV
	h.captureKV = func(in activities.KVInput) (activities.KVState, error) {
		st, err := base(in)
		st.Entries[0].Value = append(st.Entries[0].Value, 'x')
		return st, err
	}
	r := h.run(testRunbook())
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	assert.Equal(t, "flags", r.FailedStep)
	assert.Contains(t, r.Reason, fmt.Sprintf("a deployment captures at most %d bytes", activities.MaxCapturedKVBytes))
	assert.NotContains(t, h.calls(false), "ApplyKV:flags")
	assert.Contains(t, h.calls(false), "MigrateDown:schema")
}

// Past the KV budget, the rounds the status keeps are the other large part
// of the carried state: tolerated failures with long errors in every check
// of every round. The hop drops them (the previous run's history has them)
// instead of giving up on continue-as-new.
func TestContinueAsNewDropsRoundsToFit(t *testing.T) {
	old := continueAsNewAfter
	rounds := simulateHistory(t)
	continueAsNewAfter = 12 * (maxRounds + 5)
	defer func() { continueAsNewAfter = old }()

	rb := bigKVRunbook(t)
	for _, list := range [][]runbook.Check{rb.Steps[3].Verify.Checks, rb.Analysis.Checks} {
		for i := range list {
			list[i].FailureLimit = 1 << 20
		}
	}
	h := newHarness(t)
	kvStates(h)
	h.measure = func(mi activities.MeasureInput) (activities.MeasureResult, error) {
		if mi.Step == "soak" {
			*rounds++
		}
		var r activities.MeasureResult
		for _, c := range mi.Checks {
			r.Measurements = append(r.Measurements, activities.Measurement{Check: c.Name, Kind: c.Kind(), Error: strings.Repeat("e", 400)})
		}
		return r, nil
	}
	var clock time.Time
	_, next := hop(t, h, bundleOf(t, rb), &clock)
	require.NotNil(t, next, "the deployment continued as new")
	p, err := converter.GetDefaultDataConverter().ToPayload(*next)
	require.NoError(t, err)
	t.Logf("continue-as-new input: %d bytes, %d rounds carried; limit %d", len(p.Data), len(next.Resume.Status.Rounds), maxContinueAsNewInput)
	assert.LessOrEqual(t, len(p.Data), maxContinueAsNewInput)
	assert.Empty(t, next.Resume.Status.Rounds, "the display rounds were dropped to fit")
	assert.Equal(t, maxRounds+5, next.Resume.Verify.Trackers[0].Failures, "the tallies that judge the checks travel whole")
}
