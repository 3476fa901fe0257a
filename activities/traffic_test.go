package activities

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/internal/router"
	"github.com/rollbook/rollbook/runbook"
)

var testRoute = runbook.Route{Name: "payments", Router: "edge", Backend: "payments_api", Subsets: []string{"stable", "canary"}, Stable: "stable", Canary: "canary"}

func newTraffic(t *testing.T) (*Traffic, *fakeRouter) {
	t.Helper()
	f := &fakeRouter{raw: map[string]int{"stable": 256, "canary": 0}, initial: map[string]int{"stable": 256, "canary": 0}}
	tr, err := NewTraffic(map[string]router.Router{"edge": f})
	require.NoError(t, err)
	return tr, f
}

func TestTrafficCaptureSetRestore(t *testing.T) {
	tr, f := newTraffic(t)
	in := TrafficInput{Route: testRoute}
	captured, err := runActivity[WeightState](t, tr, tr.CaptureWeights, in)
	require.NoError(t, err)
	require.Equal(t, map[string]int{"stable": 100, "canary": 0}, captured.Weights)
	require.Equal(t, map[string]int{"stable": 256, "canary": 0}, captured.Raw)
	require.Equal(t, "UP", captured.Health["stable"])

	target := map[string]int{"stable": 90, "canary": 10}
	got, err := runActivity[WeightState](t, tr, tr.SetWeights, SetWeightsInput{TrafficInput: in, Weights: target, Captured: captured})
	require.NoError(t, err)
	require.Equal(t, target, got.Weights)
	require.Equal(t, 1, f.writes)

	// Retry after a lost answer: no second write.
	_, err = runActivity[WeightState](t, tr, tr.SetWeights, SetWeightsInput{TrafficInput: in, Weights: target, Captured: captured})
	require.NoError(t, err)
	require.Equal(t, 1, f.writes)

	// Gradual restore: a stage, then the captured weights.
	stage := map[string]int{"stable": 95, "canary": 5}
	res, err := runActivity[RestoreResult](t, tr, tr.RestoreWeights, RestoreWeightsInput{TrafficInput: in, Captured: captured, Applied: target, Target: stage})
	require.NoError(t, err)
	require.False(t, res.AlreadyRestored)
	require.Equal(t, map[string]int{"stable": 95, "canary": 5}, f.raw)

	rin := RestoreWeightsInput{TrafficInput: in, Captured: captured, Applied: target, Expect: stage, CheckCapacity: true}
	res, err = runActivity[RestoreResult](t, tr, tr.RestoreWeights, rin)
	require.NoError(t, err)
	require.False(t, res.AlreadyRestored)
	require.Equal(t, map[string]int{"stable": 256, "canary": 0}, f.raw, "raw weights restored exactly")

	res, err = runActivity[RestoreResult](t, tr, tr.RestoreWeights, rin)
	require.NoError(t, err)
	require.True(t, res.AlreadyRestored)
}

func TestTrafficConflictMismatchCapacity(t *testing.T) {
	tr, f := newTraffic(t)
	in := TrafficInput{Route: testRoute}
	f.raw = map[string]int{"stable": 80, "canary": 20}
	captured, err := runActivity[WeightState](t, tr, tr.CaptureWeights, in)
	require.NoError(t, err)
	target := map[string]int{"stable": 50, "canary": 50}
	_, err = runActivity[WeightState](t, tr, tr.SetWeights, SetWeightsInput{TrafficInput: in, Weights: target, Captured: captured})
	require.NoError(t, err)

	// Someone else's weights: conflict, nothing written.
	f.raw = map[string]int{"stable": 70, "canary": 30}
	writes := f.writes
	_, err = runActivity[RestoreResult](t, tr, tr.RestoreWeights, RestoreWeightsInput{TrafficInput: in, Captured: captured, Applied: target})
	requireErrType(t, err, ErrConflict)
	require.ErrorContains(t, err, "canary=30% stable=70%")
	require.Equal(t, writes, f.writes)

	// Back at the configured weights: a restart, reported as a mismatch.
	f.raw = map[string]int{"stable": 256, "canary": 0}
	_, err = runActivity[RestoreResult](t, tr, tr.RestoreWeights, RestoreWeightsInput{TrafficInput: in, Captured: captured, Applied: target})
	requireErrType(t, err, ErrMismatch)

	// Stable in maintenance: a non-retryable ErrNoCapacity, nothing written.
	f.raw = map[string]int{"stable": 50, "canary": 50}
	f.health = map[string]router.ServerHealth{"stable": {State: router.StateMaint}}
	_, err = runActivity[RestoreResult](t, tr, tr.RestoreWeights, RestoreWeightsInput{TrafficInput: in, Captured: captured, Applied: target, CheckCapacity: true})
	require.ErrorContains(t, err, "stable server payments_api/stable is MAINT, not moving traffic to it")
	requireErrType(t, err, ErrNoCapacity)
	require.Equal(t, writes, f.writes)
}

func TestTrafficInvalidInput(t *testing.T) {
	tr, f := newTraffic(t)
	bad := testRoute
	bad.Router = "nope"
	_, err := runActivity[WeightState](t, tr, tr.CaptureWeights, TrafficInput{Route: bad})
	requireErrType(t, err, ErrInvalid)
	require.ErrorContains(t, err, `unknown router "nope"`)

	_, err = runActivity[WeightState](t, tr, tr.SetWeights, SetWeightsInput{TrafficInput: TrafficInput{Route: testRoute}, Weights: map[string]int{"stable": 50, "canary": 40}})
	requireErrType(t, err, ErrInvalid)

	f.err = errors.New("dial unix /run/haproxy.sock: connect: connection refused")
	_, err = runActivity[WeightState](t, tr, tr.CaptureWeights, TrafficInput{Route: testRoute})
	require.Error(t, err)
	typ, nonRetryable := errType(err)
	require.False(t, nonRetryable, "transient errors are retried (type %q)", typ)

	f.err = errors.New("backend x: " + router.ErrNotFound.Error())
	f.err = errors.Join(f.err, router.ErrNotFound)
	_, err = runActivity[WeightState](t, tr, tr.CaptureWeights, TrafficInput{Route: testRoute})
	requireErrType(t, err, ErrInvalid)
}
