// Command demo is `make demo`: on the dev stack (make stack-up) it starts a
// rollbook worker, sends mixed client load through HAProxy (reads, payments
// created with an Idempotency-Key, a few without), runs a good deployment of
// runbooks/payments-api.yaml (succeeds) and a bad one (the canary starts
// failing reads and writes, some writes after committing → verification
// fails → automatic rollback, migrations included), and prints what
// happened: outcomes, time from failure to traffic restored, schema / keys /
// weights before and after, client errors by kind, every acknowledged write
// looked for in the database (live or in the rollback's archive), what the
// rollback preserved, and the Web UI links. The stack keeps running for
// inspection.
package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	_ "github.com/jackc/pgx/v5/stdlib"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/rollbook/rollbook/internal/cli"
	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/internal/haproxywatch"
	"github.com/rollbook/rollbook/internal/loadgen"
	"github.com/rollbook/rollbook/internal/worker"
	"github.com/rollbook/rollbook/internal/writecheck"
	"github.com/rollbook/rollbook/internal/zapadapter"
	"github.com/rollbook/rollbook/workflows"
)

const (
	service   = "payments-api"
	keyPrefix = "rollbook-demo/payments-api/"
)

func main() {
	envFile := flag.String("env", ".stack/env", "env file written by `make stack-up`")
	rb := flag.String("runbook", "runbooks/payments-api.yaml", "runbook to deploy")
	rps := flag.Int("rps", 100, "client requests per second through HAProxy")
	flag.Parse()
	if err := run(*envFile, *rb, *rps); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type demo struct {
	stack *devstack.Stack
	tc    client.Client
	kv    *consulapi.Client
	db    *sql.DB
	obs   *haproxywatch.Observer
	rps   int
}

func run(envFile, runbookPath string, rps int) error {
	st, err := devstack.Attach(envFile)
	if err != nil {
		return fmt.Errorf("no dev stack at %s (run `make stack-up` first): %w", envFile, err)
	}
	for k, v := range st.Env() {
		os.Setenv(k, v)
	}
	d := &demo{stack: st, rps: rps}
	d.tc, err = client.Dial(client.Options{HostPort: st.TemporalAddress, Namespace: devstack.Namespace, Logger: zapadapter.New(zap.NewNop())})
	if err != nil {
		return err
	}
	defer d.tc.Close()
	if d.kv, err = consulapi.NewClient(consulapi.DefaultConfig()); err != nil {
		return err
	}
	if d.db, err = sql.Open("pgx", st.PGDSN); err != nil {
		return err
	}
	defer d.db.Close()

	stopWorker, err := d.startWorker()
	if err != nil {
		return fmt.Errorf("starting the worker: %w", err)
	}
	defer stopWorker()

	if err := d.reset(); err != nil {
		return fmt.Errorf("resetting the demo state: %w", err)
	}
	if d.obs, err = haproxywatch.Start(st.HAProxySocket, devstack.Backend, 5*time.Millisecond); err != nil {
		return err
	}
	defer d.obs.Stop()

	fmt.Printf("== rollbook demo: %d requests/s through HAProxy at %s (reads, writes with an Idempotency-Key, a few without) ==\n\n", rps, st.HAProxyURL)

	// 1. A good release.
	goodBefore := d.snapshot()
	fmt.Println("-- deployment 1: payments-api v2 (healthy canary) --")
	load := d.startLoad()
	goodCode, goodOut := d.deploy(runbookPath, "v2")
	good := load.Stop()
	goodAfter := d.snapshot()
	goodWrites, err := writecheck.Check(context.Background(), st.PGDSN, good.Acks)
	if err != nil {
		return err
	}

	// Back to the starting point (an empty schema at version 0), so the second deployment
	// shows a full rollback of schema, keys and weights. The writes of deployment 1 were
	// checked just above; the reset empties the tables.
	if err := d.reset(); err != nil {
		return fmt.Errorf("resetting between deployments: %w", err)
	}

	// 2. A bad release: the canary starts failing once it takes traffic.
	badBefore := d.snapshot()
	fmt.Println("\n-- deployment 2: payments-api v3 (the canary starts returning errors) --")
	badCh := make(chan time.Time, 1)
	load = d.startLoad()
	go func() {
		for d.obs.Current().Canary == 0 {
			time.Sleep(2 * time.Millisecond)
		}
		// v2 code on the canary writes its way (external_reference, ledger entries) for a
		// moment, then fails half its requests; failing writes fail before or after their
		// commit, alternately.
		time.Sleep(time.Second)
		setBad(st.DemoCanaryURL, 0.5)
		at := time.Now()
		fmt.Printf("   %s   demo: canary v3 now fails 50%% of requests (writes before and after committing)\n", at.Format("15:04:05"))
		badCh <- at
	}()
	badCode, badOut := d.deploy(runbookPath, "v3")
	bad := load.Stop()
	badAfter := d.snapshot()
	setBad(st.DemoCanaryURL, 0)
	badWrites, err := writecheck.Check(context.Background(), st.PGDSN, bad.Acks)
	if err != nil {
		return err
	}
	var badAt, restoredAt time.Time
	select {
	case badAt = <-badCh:
	default: // the canary never took traffic
	}
	if !badAt.IsZero() {
		restoredAt = d.obs.FirstAfter(badAt, func(w haproxywatch.Weights) bool { return w.Canary == 0 })
	}

	fmt.Println("\n== report ==")
	fmt.Printf("deployment 1 (v2): exit %d, outcome %s\n", goodCode, outcome(goodOut))
	fmt.Printf("deployment 2 (v3): exit %d, outcome %s\n", badCode, outcome(badOut))
	if !badAt.IsZero() && !restoredAt.IsZero() {
		fmt.Printf("failure started → traffic back on stable: %s (observer polling HAProxy every 5 ms)\n", restoredAt.Sub(badAt).Round(time.Millisecond))
	}
	fmt.Printf("\n%-34s %-28s %-28s %-28s\n", "", "before", "after v2 (succeeded)", "after v3 (rolled back)")
	fmt.Printf("%-34s %-28s %-28s %-28s\n", "schema version (payments)", goodBefore.schema, goodAfter.schema, badAfter.schema)
	fmt.Printf("%-34s %-28s %-28s %-28s\n", "HAProxy weights stable/canary", goodBefore.weights, goodAfter.weights, badAfter.weights)
	for _, k := range unionKeys(goodBefore.keys, goodAfter.keys, badAfter.keys) {
		fmt.Printf("%-34s %-28s %-28s %-28s\n", strings.TrimPrefix(k, keyPrefix), val(goodBefore.keys, k), val(goodAfter.keys, k), val(badAfter.keys, k))
	}
	diffs := badBefore.diff(badAfter)
	fmt.Printf("\ndifferences after the rollback: %d", len(diffs))
	if len(diffs) > 0 {
		fmt.Printf(" (%s)", strings.Join(diffs, "; "))
	}
	fmt.Println()
	for _, p := range []struct {
		name string
		rep  loadgen.MixedReport
		wr   writecheck.Result
	}{{"deployment 1", good, goodWrites}, {"deployment 2", bad, badWrites}} {
		c := p.rep.Counts
		fmt.Printf("%s: %s\n", p.name, p.wr)
		fmt.Printf("  client errors: reads %d of %d, keyed writes %d of %d, writes without a key %d of %d\n",
			c.Reads.Errors, c.Reads.Sent, c.Keyed.Errors, c.Keyed.Sent, c.Unkeyed.Errors, c.Unkeyed.Sent)
		for _, s := range append(p.wr.LostSamples, p.wr.DuplicateSamples...) {
			fmt.Println("  ✗ " + s)
		}
	}
	fmt.Printf("both deployments: acknowledged writes: %d, lost: %d, duplicated: %d\n",
		goodWrites.Acknowledged+badWrites.Acknowledged, goodWrites.Lost+badWrites.Lost, goodWrites.Duplicated+badWrites.Duplicated)
	fmt.Println("\nwhat the rollback of deployment 2 preserved (rollbook_archive.archives):")
	if len(badWrites.Archives) == 0 {
		fmt.Println("  nothing archived")
	}
	for _, a := range badWrites.Archives {
		fmt.Println("  " + a.String())
	}
	fmt.Printf("  %d acknowledged writes of deployment 2 were found only with the archive\n", badWrites.FoundInArchive)
	fmt.Println("\nWeb UI:")
	for _, o := range []string{goodOut, badOut} {
		if l := webLink(o); l != "" {
			fmt.Println("  " + l)
		}
	}
	fmt.Printf("  all deployments: %s/namespaces/default/workflows?query=RollbookService%%3D%%22%s%%22\n", st.WebUI, service)
	fmt.Println("\nThe stack keeps running for inspection; stop it with `make stack-down`.")
	if goodCode != 0 || badCode != 2 || len(diffs) > 0 {
		return fmt.Errorf("unexpected result: exit codes %d and %d (want 0 and 2), %d differences after rollback", goodCode, badCode, len(diffs))
	}
	if err := errors.Join(goodWrites.Require(), badWrites.Require()); err != nil {
		return err
	}
	return nil
}

// deploy runs `rollbook deploy --wait` in-process, echoing its output.
func (d *demo) deploy(runbookPath, version string) (int, string) {
	var buf bytes.Buffer
	w := io.MultiWriter(os.Stdout, &buf)
	code := cli.Run(context.Background(), []string{"deploy", runbookPath, "--version", version, "--wait"}, w, w)
	return code, buf.String()
}

func outcome(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "outcome: ") {
			return strings.TrimPrefix(l, "outcome: ")
		}
	}
	return "unknown"
}

func webLink(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "Web UI: ") {
			return strings.TrimPrefix(l, "Web UI: ")
		}
	}
	return ""
}

func (d *demo) startWorker() (func(), error) {
	cfg, err := worker.LoadConfig(filepath.Join("examples", "dev-worker.yaml"))
	if err != nil {
		return nil, err
	}
	acts, err := worker.BuildActivities(cfg)
	if err != nil {
		return nil, err
	}
	w := sdkworker.New(d.tc, cfg.TaskQueue, sdkworker.Options{})
	worker.Register(w, acts)
	if err := w.Start(); err != nil {
		return nil, err
	}
	return w.Stop, nil
}

// startLoad starts the mixed client load through HAProxy.
func (d *demo) startLoad() *loadgen.MixedLoad {
	return loadgen.StartMixed(loadgen.Mix{BaseURL: d.stack.HAProxyURL, Rate: d.rps})
}

// reset puts the demo's slice of the stack in its starting state: the
// payments database at version 0 with empty tables and no archive, the
// flags off, all traffic on stable, the canary healthy.
func (d *demo) reset() error {
	if err := devstack.ResetDemoSchema(context.Background(), d.stack.PGDSN); err != nil {
		return err
	}
	if _, err := d.kv.KV().DeleteTree(keyPrefix, nil); err != nil {
		return err
	}
	if _, err := d.kv.KV().Put(&consulapi.KVPair{Key: keyPrefix + "config/version", Value: []byte("1")}, nil); err != nil {
		return err
	}
	setBad(d.stack.DemoCanaryURL, 0)
	_, err := d.stack.HAProxyCommand("set server payments_api/stable weight 100; set server payments_api/canary weight 0")
	return err
}

type snapshot struct {
	schema  string
	weights string
	keys    map[string]string
}

func (d *demo) snapshot() snapshot {
	s := snapshot{keys: map[string]string{}}
	var v sql.NullInt64
	// No goose table yet means version 0, as goose itself reports it.
	_ = d.db.QueryRow(`SELECT max(version_id) FROM goose_db_version WHERE is_applied`).Scan(&v)
	s.schema = strconv.FormatInt(v.Int64, 10)
	w := d.obs.Current()
	s.weights = fmt.Sprintf("%d / %d", w.Stable, w.Canary)
	pairs, _, err := d.kv.KV().List(keyPrefix, nil)
	if err == nil {
		for _, p := range pairs {
			s.keys[p.Key] = string(p.Value)
		}
	}
	return s
}

func (s snapshot) diff(o snapshot) []string {
	var d []string
	if s.schema != o.schema {
		d = append(d, "schema "+s.schema+" → "+o.schema)
	}
	if s.weights != o.weights {
		d = append(d, "weights "+s.weights+" → "+o.weights)
	}
	for _, k := range unionKeys(s.keys, o.keys) {
		if val(s.keys, k) != val(o.keys, k) {
			d = append(d, fmt.Sprintf("%s %s → %s", k, val(s.keys, k), val(o.keys, k)))
		}
	}
	return d
}

func val(m map[string]string, k string) string {
	if v, ok := m[k]; ok {
		return strconv.Quote(v)
	}
	return "(absent)"
}

func unionKeys(ms ...map[string]string) []string {
	set := map[string]bool{}
	for _, m := range ms {
		for k := range m {
			set[k] = true
		}
	}
	var out []string
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func setBad(canaryURL string, rate float64) {
	u := canaryURL + "/admin/good"
	if rate > 0 {
		u = fmt.Sprintf("%s/admin/bad?errorRate=%g&writeFailure=both", canaryURL, rate)
	}
	if resp, err := http.Post(u, "application/json", nil); err == nil {
		resp.Body.Close()
	}
}

var _ = workflows.WorkflowID
