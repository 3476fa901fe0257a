package tests

// End-to-end tests of the activities against the real components of the dev
// stack (Consul, PostgreSQL, HAProxy): every assertion reads the state back
// from the component itself, not from the activity's answer.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"
	temporalsdk "go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/rollbook/rollbook/activities"
	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/internal/router"
	"github.com/rollbook/rollbook/internal/router/consulsplit"
	"github.com/rollbook/rollbook/internal/router/haproxy"
	"github.com/rollbook/rollbook/runbook"
)

// actStack returns the stack TestMain started (or attached to with
// ROLLBOOK_STACK_ENV).
func actStack(t *testing.T) *devstack.Stack {
	t.Helper()
	require.NotNil(t, stack, "TestMain did not start the dev stack")
	return stack
}

func actRandom(t *testing.T) string {
	b := make([]byte, 4)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// actRun executes an activity method in Temporal's test activity
// environment (real payload conversion and error types, no retries).
func actRun[T any](t *testing.T, impl, fn, in any) (T, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(impl)
	var out T
	val, err := env.ExecuteActivity(fn, in)
	if err != nil {
		return out, err
	}
	require.NoError(t, val.Get(&out))
	return out, nil
}

func actErrType(t *testing.T, err error, want string) {
	t.Helper()
	require.Error(t, err)
	var app *temporalsdk.ApplicationError
	require.True(t, errors.As(err, &app), "not an application error: %v", err)
	require.Equal(t, want, app.Type(), "error: %v", err)
	require.True(t, app.NonRetryable(), "should be non-retryable: %v", err)
}

func TestActivitiesE2E(t *testing.T) {
	st := actStack(t)
	t.Run("ConsulKV", func(t *testing.T) { testKVE2E(t, st) })
	t.Run("HAProxy", func(t *testing.T) { testHAProxyE2E(t, st) })
	t.Run("ConsulSplitter", func(t *testing.T) { testSplitterE2E(t, st) })
	t.Run("PostgresMigrations", func(t *testing.T) { testPostgresE2E(t, st) })
}

// ---- Consul KV ----

func actConsul(t *testing.T, st *devstack.Stack) *consulapi.Client {
	t.Helper()
	cfg := consulapi.DefaultConfig()
	cfg.Address = st.ConsulHTTPAddr
	c, err := consulapi.NewClient(cfg)
	require.NoError(t, err)
	return c
}

// kvGet reads a key straight from Consul: nil when absent.
func kvGet(t *testing.T, c *consulapi.Client, key string) *consulapi.KVPair {
	t.Helper()
	p, _, err := c.KV().Get(key, nil)
	require.NoError(t, err)
	return p
}

func kvPut(t *testing.T, c *consulapi.Client, key, value string, flags uint64) {
	t.Helper()
	_, err := c.KV().Put(&consulapi.KVPair{Key: key, Value: []byte(value), Flags: flags}, nil)
	require.NoError(t, err)
}

func testKVE2E(t *testing.T, st *devstack.Stack) {
	c := actConsul(t, st)
	prefix := "rollbook-e2e/" + actRandom(t) + "/"
	kv, err := activities.NewKV(c, []string{prefix})
	require.NoError(t, err)
	a, b, cKey, d := prefix+"a", prefix+"b", prefix+"c", prefix+"d"

	// Before: a and c exist (a with flags), b and d do not.
	reset := func() {
		kvPut(t, c, a, "old-a", 7)
		kvPut(t, c, cKey, "old-c", 0)
		for _, k := range []string{b, d} {
			_, err := c.KV().Delete(k, nil)
			require.NoError(t, err)
		}
	}
	requireBefore := func() {
		t.Helper()
		pa := kvGet(t, c, a)
		require.NotNil(t, pa)
		require.Equal(t, "old-a", string(pa.Value))
		require.EqualValues(t, 7, pa.Flags)
		pc := kvGet(t, c, cKey)
		require.NotNil(t, pc)
		require.Equal(t, "old-c", string(pc.Value))
		require.Nil(t, kvGet(t, c, b), "key %s did not exist before and must be gone again", b)
		require.Nil(t, kvGet(t, c, d))
	}
	ops := []runbook.KVOp{{Key: a, Value: "new-a"}, {Key: b, Value: "new-b"}, {Key: cKey, Delete: true}, {Key: d, Delete: true}}
	in := activities.KVInput{StepRef: activities.StepRef{DeploymentID: "e2e", Step: "config"}, Ops: ops}

	t.Run("capture apply restore", func(t *testing.T) {
		reset()
		captured, err := actRun[activities.KVState](t, kv, kv.CaptureKV, in)
		require.NoError(t, err)
		require.Len(t, captured.Entries, 4)
		require.True(t, captured.Entries[0].Exists)
		require.Equal(t, "old-a", string(captured.Entries[0].Value))
		require.EqualValues(t, 7, captured.Entries[0].Flags)
		require.False(t, captured.Entries[1].Exists)
		require.False(t, captured.Entries[3].Exists)

		applied, err := actRun[activities.KVState](t, kv, kv.ApplyKV, activities.KVApplyInput{KVInput: in, Captured: captured})
		require.NoError(t, err)
		pa := kvGet(t, c, a)
		require.Equal(t, "new-a", string(pa.Value))
		require.EqualValues(t, 7, pa.Flags, "flags are kept")
		require.Equal(t, pa.ModifyIndex, applied.Entries[0].ModifyIndex)
		require.Equal(t, "new-b", string(kvGet(t, c, b).Value))
		require.Nil(t, kvGet(t, c, cKey))
		require.Nil(t, kvGet(t, c, d))

		// The apply retried after its answer was lost recognises its write.
		again, err := actRun[activities.KVState](t, kv, kv.ApplyKV, activities.KVApplyInput{KVInput: in, Captured: captured})
		require.NoError(t, err)
		require.Equal(t, applied, again)
		require.Equal(t, pa.ModifyIndex, kvGet(t, c, a).ModifyIndex, "the retry wrote nothing")

		res, err := actRun[activities.RestoreResult](t, kv, kv.RestoreKV, activities.KVRestoreInput{KVInput: in, Captured: captured, Applied: &applied})
		require.NoError(t, err)
		require.False(t, res.AlreadyRestored)
		requireBefore()

		res, err = actRun[activities.RestoreResult](t, kv, kv.RestoreKV, activities.KVRestoreInput{KVInput: in, Captured: captured, Applied: &applied})
		require.NoError(t, err)
		require.True(t, res.AlreadyRestored)
		requireBefore()
	})

	t.Run("restore without the apply's answer", func(t *testing.T) {
		reset()
		captured, err := actRun[activities.KVState](t, kv, kv.CaptureKV, in)
		require.NoError(t, err)
		_, err = actRun[activities.KVState](t, kv, kv.ApplyKV, activities.KVApplyInput{KVInput: in, Captured: captured})
		require.NoError(t, err)
		_, err = actRun[activities.RestoreResult](t, kv, kv.RestoreKV, activities.KVRestoreInput{KVInput: in, Captured: captured})
		require.NoError(t, err)
		requireBefore()
	})

	t.Run("restore conflict", func(t *testing.T) {
		reset()
		captured, err := actRun[activities.KVState](t, kv, kv.CaptureKV, in)
		require.NoError(t, err)
		applied, err := actRun[activities.KVState](t, kv, kv.ApplyKV, activities.KVApplyInput{KVInput: in, Captured: captured})
		require.NoError(t, err)
		kvPut(t, c, a, "changed-by-hand", 0)

		_, err = actRun[activities.RestoreResult](t, kv, kv.RestoreKV, activities.KVRestoreInput{KVInput: in, Captured: captured, Applied: &applied})
		actErrType(t, err, activities.ErrConflict)
		require.ErrorContains(t, err, a)
		require.ErrorContains(t, err, "changed-by-hand")
		// Nothing was written: neither the hand change nor our other keys.
		require.Equal(t, "changed-by-hand", string(kvGet(t, c, a).Value))
		require.Equal(t, "new-b", string(kvGet(t, c, b).Value))
		require.Nil(t, kvGet(t, c, cKey))
	})

	t.Run("apply conflict", func(t *testing.T) {
		reset()
		captured, err := actRun[activities.KVState](t, kv, kv.CaptureKV, in)
		require.NoError(t, err)
		kvPut(t, c, d, "created-by-hand", 0)
		_, err = actRun[activities.KVState](t, kv, kv.ApplyKV, activities.KVApplyInput{KVInput: in, Captured: captured})
		actErrType(t, err, activities.ErrConflict)
		require.ErrorContains(t, err, d)
		require.Equal(t, "old-a", string(kvGet(t, c, a).Value), "the transaction wrote nothing")
		require.Nil(t, kvGet(t, c, b))
		require.Equal(t, "created-by-hand", string(kvGet(t, c, d).Value))
	})

	t.Run("prefix refused", func(t *testing.T) {
		outside := activities.KVInput{Ops: []runbook.KVOp{{Key: a, Value: "x"}, {Key: "rollbook-e2e-other/x", Value: "y"}}}
		_, err := actRun[activities.KVState](t, kv, kv.CaptureKV, outside)
		actErrType(t, err, activities.ErrInvalid)
		require.ErrorContains(t, err, "rollbook-e2e-other/x")
	})
}

// ---- HAProxy ----

// serversState reads uweight and admin state per server straight from
// HAProxy's runtime API.
func serversState(t *testing.T, st *devstack.Stack) map[string][2]int {
	t.Helper()
	out, err := st.HAProxyCommand("show servers state " + devstack.Backend)
	require.NoError(t, err)
	res := map[string][2]int{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || f[1] != devstack.Backend {
			continue
		}
		w, err := strconv.Atoi(f[7])
		require.NoError(t, err)
		adm, err := strconv.Atoi(f[6])
		require.NoError(t, err)
		res[f[3]] = [2]int{w, adm}
	}
	return res
}

func weightsOf(t *testing.T, st *devstack.Stack) map[string]int {
	t.Helper()
	s := serversState(t, st)
	return map[string]int{devstack.StableServer: s[devstack.StableServer][0], devstack.CanaryServer: s[devstack.CanaryServer][0]}
}

func haCommand(t *testing.T, st *devstack.Stack, cmd string) {
	t.Helper()
	out, err := st.HAProxyCommand(cmd)
	require.NoError(t, err)
	require.Empty(t, strings.TrimSpace(out), "haproxy answered %q to %q", out, cmd)
}

func waitUp(t *testing.T, r router.Router, route runbook.Route) {
	t.Helper()
	require.Eventually(t, func() bool {
		s, err := r.Weights(context.Background(), route.Backend, route.Subsets)
		if err != nil {
			return false
		}
		for _, sub := range route.Subsets {
			if !s.Health[sub].Up() {
				return false
			}
		}
		return true
	}, 20*time.Second, 100*time.Millisecond, "servers of %s never came up", route.Backend)
}

func testHAProxyE2E(t *testing.T, st *devstack.Stack) {
	stable, canary := devstack.StableServer, devstack.CanaryServer
	initial := weightsOf(t, st)
	t.Cleanup(func() {
		haCommand(t, st, fmt.Sprintf("set server %s/%s state ready; set server %s/%s weight %d; set server %s/%s weight %d",
			devstack.Backend, stable, devstack.Backend, stable, initial[stable], devstack.Backend, canary, initial[canary]))
	})
	for name, addr := range map[string]string{"unix": st.HAProxySocket, "tcp": "tcp://" + st.HAProxyAdmin} {
		t.Run(name, func(t *testing.T) { testHAProxyOn(t, st, addr) })
	}
}

func testHAProxyOn(t *testing.T, st *devstack.Stack, addr string) {
	stable, canary := devstack.StableServer, devstack.CanaryServer
	r, err := haproxy.New(addr)
	require.NoError(t, err)
	tr, err := activities.NewTraffic(map[string]router.Router{"edge": r})
	require.NoError(t, err)
	route := runbook.Route{Name: "payments", Router: "edge", Backend: devstack.Backend, Subsets: []string{stable, canary}, Stable: stable, Canary: canary}
	in := activities.TrafficInput{StepRef: activities.StepRef{DeploymentID: "e2e", Step: "canary-10"}, Route: route}
	waitUp(t, r, route)
	before := weightsOf(t, st)

	t.Run("capture set restore", func(t *testing.T) {
		captured, err := actRun[activities.WeightState](t, tr, tr.CaptureWeights, in)
		require.NoError(t, err)
		require.Equal(t, before, captured.Raw)
		require.Equal(t, 100, captured.Weights[stable]+captured.Weights[canary])
		require.Equal(t, "UP", captured.Health[stable])

		target := map[string]int{stable: 90, canary: 10}
		set := activities.SetWeightsInput{TrafficInput: in, Weights: target, Captured: captured}
		got, err := actRun[activities.WeightState](t, tr, tr.SetWeights, set)
		require.NoError(t, err)
		require.Equal(t, target, got.Weights)
		require.Equal(t, target, weightsOf(t, st), "percent is written as the HAProxy weight")

		_, err = actRun[activities.WeightState](t, tr, tr.SetWeights, set)
		require.NoError(t, err, "already at target is a success")

		rin := activities.RestoreWeightsInput{TrafficInput: in, Captured: captured, Applied: target, CheckCapacity: true}
		res, err := actRun[activities.RestoreResult](t, tr, tr.RestoreWeights, rin)
		require.NoError(t, err)
		require.False(t, res.AlreadyRestored)
		require.Equal(t, before, weightsOf(t, st), "raw weights restored exactly")

		res, err = actRun[activities.RestoreResult](t, tr, tr.RestoreWeights, rin)
		require.NoError(t, err)
		require.True(t, res.AlreadyRestored)
	})

	t.Run("conflict", func(t *testing.T) {
		captured, err := actRun[activities.WeightState](t, tr, tr.CaptureWeights, in)
		require.NoError(t, err)
		target := map[string]int{stable: 90, canary: 10}
		_, err = actRun[activities.WeightState](t, tr, tr.SetWeights, activities.SetWeightsInput{TrafficInput: in, Weights: target, Captured: captured})
		require.NoError(t, err)
		haCommand(t, st, fmt.Sprintf("set server %s/%s weight 50", devstack.Backend, canary))

		_, err = actRun[activities.RestoreResult](t, tr, tr.RestoreWeights, activities.RestoreWeightsInput{TrafficInput: in, Captured: captured, Applied: target})
		actErrType(t, err, activities.ErrConflict)
		require.Equal(t, map[string]int{stable: 90, canary: 50}, weightsOf(t, st), "nothing overwritten")

		// A new apply from a stale capture is refused the same way.
		_, err = actRun[activities.WeightState](t, tr, tr.SetWeights, activities.SetWeightsInput{TrafficInput: in, Weights: map[string]int{stable: 50, canary: 50}, Captured: captured})
		actErrType(t, err, activities.ErrConflict)
		haCommand(t, st, fmt.Sprintf("set server %s/%s weight %d; set server %s/%s weight %d", devstack.Backend, stable, before[stable], devstack.Backend, canary, before[canary]))
	})

	t.Run("restart is a mismatch", func(t *testing.T) {
		// Someone set 200/56 at runtime; we capture that, apply 50/50, then
		// HAProxy "restarts" back to its configured weights.
		haCommand(t, st, fmt.Sprintf("set server %s/%s weight 200; set server %s/%s weight 56", devstack.Backend, stable, devstack.Backend, canary))
		captured, err := actRun[activities.WeightState](t, tr, tr.CaptureWeights, in)
		require.NoError(t, err)
		target := map[string]int{stable: 50, canary: 50}
		_, err = actRun[activities.WeightState](t, tr, tr.SetWeights, activities.SetWeightsInput{TrafficInput: in, Weights: target, Captured: captured})
		require.NoError(t, err)
		haCommand(t, st, fmt.Sprintf("set server %s/%s weight %d; set server %s/%s weight %d", devstack.Backend, stable, captured.Initial[stable], devstack.Backend, canary, captured.Initial[canary]))

		_, err = actRun[activities.RestoreResult](t, tr, tr.RestoreWeights, activities.RestoreWeightsInput{TrafficInput: in, Captured: captured, Applied: target})
		actErrType(t, err, activities.ErrMismatch)
		require.ErrorContains(t, err, "restarted")
		haCommand(t, st, fmt.Sprintf("set server %s/%s weight %d; set server %s/%s weight %d", devstack.Backend, stable, before[stable], devstack.Backend, canary, before[canary]))
	})

	t.Run("capacity check", func(t *testing.T) {
		captured, err := actRun[activities.WeightState](t, tr, tr.CaptureWeights, in)
		require.NoError(t, err)
		target := map[string]int{stable: 0, canary: 100}
		_, err = actRun[activities.WeightState](t, tr, tr.SetWeights, activities.SetWeightsInput{TrafficInput: in, Weights: target, Captured: captured})
		require.NoError(t, err)
		haCommand(t, st, fmt.Sprintf("set server %s/%s state maint", devstack.Backend, stable))

		rin := activities.RestoreWeightsInput{TrafficInput: in, Captured: captured, Applied: target, CheckCapacity: true}
		_, err = actRun[activities.RestoreResult](t, tr, tr.RestoreWeights, rin)
		require.Error(t, err)
		require.ErrorContains(t, err, "stable server payments_api/stable is MAINT")
		require.ErrorContains(t, err, "not moving traffic to it")
		actErrType(t, err, activities.ErrNoCapacity)
		require.Equal(t, target, weightsOf(t, st), "no weight moved to a server in maintenance")

		haCommand(t, st, fmt.Sprintf("set server %s/%s state ready", devstack.Backend, stable))
		waitUp(t, r, route)
		_, err = actRun[activities.RestoreResult](t, tr, tr.RestoreWeights, rin)
		require.NoError(t, err)
		require.Equal(t, before, weightsOf(t, st))
	})

	t.Run("router and compare checks", func(t *testing.T) {
		chk, err := activities.NewChecks(activities.ChecksConfig{Routers: map[string]router.Router{"edge": r}, Endpoints: map[string]string{"front": st.HAProxyURL}})
		require.NoError(t, err)
		checks := []runbook.Check{
			{Name: "stable-errors", Router: &runbook.RouterCheck{Route: "payments", Subset: stable, MaxErrorRate: 0.01}},
			{Name: "canary-vs-stable", Compare: &runbook.CompareCheck{Route: "payments"}},
			{Name: "front", HTTP: &runbook.HTTPCheck{Endpoint: "front", Path: "/healthz", Samples: 3}},
		}
		mi := activities.MeasureInput{Round: 1, Checks: checks, Routes: []runbook.Route{route}}
		first, err := actRun[activities.MeasureResult](t, chk, chk.Measure, mi)
		require.NoError(t, err)
		require.Len(t, first.Measurements, 3)
		require.True(t, first.Measurements[0].BaselineRound)
		require.Empty(t, first.Measurements[0].Error)

		// All traffic goes to stable (canary has weight 0).
		const n = 20
		for range n {
			resp, err := http.Get(st.HAProxyURL + "/api/payments")
			require.NoError(t, err)
			resp.Body.Close()
		}
		mi.Round, mi.Previous = 2, first.Measurements
		second, err := actRun[activities.MeasureResult](t, chk, chk.Measure, mi)
		require.NoError(t, err)
		m := second.Measurements[0]
		require.False(t, m.BaselineRound, m.Detail)
		// Each round's http check sends 3 requests through the frontend too,
		// concurrently with the counters being read.
		require.GreaterOrEqual(t, m.Requests, int64(n))
		require.LessOrEqual(t, m.Requests, int64(n+6))
		require.Zero(t, m.Errors)
		cmp := second.Measurements[1]
		require.NotNil(t, cmp.Baseline)
		require.GreaterOrEqual(t, cmp.Baseline.Requests, int64(n))
		require.LessOrEqual(t, cmp.Baseline.Requests, int64(n+6))
		require.Zero(t, cmp.Canary.Requests)
		h := second.Measurements[2]
		require.Empty(t, h.Error)
		require.Equal(t, 200, h.Status)
		require.Zero(t, h.Failures)
	})
}

// ---- Consul service-splitter ----

func testSplitterE2E(t *testing.T, st *devstack.Stack) {
	c := actConsul(t, st)
	svc := "rollbook-e2e-" + actRandom(t)
	_, _, err := c.ConfigEntries().Set(&consulapi.ServiceConfigEntry{Kind: consulapi.ServiceDefaults, Name: svc, Protocol: "http"}, nil)
	require.NoError(t, err)
	_, _, err = c.ConfigEntries().Set(&consulapi.ServiceResolverConfigEntry{
		Kind: consulapi.ServiceResolver, Name: svc, DefaultSubset: "stable",
		Subsets: map[string]consulapi.ServiceResolverSubset{
			"stable": {Filter: "Service.Meta.version == v1"},
			"canary": {Filter: "Service.Meta.version == v2"},
		},
	}, nil)
	require.NoError(t, err)
	for i, v := range []string{"v1", "v2"} {
		require.NoError(t, c.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{
			ID: fmt.Sprintf("%s-%d", svc, i), Name: svc, Port: 9000 + i, Address: "127.0.0.1", Meta: map[string]string{"version": v},
		}))
	}
	t.Cleanup(func() {
		for i := range 2 {
			_ = c.Agent().ServiceDeregister(fmt.Sprintf("%s-%d", svc, i))
		}
		_, _ = c.ConfigEntries().Delete(consulapi.ServiceSplitter, svc, nil)
		_, _ = c.ConfigEntries().Delete(consulapi.ServiceResolver, svc, nil)
		_, _ = c.ConfigEntries().Delete(consulapi.ServiceDefaults, svc, nil)
	})

	splitter := func() *consulapi.ServiceSplitterConfigEntry {
		t.Helper()
		e, _, err := c.ConfigEntries().Get(consulapi.ServiceSplitter, svc, nil)
		var se consulapi.StatusError
		if errors.As(err, &se) && se.Code == http.StatusNotFound {
			return nil
		}
		require.NoError(t, err)
		return e.(*consulapi.ServiceSplitterConfigEntry)
	}
	splits := func(e *consulapi.ServiceSplitterConfigEntry) map[string]float32 {
		out := map[string]float32{}
		for _, s := range e.Splits {
			out[s.ServiceSubset] = s.Weight
		}
		return out
	}

	r, err := consulsplit.New(c, "e2e")
	require.NoError(t, err)
	tr, err := activities.NewTraffic(map[string]router.Router{"mesh": r})
	require.NoError(t, err)
	route := runbook.Route{Name: "mesh", Router: "mesh", Backend: svc, Subsets: []string{"stable", "canary"}, Stable: "stable", Canary: "canary"}
	in := activities.TrafficInput{Route: route}
	target := map[string]int{"stable": 80, "canary": 20}

	t.Run("absent entry", func(t *testing.T) {
		captured, err := actRun[activities.WeightState](t, tr, tr.CaptureWeights, in)
		require.NoError(t, err)
		require.True(t, captured.Absent)
		require.Equal(t, map[string]int{"stable": 100, "canary": 0}, captured.Weights)
		require.Equal(t, map[string]string{"stable": "UP", "canary": "UP"}, captured.Health)

		_, err = actRun[activities.WeightState](t, tr, tr.SetWeights, activities.SetWeightsInput{TrafficInput: in, Weights: target, Captured: captured})
		require.NoError(t, err)
		require.Equal(t, map[string]float32{"stable": 80, "canary": 20}, splits(splitter()))

		rin := activities.RestoreWeightsInput{TrafficInput: in, Captured: captured, Applied: target, CheckCapacity: true}
		res, err := actRun[activities.RestoreResult](t, tr, tr.RestoreWeights, rin)
		require.NoError(t, err)
		require.False(t, res.AlreadyRestored)
		require.Nil(t, splitter(), "the entry did not exist before and is deleted again")

		res, err = actRun[activities.RestoreResult](t, tr, tr.RestoreWeights, rin)
		require.NoError(t, err)
		require.True(t, res.AlreadyRestored)
	})

	t.Run("existing entry restored exactly", func(t *testing.T) {
		_, _, err := c.ConfigEntries().Set(&consulapi.ServiceSplitterConfigEntry{
			Kind: consulapi.ServiceSplitter, Name: svc, Meta: map[string]string{"owner": "platform"},
			Splits: []consulapi.ServiceSplit{{Weight: 99.5, ServiceSubset: "stable"}, {Weight: 0.5, ServiceSubset: "canary"}},
		}, nil)
		require.NoError(t, err)
		captured, err := actRun[activities.WeightState](t, tr, tr.CaptureWeights, in)
		require.NoError(t, err)
		require.False(t, captured.Absent)
		require.NotZero(t, captured.Index)

		_, err = actRun[activities.WeightState](t, tr, tr.SetWeights, activities.SetWeightsInput{TrafficInput: in, Weights: target, Captured: captured})
		require.NoError(t, err)
		_, err = actRun[activities.RestoreResult](t, tr, tr.RestoreWeights, activities.RestoreWeightsInput{TrafficInput: in, Captured: captured, Applied: target})
		require.NoError(t, err)
		e := splitter()
		require.Equal(t, map[string]float32{"stable": 99.5, "canary": 0.5}, splits(e))
		require.Equal(t, "platform", e.Meta["owner"])
		_, err = c.ConfigEntries().Delete(consulapi.ServiceSplitter, svc, nil)
		require.NoError(t, err)
	})

	t.Run("conflict", func(t *testing.T) {
		captured, err := actRun[activities.WeightState](t, tr, tr.CaptureWeights, in)
		require.NoError(t, err)
		_, err = actRun[activities.WeightState](t, tr, tr.SetWeights, activities.SetWeightsInput{TrafficInput: in, Weights: target, Captured: captured})
		require.NoError(t, err)
		_, _, err = c.ConfigEntries().Set(&consulapi.ServiceSplitterConfigEntry{
			Kind: consulapi.ServiceSplitter, Name: svc,
			Splits: []consulapi.ServiceSplit{{Weight: 50, ServiceSubset: "stable"}, {Weight: 50, ServiceSubset: "canary"}},
		}, nil)
		require.NoError(t, err)
		_, err = actRun[activities.RestoreResult](t, tr, tr.RestoreWeights, activities.RestoreWeightsInput{TrafficInput: in, Captured: captured, Applied: target})
		actErrType(t, err, activities.ErrConflict)
		require.Equal(t, map[string]float32{"stable": 50, "canary": 50}, splits(splitter()), "nothing overwritten")
	})

	t.Run("undefined subset", func(t *testing.T) {
		bad := route
		bad.Subsets = []string{"stable", "blue"}
		_, err := actRun[activities.WeightState](t, tr, tr.CaptureWeights, activities.TrafficInput{Route: bad})
		actErrType(t, err, activities.ErrInvalid)
		require.ErrorContains(t, err, `subset "blue" is not defined`)
	})
}

// ---- PostgreSQL migrations ----

const pgMigDir = "migrations/e2e"

func pgFiles(second string) []runbook.File {
	return []runbook.File{
		{Path: pgMigDir + "/00001_accounts.sql", Content: "-- +goose Up\nCREATE TABLE accounts (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL);\n-- +goose Down\nDROP TABLE accounts;\n"},
		{Path: pgMigDir + "/00002_balance.sql", Content: second},
		{Path: pgMigDir + "/00003_ledger.sql", Content: "-- +goose Up\nCREATE TABLE ledger (id BIGSERIAL PRIMARY KEY, amount BIGINT NOT NULL);\n-- +goose Down\nDROP TABLE ledger;\n"},
	}
}

const (
	pgGoodSecond = "-- +goose Up\nALTER TABLE accounts ADD COLUMN balance BIGINT NOT NULL DEFAULT 0;\n-- +goose Down\nALTER TABLE accounts DROP COLUMN balance;\n"
	pgBadSecond  = "-- +goose Up\nALTER TABLE no_such_table ADD COLUMN balance BIGINT;\n-- +goose Down\nSELECT 1;\n"
)

// pgSchemaDSN adds a search_path to dsn so that the test's tables and goose
// table live in their own schema of the stack's database.
func pgSchemaDSN(t *testing.T, dsn, schema string) string {
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func testPostgresE2E(t *testing.T, st *devstack.Stack) {
	admin, err := sql.Open("pgx", st.PGDSN)
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close() })

	tables := func(schema string) []string {
		t.Helper()
		rows, err := admin.Query(`SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_name <> 'goose_db_version' ORDER BY 1`, schema)
		require.NoError(t, err)
		defer rows.Close()
		var out []string
		for rows.Next() {
			var n string
			require.NoError(t, rows.Scan(&n))
			out = append(out, n)
		}
		return out
	}
	newSchema := func() (string, *activities.Migrations) {
		schema := "e2e_" + actRandom(t)
		_, err := admin.Exec("CREATE SCHEMA " + schema)
		require.NoError(t, err)
		t.Cleanup(func() { _, _ = admin.Exec("DROP SCHEMA " + schema + " CASCADE") })
		m, err := activities.NewMigrations(map[string]activities.DatabaseTarget{"payments": {Dialect: activities.DialectPostgres, DSN: pgSchemaDSN(t, st.PGDSN, schema)}})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, m.Close()) })
		return schema, m
	}

	t.Run("up and down", func(t *testing.T) {
		schema, m := newSchema()
		in := activities.MigrateInput{Database: "payments", Dir: pgMigDir, Files: pgFiles(pgGoodSecond)}
		captured, err := actRun[activities.SchemaState](t, m, m.CaptureSchema, in)
		require.NoError(t, err)
		require.Zero(t, captured.Version)

		up, err := actRun[activities.MigrateResult](t, m, m.MigrateUp, activities.MigrateUpInput{MigrateInput: in})
		require.NoError(t, err)
		require.Equal(t, []int64{1, 2, 3}, up.Applied)
		require.Equal(t, []string{"accounts", "ledger"}, tables(schema))
		again, err := actRun[activities.MigrateResult](t, m, m.MigrateUp, activities.MigrateUpInput{MigrateInput: in})
		require.NoError(t, err)
		require.Empty(t, again.Applied)

		_, err = actRun[activities.RestoreResult](t, m, m.MigrateDown, activities.MigrateDownInput{MigrateInput: in, Captured: captured})
		require.NoError(t, err)
		require.Empty(t, tables(schema))
		res, err := actRun[activities.RestoreResult](t, m, m.MigrateDown, activities.MigrateDownInput{MigrateInput: in, Captured: captured})
		require.NoError(t, err)
		require.True(t, res.AlreadyRestored)
	})

	t.Run("half-failing migration", func(t *testing.T) {
		schema, m := newSchema()
		in := activities.MigrateInput{Database: "payments", Dir: pgMigDir, Files: pgFiles(pgBadSecond)}
		captured, err := actRun[activities.SchemaState](t, m, m.CaptureSchema, in)
		require.NoError(t, err)
		_, err = actRun[activities.MigrateResult](t, m, m.MigrateUp, activities.MigrateUpInput{MigrateInput: in})
		actErrType(t, err, activities.ErrInvalid)
		require.ErrorContains(t, err, "schema left at version 1")
		now, err := actRun[activities.SchemaState](t, m, m.CaptureSchema, in)
		require.NoError(t, err)
		require.EqualValues(t, 1, now.Version)
		require.Equal(t, []string{"accounts"}, tables(schema))

		_, err = actRun[activities.RestoreResult](t, m, m.MigrateDown, activities.MigrateDownInput{MigrateInput: in, Captured: captured})
		require.NoError(t, err)
		require.Empty(t, tables(schema))
	})

	t.Run("session lock serialises deployments", func(t *testing.T) {
		schema, m := newSchema()
		in := activities.MigrateInput{Database: "payments", Dir: pgMigDir, Files: pgFiles(pgGoodSecond)}
		// Another deployment holds goose's advisory lock on this database.
		conn, err := admin.Conn(context.Background())
		require.NoError(t, err)
		defer conn.Close()
		_, err = conn.ExecContext(context.Background(), `SELECT pg_advisory_lock(4097083626)`)
		require.NoError(t, err)

		// A cancelled activity stops waiting for the lock.
		cctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		t0 := time.Now()
		_, err = m.MigrateUp(cctx, activities.MigrateUpInput{MigrateInput: in})
		cancel()
		require.Error(t, err)
		require.Less(t, time.Since(t0), 2*time.Second, "cancellation honoured while waiting for the lock")
		require.Empty(t, tables(schema))

		var wg sync.WaitGroup
		var upErr error
		var done time.Time
		start := time.Now()
		wg.Go(func() {
			_, upErr = actRun[activities.MigrateResult](t, m, m.MigrateUp, activities.MigrateUpInput{MigrateInput: in})
			done = time.Now()
		})
		time.Sleep(2500 * time.Millisecond)
		require.Empty(t, tables(schema), "migrated while another session held the lock")
		_, err = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock(4097083626)`)
		require.NoError(t, err)
		wg.Wait()
		require.NoError(t, upErr)
		require.Greater(t, done.Sub(start), 2500*time.Millisecond)
		require.Equal(t, []string{"accounts", "ledger"}, tables(schema))
	})
}
