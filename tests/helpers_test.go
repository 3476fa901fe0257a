package tests

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.uber.org/zap"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/internal/loadgen"
	"github.com/rollbook/rollbook/internal/router/haproxy"
	"github.com/rollbook/rollbook/internal/worker"
	"github.com/rollbook/rollbook/workflows"
)

// fixture is one test's slice of the shared stack: its own service name,
// Consul prefix and runbook folder, with HAProxy, the demo API and the
// database reset to a known state first.
type fixture struct {
	t       *testing.T
	service string
	prefix  string
	dir     string
}

func newFixture(t *testing.T, service string) *fixture {
	t.Helper()
	f := &fixture{t: t, service: service, prefix: "rollbook-e2e/" + service + "/", dir: t.TempDir()}
	_, err := stack.HAProxyCommand(fmt.Sprintf("set server %s/stable weight 100; set server %s/canary weight 0", devstack.Backend, devstack.Backend))
	require.NoError(t, err)
	_, err = stack.HAProxyCommand(fmt.Sprintf("set server %s/stable state ready; set server %s/canary state ready", devstack.Backend, devstack.Backend))
	require.NoError(t, err)
	setCanaryBad(t, 0)
	waitServersUp(t)
	_, err = consul.KV().DeleteTree(f.prefix, nil)
	require.NoError(t, err)
	db := openDB(t)
	_, err = db.Exec(`DROP SCHEMA public CASCADE; CREATE SCHEMA public`)
	require.NoError(t, err)
	// The platform's tables at version 0, which the migrations build on.
	require.NoError(t, devstack.EnsureDemoSchema(context.Background(), stack.PGDSN))
	f.copyMigrations("migrations", nil)
	t.Cleanup(f.endDeployment)
	return f
}

// endDeployment makes sure no deployment of the test's service outlives the
// test. A test that fails half-way (its CLI is killed) would otherwise leave
// a deployment verifying for a minute, whose rollback would then move the
// weights, delete the keys and migrate down the schema of the tests that
// follow, and compete with them for goose's lock. It aborts the deployment,
// so that its own rollback runs, and terminates it if that does not end in
// 30 s (a stuck rollback waits for an operator).
func (f *fixture) endDeployment() {
	id := workflows.WorkflowID(f.service)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	d, err := tclient.DescribeWorkflowExecution(ctx, id, "")
	if err != nil || d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return // never started, or ended
	}
	f.t.Logf("the deployment of %s is still running after the test: aborting it", f.service)
	if err := tclient.SignalWorkflow(ctx, id, "", workflows.SignalAbort, workflows.AbortSignal{Reason: "test ended", By: "e2e cleanup"}); err != nil {
		f.t.Logf("aborting %s: %v", id, err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := tclient.GetWorkflow(wctx, id, "").Get(wctx, nil); err != nil && wctx.Err() != nil {
		f.t.Logf("%s did not end within 30 s of the abort: terminating it", id)
		if err := tclient.TerminateWorkflow(ctx, id, "", "e2e cleanup: still running after its test ended"); err != nil {
			f.t.Logf("terminating %s: %v", id, err)
		}
	}
}

// copyMigrations copies the example migrations into dir/name, replacing
// the files named in override with the given content.
func (f *fixture) copyMigrations(name string, override map[string]string) {
	src := filepath.Join(repoRoot, "runbooks", "payments-api", "migrations")
	entries, err := os.ReadDir(src)
	require.NoError(f.t, err)
	dst := filepath.Join(f.dir, name)
	require.NoError(f.t, os.MkdirAll(dst, 0o755))
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		require.NoError(f.t, err)
		if c, ok := override[e.Name()]; ok {
			b = []byte(c)
		}
		require.NoError(f.t, os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644))
	}
}

// runbookOpts shape the e2e runbook.
type runbookOpts struct {
	migrations   string        // folder; default "migrations"
	verifyFor    time.Duration // verify-50 duration
	maxErrorRate float64
	// approval adds a pause step waiting for approval before canary-100.
	approval bool
	// irreversibleFlags makes the flags step the point of no return.
	irreversibleFlags bool
}

func (f *fixture) runbook(o runbookOpts) string {
	if o.migrations == "" {
		o.migrations = "migrations"
	}
	if o.verifyFor == 0 {
		o.verifyFor = 4 * time.Second
	}
	if o.maxErrorRate == 0 {
		o.maxErrorRate = 0.05
	}
	irreversible, approval := "", ""
	if o.irreversibleFlags {
		irreversible = "\n    irreversible: true"
	}
	if o.approval {
		approval = "\n  - name: approve-100\n    pause: {approval: true}"
	}
	y := fmt.Sprintf(`apiVersion: rollbook/v1
service: %[1]s
routes:
  - {name: api, router: edge, backend: payments_api, subsets: [stable, canary], stable: stable, canary: canary}
steps:
  - name: expand-schema
    migrate: {database: payments, dir: %[2]s}
  - name: flags%[6]s
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
        - name: canary-errors
          router: {route: api, subset: canary, maxErrorRate: %[5]g, minRequests: 3}
        - name: healthz
          http: {endpoint: edge, path: /healthz, maxLatency: 1s}%[7]s
  - name: canary-100
    traffic: {route: api, weights: {stable: 0, canary: 100}}
  - name: verify-100
    verify:
      duration: 2s
      interval: 1s
      checks:
        - name: api
          http: {endpoint: edge, path: /api/payments}
`, f.service, o.migrations, f.prefix, o.verifyFor, o.maxErrorRate, irreversible, approval)
	p := filepath.Join(f.dir, f.service+".yaml")
	require.NoError(f.t, os.WriteFile(p, []byte(y), 0o644))
	return p
}

// cli runs the rollbook binary and returns its output and exit code.
func cli(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(cliBin, args...)
	out, err := cmd.CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running rollbook %v: %v", args, err)
	}
	t.Logf("rollbook %s → exit %d\n%s", strings.Join(args, " "), code, out)
	return string(out), code
}

// asyncCLI starts the rollbook binary; wait() returns output and exit code.
type asyncCLI struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan struct{}
	code int
}

func startCLI(t *testing.T, args ...string) *asyncCLI {
	t.Helper()
	a := &asyncCLI{cmd: exec.Command(cliBin, args...), done: make(chan struct{})}
	a.cmd.Stdout, a.cmd.Stderr = &a.out, &a.out
	require.NoError(t, a.cmd.Start())
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
	t.Cleanup(func() {
		select {
		case <-a.done:
		default:
			_ = a.cmd.Process.Kill()
		}
	})
	return a
}

func (a *asyncCLI) wait(t *testing.T, timeout time.Duration) (string, int) {
	t.Helper()
	select {
	case <-a.done:
	case <-time.After(timeout):
		_ = a.cmd.Process.Kill()
		t.Fatalf("rollbook %v did not finish within %s; output:\n%s", a.cmd.Args[1:], timeout, a.out.String())
	}
	t.Logf("rollbook %s → exit %d\n%s", strings.Join(a.cmd.Args[1:], " "), a.code, a.out.String())
	return a.out.String(), a.code
}

// status queries the running deployment of service. The timeout is
// generous: the dev server holds a query until the workflow task in flight
// completes, and on a loaded machine that task can take seconds.
func status(service string) (workflows.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var st workflows.Status
	v, err := tclient.QueryWorkflow(ctx, workflows.WorkflowID(service), "", workflows.QueryStatus)
	if err != nil {
		return st, err
	}
	return st, v.Get(&st)
}

// waitPhase polls the status query until the deployment is in phase.
func waitPhase(t *testing.T, service string, phase workflows.Phase, timeout time.Duration) workflows.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last workflows.Status
	for time.Now().Before(deadline) {
		st, err := status(service)
		if err == nil {
			last = st
			if st.Phase == phase {
				return st
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("deployment of %s did not reach phase %s within %s (last phase %q, step %q)", service, phase, timeout, last.Phase, last.CurrentStep)
	return last
}

// weights reads the live HAProxy weights of the demo backend's servers with
// one "show servers state": two "get weight" commands can straddle a weight
// change and report a pair that never existed (stable still 0, canary
// already 50).
func weights(t *testing.T) map[string]int {
	t.Helper()
	servers := serversState(t, stack)
	out := map[string]int{}
	for _, s := range []string{devstack.StableServer, devstack.CanaryServer} {
		st, ok := servers[s]
		require.True(t, ok, "server %s/%s missing from show servers state", devstack.Backend, s)
		out[s] = st[0]
	}
	return out
}

func openDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", stack.PGDSN)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// schemaVersion reads goose's version table directly (0 when absent).
func schemaVersion(t *testing.T) int64 {
	t.Helper()
	db := openDB(t)
	var exists bool
	require.NoError(t, db.QueryRow(`SELECT to_regclass('public.goose_db_version') IS NOT NULL`).Scan(&exists))
	if !exists {
		return 0
	}
	var v sql.NullInt64
	require.NoError(t, db.QueryRow(`SELECT max(version_id) FROM goose_db_version WHERE is_applied`).Scan(&v))
	return v.Int64
}

func tableExists(t *testing.T, name string) bool {
	t.Helper()
	var exists bool
	require.NoError(t, openDB(t).QueryRow(`SELECT to_regclass($1) IS NOT NULL`, "public."+name).Scan(&exists))
	return exists
}

func columnExists(t *testing.T, table, column string) bool {
	t.Helper()
	var n int
	require.NoError(t, openDB(t).QueryRow(`SELECT count(*) FROM information_schema.columns WHERE table_name=$1 AND column_name=$2`, table, column).Scan(&n))
	return n == 1
}

// kv reads a key: its value and whether it exists.
func kv(t *testing.T, key string) (string, bool) {
	t.Helper()
	p, _, err := consul.KV().Get(key, nil)
	require.NoError(t, err)
	if p == nil {
		return "", false
	}
	return string(p.Value), true
}

func putKV(t *testing.T, key, value string) {
	t.Helper()
	_, err := consul.KV().Put(&consulapi.KVPair{Key: key, Value: []byte(value)}, nil)
	require.NoError(t, err)
}

// setCanaryBad makes the canary demo API fail that share of requests
// (0 turns it good again).
func setCanaryBad(t *testing.T, errorRate float64) {
	t.Helper()
	u := stack.DemoCanaryURL + "/admin/good"
	if errorRate > 0 {
		u = fmt.Sprintf("%s/admin/bad?errorRate=%g", stack.DemoCanaryURL, errorRate)
	}
	resp, err := http.Post(u, "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Less(t, resp.StatusCode, 300, "demo admin %s", u)
}

// load sends steady GET traffic through HAProxy until stopped, counting
// client-visible failures (internal/loadgen, as the demo and the benchmark).
type load struct{ *loadgen.Load }

func startLoad(t *testing.T, rps int) *load {
	t.Helper()
	l := &load{loadgen.Start(stack.HAProxyURL+"/api/payments", rps, false)}
	t.Cleanup(l.Stop)
	return l
}

// Stop ends the load; stopping twice is safe.
func (l *load) Stop() { l.Load.Stop() }

// waitServersUp waits until HAProxy has both servers UP. A test that made
// the canary fail leaves it marked DOWN by HAProxy's observe layer7 (or by
// its health check) until two good checks bring it back; the next test's
// router checks would rightly fail on a DOWN canary.
func waitServersUp(t *testing.T) {
	t.Helper()
	rt, err := haproxy.New(stack.HAProxySocket)
	require.NoError(t, err)
	var last string
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		servers, err := rt.Servers(context.Background(), devstack.Backend)
		require.NoError(t, err)
		if servers["stable"].Op == 2 && servers["canary"].Op == 2 {
			return
		}
		last = fmt.Sprintf("stable %+v, canary %+v", servers["stable"], servers["canary"])
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("HAProxy did not bring both servers UP within 15 s: %s", last)
}

// startInProcessWorker runs, in this process and until the test ends, a worker
// with examples/dev-worker.yaml on its own task queue and without a
// metrics listener (the file's fixed port may be another worker's); adjust,
// when given, changes the configuration first.
func startInProcessWorker(t *testing.T, taskQueue string, adjust func(*worker.Config)) *worker.Running {
	t.Helper()
	cfg, err := worker.LoadConfig(filepath.Join(repoRoot, "examples", "dev-worker.yaml"))
	require.NoError(t, err)
	cfg.TaskQueue = taskQueue
	cfg.Metrics.Listen = ""
	if adjust != nil {
		adjust(cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w, err := worker.Start(ctx, cfg, zap.NewNop(), worker.Options{})
	require.NoError(t, err)
	t.Cleanup(w.Stop)
	return w
}
