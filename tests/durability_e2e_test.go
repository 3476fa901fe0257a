package tests

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/rollbook/rollbook/activities"
	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/internal/router"
	"github.com/rollbook/rollbook/internal/router/haproxy"
	"github.com/rollbook/rollbook/internal/worker"
	"github.com/rollbook/rollbook/internal/zapadapter"
	"github.com/rollbook/rollbook/workflows"
)

// TestDurability is issue 5, items 2–5: a component of the stack restarts or goes away in
// the middle of a deployment, and the deployment still ends fully deployed or fully rolled
// back, with nothing lost, skipped or clobbered.
//
// Restarting components of the stack every other e2e test shares would break them (and is
// impossible when they attach to an external stack with ROLLBOOK_STACK_ENV), so these
// subtests share a private stack and a worker of their own, on a task queue of their own,
// configured for that stack from explicit values rather than the process environment.
func TestDurability(t *testing.T) {
	d := startDurable(t)
	t.Run("TemporalRestart", d.testTemporalRestart)
	t.Run("PostgresRestartMidMigration", d.testPostgresRestart)
	t.Run("HAProxyRestart", d.testHAProxyRestart)
	t.Run("ConsulDown30s", d.testConsulDown)
}

const durableQueue = "rollbook-durability"

// durable is the private stack, its clients and its worker.
type durable struct {
	st     *devstack.Stack
	tc     client.Client
	consul *consulapi.Client
}

func startDurable(t *testing.T) *durable {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Short: HAProxy's unix socket lives in the directory (sun_path is 108 bytes).
	dir, err := os.MkdirTemp("", "rbdur-")
	require.NoError(t, err)
	st, err := devstack.Start(ctx, devstack.Options{Dir: dir, RemoveOnStop: true, ModuleRoot: repoRoot, Log: testWriter{t}})
	require.NoError(t, err, "starting the private stack")
	d := &durable{st: st}
	t.Cleanup(func() {
		if err := st.Stop(); err != nil {
			t.Errorf("stopping the private stack: %v", err)
		}
	})

	log := zap.NewNop()
	if os.Getenv("ROLLBOOK_E2E_VERBOSE") != "" {
		log, _ = zap.NewDevelopment()
	}
	d.tc, err = client.Dial(client.Options{HostPort: st.TemporalAddress, Namespace: devstack.Namespace, Logger: zapadapter.New(log)})
	require.NoError(t, err)
	t.Cleanup(d.tc.Close)
	d.consul, err = consulapi.NewClient(&consulapi.Config{Address: st.ConsulHTTPAddr})
	require.NoError(t, err)

	// What worker.BuildActivities builds from examples/dev-worker.yaml, with this stack's
	// addresses instead of the environment's (which point at the shared stack).
	mig, err := activities.NewMigrations(map[string]activities.DatabaseTarget{"payments": {Dialect: activities.DialectPostgres, DSN: st.PGDSN}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = mig.Close() })
	kvActs, err := activities.NewKV(d.consul, []string{"rollbook-e2e/"})
	require.NoError(t, err)
	edge, err := haproxy.New(st.HAProxySocket)
	require.NoError(t, err)
	routers := map[string]router.Router{"edge": edge}
	tr, err := activities.NewTraffic(routers)
	require.NoError(t, err)
	chk, err := activities.NewChecks(activities.ChecksConfig{Routers: routers, Endpoints: map[string]string{"edge": st.HAProxyURL}})
	require.NoError(t, err)
	nt, err := activities.NewNotifier(nil, nil)
	require.NoError(t, err)
	w := sdkworker.New(d.tc, durableQueue, sdkworker.Options{})
	worker.Register(w, &worker.Activities{Migrations: mig, KV: kvActs, Traffic: tr, Checks: chk, Notifier: nt,
		Preflight: &activities.Preflight{Migrations: mig, KV: kvActs, Traffic: tr}})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	return d
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// durFixture is one subtest's service on the private stack: HAProxy at stable 100 %
// (runtime weights 100/0, unlike the configuration's 256/0, as after any earlier
// deployment), its Consul prefix with config/version = "1", an empty database.
type durFixture struct {
	d       *durable
	t       *testing.T
	service string
	prefix  string
	dir     string
	cli     *asyncCLI // the running `rollbook deploy --wait`, if any
}

func (d *durable) fixture(t *testing.T, service string) *durFixture {
	f := &durFixture{d: d, t: t, service: service, prefix: "rollbook-e2e/" + service + "/", dir: t.TempDir()}
	f.haproxy(fmt.Sprintf("set server %[1]s/stable weight 100; set server %[1]s/canary weight 0; set server %[1]s/stable state ready; set server %[1]s/canary state ready", devstack.Backend))
	_, err := d.consul.KV().DeleteTree(f.prefix, nil)
	require.NoError(t, err)
	_, err = d.consul.KV().Put(&consulapi.KVPair{Key: f.prefix + "config/version", Value: []byte("1")}, nil)
	require.NoError(t, err)
	_, err = f.db().Exec(`DROP SCHEMA public CASCADE; CREATE SCHEMA public`)
	require.NoError(t, err)
	// The demo API's base tables (payments, idempotency_keys): its /api answers need them.
	require.NoError(t, devstack.EnsureDemoSchema(context.Background(), d.st.PGDSN))
	f.writeMigrations("migrations", map[string]string{
		"00001_create.sql": "-- +goose Up\nCREATE TABLE durable_t (id int);\n-- +goose Down\nDROP TABLE durable_t;\n",
	})
	t.Cleanup(f.end)
	return f
}

// end terminates a deployment a failed subtest leaves behind, so that it does not keep
// moving the private stack's weights under the next subtest.
func (f *durFixture) end() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	desc, err := f.d.tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(f.service), "")
	if err == nil && desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		f.t.Logf("terminating the deployment of %s left running", f.service)
		_ = f.d.tc.TerminateWorkflow(ctx, workflows.WorkflowID(f.service), "", "durability test ended")
	}
}

func (f *durFixture) haproxy(cmd string) {
	f.t.Helper()
	out, err := f.d.st.HAProxyCommand(cmd)
	require.NoError(f.t, err)
	require.Empty(f.t, strings.TrimSpace(out), "HAProxy answered %q to %q", out, cmd)
}

// weights reads stable/canary raw weights in one "show servers state".
func (f *durFixture) weights() map[string]int {
	f.t.Helper()
	return weightsOf(f.t, f.d.st)
}

func (f *durFixture) db() *sql.DB {
	f.t.Helper()
	db, err := sql.Open("pgx", f.d.st.PGDSN)
	require.NoError(f.t, err)
	f.t.Cleanup(func() { db.Close() })
	return db
}

func (f *durFixture) schemaVersion() int64 {
	f.t.Helper()
	db := f.db()
	var exists bool
	require.NoError(f.t, db.QueryRow(`SELECT to_regclass('public.goose_db_version') IS NOT NULL`).Scan(&exists))
	if !exists {
		return 0
	}
	var v sql.NullInt64
	require.NoError(f.t, db.QueryRow(`SELECT max(version_id) FROM goose_db_version WHERE is_applied`).Scan(&v))
	return v.Int64
}

func (f *durFixture) exists(sqlExpr string, args ...any) bool {
	f.t.Helper()
	var ok bool
	require.NoError(f.t, f.db().QueryRow(sqlExpr, args...).Scan(&ok))
	return ok
}

func (f *durFixture) kv(key string) (string, bool) {
	f.t.Helper()
	p, _, err := f.d.consul.KV().Get(f.prefix+key, nil)
	require.NoError(f.t, err)
	if p == nil {
		return "", false
	}
	return string(p.Value), true
}

// writeMigrations puts goose files in dir/name.
func (f *durFixture) writeMigrations(name string, files map[string]string) {
	dst := filepath.Join(f.dir, name)
	require.NoError(f.t, os.MkdirAll(dst, 0o755))
	for n, c := range files {
		require.NoError(f.t, os.WriteFile(filepath.Join(dst, n), []byte(c), 0o644))
	}
}

// runbook: schema → flags (Consul) → canary-50 → verify-50 (verifyFor) → canary-100 →
// verify-100. The checks only probe HAProxy's /healthz and tolerate a few failures: the
// subtests restart HAProxy under them, and what is tested is the saga, not the checks.
func (f *durFixture) runbook(migrations string, verifyFor time.Duration) string {
	y := fmt.Sprintf(`apiVersion: rollbook/v1
service: %[1]s
routes:
  - {name: api, router: edge, backend: payments_api, subsets: [stable, canary], stable: stable, canary: canary}
steps:
  - name: schema
    migrate: {database: payments, dir: %[2]s}
  - name: flags
    consul:
      set:
        %[3]sfeatures/new-ledger: "true"
        %[3]sconfig/version: "2"
  - name: canary-50
    traffic: {route: api, weights: {stable: 50, canary: 50}}
  - name: verify-50
    verify:
      duration: %[4]s
      interval: 1s
      checks:
        - name: healthz
          failureLimit: 5
          http: {endpoint: edge, path: /healthz, maxLatency: 2s}
  - name: canary-100
    traffic: {route: api, weights: {stable: 0, canary: 100}}
  - name: verify-100
    verify:
      duration: 2s
      interval: 1s
      checks:
        - name: healthz
          failureLimit: 5
          http: {endpoint: edge, path: /healthz, maxLatency: 2s}
`, f.service, migrations, f.prefix, verifyFor)
	p := filepath.Join(f.dir, f.service+".yaml")
	require.NoError(f.t, os.WriteFile(p, []byte(y), 0o644))
	return p
}

// deploy starts `rollbook deploy FILE --version v2 --wait` against the private stack.
func (f *durFixture) deploy(runbook string) *asyncCLI {
	f.t.Helper()
	a := &asyncCLI{cmd: exec.Command(cliBin, "deploy", runbook, "--version", "v2", "--wait"), done: make(chan struct{})}
	a.cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+f.d.st.TemporalAddress, "ROLLBOOK_TASK_QUEUE="+durableQueue, "ROLLBOOK_WEB_UI=")
	a.cmd.Stdout, a.cmd.Stderr = &a.out, &a.out
	require.NoError(f.t, a.cmd.Start())
	f.cli = a
	go func() {
		err := a.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			a.code = ee.ExitCode()
		} else if err != nil {
			a.code = -1
		}
		close(a.done)
	}()
	f.t.Cleanup(func() {
		select {
		case <-a.done:
		default:
			_ = a.cmd.Process.Kill()
		}
	})
	return a
}

func (f *durFixture) status() (workflows.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var st workflows.Status
	v, err := f.d.tc.QueryWorkflow(ctx, workflows.WorkflowID(f.service), "", workflows.QueryStatus)
	if err != nil {
		return st, err
	}
	return st, v.Get(&st)
}

// waitFor polls the status query until cond holds.
func (f *durFixture) waitFor(what string, timeout time.Duration, cond func(workflows.Status) bool) workflows.Status {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	var last workflows.Status
	var lastErr error
	for time.Now().Before(deadline) {
		st, err := f.status()
		if err == nil {
			last = st
			if cond(st) {
				return st
			}
		}
		lastErr = err
		if f.cli != nil {
			select {
			case <-f.cli.done:
				f.t.Fatalf("deployment of %s: rollbook deploy ended (exit %d) before it was %s:\n%s", f.service, f.cli.code, what, f.cli.out.String())
			default:
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	f.t.Fatalf("deployment of %s: not %s within %s (phase %q, step %q, waiting for %q, query error %v)", f.service, what, timeout, last.Phase, last.CurrentStep, last.WaitingFor, lastErr)
	return last
}

func (f *durFixture) waitStepRunning(step string) {
	f.t.Helper()
	f.waitFor(step+" running", 60*time.Second, func(st workflows.Status) bool {
		for _, s := range st.Steps {
			if s.Name == step {
				return s.State == workflows.StepRunning
			}
		}
		return false
	})
}

// currentDetails reads the workflow's current details (the Web UI's "User Metadata").
func (f *durFixture) currentDetails() string {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := f.d.tc.QueryWorkflow(ctx, workflows.WorkflowID(f.service), "", "__temporal_workflow_metadata")
	require.NoError(f.t, err)
	var md sdkpb.WorkflowMetadata
	require.NoError(f.t, v.Get(&md))
	return md.GetCurrentDetails()
}

func (f *durFixture) abort(reason string) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(f.t, f.d.tc.SignalWorkflow(ctx, workflows.WorkflowID(f.service), "", workflows.SignalAbort, workflows.AbortSignal{Reason: reason, By: "durability test"}))
}

func (f *durFixture) result(timeout time.Duration) workflows.Result {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var r workflows.Result
	require.NoError(f.t, f.d.tc.GetWorkflow(ctx, workflows.WorkflowID(f.service), "").Get(ctx, &r))
	return r
}

// assertCompensations wants every compensation run to completion by the workflow — done or
// already restored — and none skipped, stuck or left pending.
func assertCompensations(t *testing.T, comps []workflows.Compensation, want ...string) map[string]workflows.Compensation {
	t.Helper()
	byStep := map[string]workflows.Compensation{}
	for _, c := range comps {
		byStep[c.Step] = c
		assert.Contains(t, []workflows.CompState{workflows.CompDone, workflows.CompAlreadyRestored}, c.State, "compensation of %s: %s (%s %s)", c.Step, c.State, c.Detail, c.Error)
	}
	for _, s := range want {
		assert.Contains(t, byStep, s, "no compensation for step %s", s)
	}
	return byStep
}

// history returns the deployment's events.
func (f *durFixture) history(runID string) []eventView {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	it := f.d.tc.GetWorkflowHistory(ctx, workflows.WorkflowID(f.service), runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var evs []eventView
	scheduled := map[int64]string{}
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(f.t, err)
		v := eventView{typ: e.GetEventType()}
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
			scheduled[e.GetEventId()] = a.GetActivityType().GetName()
			v.activity = a.GetActivityType().GetName()
		}
		if a := e.GetActivityTaskStartedEventAttributes(); a != nil {
			v.activity, v.attempt = scheduled[a.GetScheduledEventId()], a.GetAttempt()
		}
		evs = append(evs, v)
	}
	return evs
}

type eventView struct {
	typ      enumspb.EventType
	activity string
	attempt  int32
}

// ---- item 2: the Temporal server restarts mid-deployment ----

// The dev server keeps its state in an SQLite file (--db-filename); restarted while the
// deployment verifies, it comes back with the workflow, the worker and the CLI reconnect,
// and the deployment completes: same run, every step once, no workflow task failed.
func (d *durable) testTemporalRestart(t *testing.T) {
	f := d.fixture(t, "durable-temporal")
	cli := f.deploy(f.runbook("migrations", 6*time.Second))
	f.waitStepRunning("verify-50")
	desc, err := d.tc.DescribeWorkflowExecution(context.Background(), workflows.WorkflowID(f.service), "")
	require.NoError(t, err)
	runID := desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()

	begin := time.Now()
	require.NoError(t, d.st.Restart(context.Background(), devstack.ComponentTemporal))
	t.Logf("Temporal server restarted in %v while verify-50 ran", time.Since(begin).Round(time.Millisecond))

	out, code := cli.wait(t, 2*time.Minute)
	require.Equal(t, 0, code, "rollbook deploy --wait across the restart:\n%s", out)
	r := f.result(30 * time.Second)
	require.Equal(t, workflows.OutcomeSucceeded, r.Outcome, "reason: %s", r.Reason)
	desc, err = d.tc.DescribeWorkflowExecution(context.Background(), workflows.WorkflowID(f.service), "")
	require.NoError(t, err)
	assert.Equal(t, runID, desc.GetWorkflowExecutionInfo().GetExecution().GetRunId(), "the same run completed (the server kept it)")

	// The real state is the deployed one.
	assert.Equal(t, map[string]int{"stable": 0, "canary": 100}, f.weights())
	v, ok := f.kv("config/version")
	assert.True(t, ok && v == "2", "config/version = %q (exists %v)", v, ok)
	v, ok = f.kv("features/new-ledger")
	assert.True(t, ok && v == "true", "features/new-ledger = %q (exists %v)", v, ok)
	assert.EqualValues(t, 1, f.schemaVersion())

	// Nothing ran twice and no workflow task failed on replay after the restart.
	counts := map[string]int{}
	for _, e := range f.history(runID) {
		assert.NotEqual(t, enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED, e.typ, "a workflow task failed")
		if e.typ == enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED {
			counts[e.activity]++
		}
	}
	assert.Equal(t, 1, counts["MigrateUp"], "activities scheduled: %v", counts)
	assert.Equal(t, 1, counts["ApplyKV"], "activities scheduled: %v", counts)
	assert.Equal(t, 2, counts["SetWeights"], "activities scheduled: %v", counts)
	assert.Zero(t, counts["RestoreWeights"]+counts["RestoreKV"]+counts["MigrateDown"], "no compensation ran: %v", counts)
}

// ---- item 4: PostgreSQL restarts in the middle of a migration ----

// The second of three migration files sleeps; PostgreSQL is restarted (a fast shutdown,
// which aborts the transaction) while it runs. goose runs each file in its own transaction,
// so the schema is left at version 1 exactly, and the retried MigrateUp applies 2 and 3
// once each: the deployment goes on and succeeds.
func (d *durable) testPostgresRestart(t *testing.T) {
	f := d.fixture(t, "durable-postgres")
	f.writeMigrations("slow", map[string]string{
		"00001_create.sql": "-- +goose Up\nCREATE TABLE durable_a (id int);\n-- +goose Down\nDROP TABLE durable_a;\n",
		"00002_slow.sql": "-- +goose Up\nALTER TABLE durable_a ADD COLUMN b int;\nSELECT pg_sleep(3);\n" +
			"-- +goose Down\nALTER TABLE durable_a DROP COLUMN b;\n",
		"00003_more.sql": "-- +goose Up\nCREATE TABLE durable_c (id int);\n-- +goose Down\nDROP TABLE durable_c;\n",
	})
	cli := f.deploy(f.runbook("slow", 2*time.Second))

	// Wait until migration 2 sleeps inside its transaction (column b added, not committed).
	db := f.db()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		require.NoError(t, db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(3)%' AND pid <> pg_backend_pid()`).Scan(&n))
		if n > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "migration 2 never started")
		time.Sleep(50 * time.Millisecond)
	}
	begin := time.Now()
	require.NoError(t, d.st.Restart(context.Background(), devstack.ComponentPostgres))
	t.Logf("PostgreSQL restarted in %v while migration 2 ran", time.Since(begin).Round(time.Millisecond))

	// Right after the restart (the retry's own migration 2 sleeps 3 s before it commits):
	// file 1 committed, file 2 rolled back as a whole.
	assert.EqualValues(t, 1, f.schemaVersion(), "schema version right after the restart")
	assert.False(t, f.exists(`SELECT count(*) > 0 FROM information_schema.columns WHERE table_name = 'durable_a' AND column_name = 'b'`),
		"column b of the interrupted migration 2 survived the rollback of its transaction")

	out, code := cli.wait(t, 2*time.Minute)
	require.Equal(t, 0, code, "a database restart is retried, not a reason to roll back:\n%s", out)
	r := f.result(30 * time.Second)
	require.Equal(t, workflows.OutcomeSucceeded, r.Outcome)

	assert.EqualValues(t, 3, f.schemaVersion())
	assert.True(t, f.exists(`SELECT count(*) = 1 FROM information_schema.columns WHERE table_name = 'durable_a' AND column_name = 'b'`))
	assert.True(t, f.exists(`SELECT to_regclass('public.durable_c') IS NOT NULL`))
	assert.True(t, f.exists(`SELECT count(*) = 3 AND count(DISTINCT version_id) = 3 FROM goose_db_version WHERE version_id > 0 AND is_applied`),
		"each migration recorded exactly once")

	var attempt int32
	for _, e := range f.history("") {
		if e.typ == enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED && e.activity == "MigrateUp" {
			attempt = e.attempt
		}
	}
	assert.GreaterOrEqual(t, attempt, int32(2), "MigrateUp was not interrupted and retried: the restart missed the migration")
}

// ---- item 5: HAProxy restarts during a deployment ----

// HAProxy keeps runtime weights in the process. (a) Restarted without saving them, it comes
// back at the configuration's weights (stable 256, canary 0): the rollback's traffic
// compensation finds neither the captured weights (100/0) nor ours (50/50) and must not
// "restore" over that — it stops in rollback-stuck with a RollbookMismatch saying the router
// was probably restarted, and writes nothing. An operator puts the lost weights back and
// sends retry: the rollback completes. (b) Restarted after saving `show servers state` to the
// server-state-file (the stack's config and docs recommend it), the weights survive and
// the rollback completes by itself.
func (d *durable) testHAProxyRestart(t *testing.T) {
	t.Run("StateLost", func(t *testing.T) {
		f := d.fixture(t, "durable-haproxy-lost")
		// No saved state from an earlier restart (a stale file would bring back stale weights).
		require.NoError(t, os.WriteFile(d.st.HAProxyStateFile(), []byte("1\n"), 0o644))
		cli := f.deploy(f.runbook("migrations", 60*time.Second))
		f.waitStepRunning("verify-50")
		require.Equal(t, map[string]int{"stable": 50, "canary": 50}, f.weights())

		require.NoError(t, d.st.StopComponent(devstack.ComponentHAProxy))
		require.NoError(t, d.st.StartComponent(context.Background(), devstack.ComponentHAProxy))
		require.Equal(t, map[string]int{"stable": 256, "canary": 0}, f.weights(), "a restart without the state file loses the runtime weights")

		f.abort("HAProxy restarted")
		st := f.waitFor("rollback-stuck", 30*time.Second, func(st workflows.Status) bool { return st.Phase == workflows.PhaseRollbackStuck })
		assert.Contains(t, st.Reason, "compensation of canary-50 is stuck")
		assert.Contains(t, st.Reason, "back at the configured initial weights")
		assert.Contains(t, st.Reason, "restarted or reloaded")
		var comp workflows.Compensation
		for _, c := range st.Compensations {
			if c.Step == "canary-50" {
				comp = c
			}
			if c.Step == "flags" || c.Step == "schema" {
				assert.Equal(t, workflows.CompPending, c.State, "%s was compensated while traffic was stuck", c.Step)
			}
		}
		assert.Equal(t, workflows.CompStuck, comp.State)
		assert.Contains(t, comp.Error, activities.ErrMismatch)
		assert.Contains(t, st.WaitingFor, "retry or skip the compensation of step canary-50")
		time.Sleep(500 * time.Millisecond)
		assert.Equal(t, map[string]int{"stable": 256, "canary": 0}, f.weights(), "the compensation wrote over the restarted router's weights")

		// The operator puts back what HAProxy lost, and retries.
		f.haproxy(fmt.Sprintf("set server %[1]s/stable weight 50; set server %[1]s/canary weight 50", devstack.Backend))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, d.tc.SignalWorkflow(ctx, workflows.WorkflowID(f.service), "", workflows.SignalRetry, workflows.OperatorSignal{By: "durability test"}))
		out, code := cli.wait(t, time.Minute)
		require.Equal(t, 3, code, "aborted and rolled back after the retry:\n%s", out)
		r := f.result(10 * time.Second)
		assert.Equal(t, workflows.OutcomeAborted, r.Outcome)
		byStep := assertCompensations(t, r.Compensations, "canary-50", "flags", "schema")
		assert.Equal(t, workflows.CompDone, byStep["canary-50"].State)
		assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, f.weights())
		assertFixtureRestored(f)
	})

	// The deployment goes on after the restart: the next traffic step's
	// capture finds 256/0 where canary-50 left 50/50, writes nothing and
	// fails the deployment; the rollback then stops at the same mismatch.
	t.Run("StateLostForward", func(t *testing.T) {
		f := d.fixture(t, "durable-haproxy-fwd")
		require.NoError(t, os.WriteFile(d.st.HAProxyStateFile(), []byte("1\n"), 0o644))
		cli := f.deploy(f.runbook("migrations", 8*time.Second))
		f.waitStepRunning("verify-50")
		require.NoError(t, d.st.StopComponent(devstack.ComponentHAProxy))
		require.NoError(t, d.st.StartComponent(context.Background(), devstack.ComponentHAProxy))
		require.Equal(t, map[string]int{"stable": 256, "canary": 0}, f.weights())

		st := f.waitFor("rollback-stuck", time.Minute, func(st workflows.Status) bool { return st.Phase == workflows.PhaseRollbackStuck })
		assert.Contains(t, st.Reason, "compensation of canary-50 is stuck")
		var step workflows.StepStatus
		for _, s := range st.Steps {
			if s.Name == "canary-100" {
				step = s
			}
		}
		assert.Equal(t, workflows.StepFailed, step.State, "canary-100")
		assert.Contains(t, step.Detail, "route api is at canary=0% stable=100%, but step canary-50 left it at canary=50% stable=50%")
		assert.Equal(t, map[string]int{"stable": 256, "canary": 0}, f.weights(), "nothing was written over the restarted router")

		f.haproxy(fmt.Sprintf("set server %[1]s/stable weight 50; set server %[1]s/canary weight 50", devstack.Backend))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, d.tc.SignalWorkflow(ctx, workflows.WorkflowID(f.service), "", workflows.SignalRetry, workflows.OperatorSignal{By: "durability test"}))
		out, code := cli.wait(t, time.Minute)
		require.Equal(t, 2, code, "rolled back after the retry:\n%s", out)
		r := f.result(10 * time.Second)
		assert.Equal(t, "canary-100", r.FailedStep)
		byStep := assertCompensations(t, r.Compensations, "canary-50", "flags", "schema")
		assert.Equal(t, workflows.CompDone, byStep["canary-50"].State)
		assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, f.weights())
		assertFixtureRestored(f)
	})

	t.Run("StateSaved", func(t *testing.T) {
		f := d.fixture(t, "durable-haproxy-saved")
		cli := f.deploy(f.runbook("migrations", 60*time.Second))
		f.waitStepRunning("verify-50")
		require.Equal(t, map[string]int{"stable": 50, "canary": 50}, f.weights())

		// Restart saves `show servers state` to the server-state-file first.
		require.NoError(t, d.st.Restart(context.Background(), devstack.ComponentHAProxy))
		state, err := os.ReadFile(d.st.HAProxyStateFile())
		require.NoError(t, err)
		require.Contains(t, string(state), devstack.Backend)
		require.Equal(t, map[string]int{"stable": 50, "canary": 50}, f.weights(), "the saved state brings the runtime weights back")

		f.abort("HAProxy restarted with its state")
		out, code := cli.wait(t, time.Minute)
		require.Equal(t, 3, code, out)
		r := f.result(10 * time.Second)
		assert.Equal(t, workflows.OutcomeAborted, r.Outcome)
		byStep := assertCompensations(t, r.Compensations, "canary-50", "flags", "schema")
		assert.Equal(t, workflows.CompDone, byStep["canary-50"].State)
		assert.Equal(t, 1, byStep["canary-50"].Attempts)
		assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, f.weights())
		assertFixtureRestored(f)
	})
}

// assertFixtureRestored checks the fixture's starting point: config/version "1", no
// features/new-ledger, schema version 0.
func assertFixtureRestored(f *durFixture) {
	f.t.Helper()
	v, ok := f.kv("config/version")
	assert.True(f.t, ok && v == "1", "config/version = %q (exists %v), want the captured \"1\"", v, ok)
	_, ok = f.kv("features/new-ledger")
	assert.False(f.t, ok, "features/new-ledger did not exist before and must be deleted")
	assert.EqualValues(f.t, 0, f.schemaVersion())
}

// ---- item 3: Consul is down for 30 s during the rollback ----

// Consul stops right before an abort, so the rollback's KV compensation finds it down. For
// 30 s the rollback keeps retrying with backoff: the phase stays rolling-back (not stuck,
// nothing skipped), and the status query and the current details say it is waiting on the
// compensation of the Consul step and why. Consul comes back with its data (a server with a
// data directory, not a -dev agent) and the rollback completes: every key restored or
// deleted, the schema migrated down.
func (d *durable) testConsulDown(t *testing.T) {
	f := d.fixture(t, "durable-consul")
	cli := f.deploy(f.runbook("migrations", 90*time.Second))
	f.waitStepRunning("verify-50")

	require.NoError(t, d.st.StopComponent(devstack.ComponentConsul))
	down := time.Now()
	f.abort("Consul outage drill")

	// The abort is handled in the next workflow task; from then on, for the whole outage,
	// the deployment must stay rolling-back.
	f.waitFor("rolling-back", 10*time.Second, func(st workflows.Status) bool { return st.Phase == workflows.PhaseRollingBack })
	const outage = 30 * time.Second
	var st workflows.Status
	for time.Since(down) < outage {
		var err error
		st, err = f.status()
		require.NoError(t, err)
		require.Equal(t, workflows.PhaseRollingBack, st.Phase, "while Consul is down (after %v): %s", time.Since(down).Round(time.Second), st.Reason)
		for _, c := range st.Compensations {
			require.NotEqual(t, workflows.CompSkipped, c.State, c.Step)
			if c.Step == "schema" {
				require.Equal(t, workflows.CompPending, c.State, "the schema was migrated down before the flags were restored")
			}
		}
		time.Sleep(time.Second)
	}
	// Traffic, the first compensation, did not need Consul.
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, f.weights())
	var flags workflows.Compensation
	for _, c := range st.Compensations {
		if c.Step == "flags" {
			flags = c
		}
	}
	t.Logf("after %v of outage: flags compensation %s, attempt %d: %s / %s; waiting for: %s", outage, flags.State, flags.Attempts, flags.Detail, flags.Error, st.WaitingFor)
	assert.Equal(t, workflows.CompRunning, flags.State)
	assert.GreaterOrEqual(t, flags.Attempts, 3, "retried with backoff")
	assert.Contains(t, flags.Error, "Consul keys")
	assert.Contains(t, flags.Detail, "retrying in")
	assert.Contains(t, st.WaitingFor, "the compensation of step flags")
	assert.Contains(t, st.WaitingFor, "Consul keys")
	details := f.currentDetails()
	assert.Contains(t, details, "phase **rolling-back**")
	assert.Contains(t, details, "Waiting for the compensation of step flags")
	assert.Contains(t, details, "Consul keys")

	require.NoError(t, d.st.StartComponent(context.Background(), devstack.ComponentConsul))
	t.Logf("Consul back after %v", time.Since(down).Round(time.Millisecond))
	// Consul kept what the deployment wrote: the compensation has something to restore.
	v, _ := f.kv("config/version")
	assert.Equal(t, "2", v, "Consul lost its data across the restart")

	out, code := cli.wait(t, time.Minute)
	require.Equal(t, 3, code, out)
	r := f.result(10 * time.Second)
	assert.Equal(t, workflows.OutcomeAborted, r.Outcome)
	byStep := assertCompensations(t, r.Compensations, "canary-50", "flags", "schema")
	assert.Equal(t, workflows.CompDone, byStep["flags"].State, "the keys were restored by the compensation: %s", byStep["flags"].Detail)
	assert.Equal(t, workflows.CompDone, byStep["schema"].State)
	assert.Contains(t, byStep["flags"].Detail, "restored 1 keys")
	assert.Contains(t, byStep["flags"].Detail, "deleted 1 keys")
	t.Logf("rollback completed %v after Consul went down; flags compensation took %d attempts", time.Since(down).Round(time.Second), byStep["flags"].Attempts)
	assertFixtureRestored(f)
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, f.weights())
	assert.False(t, bytes.Contains([]byte(out), []byte("skipped")), "the CLI reports a skipped compensation:\n%s", out)
}
