// Command demo is `make demo`: on the dev stack (make stack-up) it starts a
// rollbook worker, sends mixed client load through HAProxy (reads, payments
// created with an Idempotency-Key, a few without) and runs two deployments of
// the payments-api runbook, one on top of the other, with nothing reset in
// between:
//
//  1. v2 (healthy), runbooks/payments-api.yaml: expand migrations 1-3, flags,
//     v2 released onto the idle canary, 10/50/100 %, promoted (v2 released
//     onto stable, traffic back to stable, the canary idle at v2), contract
//     migration 4: succeeded;
//  2. v3 (bad), with the runbook as v3's pull request has it: the same file
//     plus v3's own migration payments-api/migrations/00005 (the table
//     payment_events; examples/demo/v3-release holds it, and the demo writes
//     the runbook folder with it added to <stack>/demo/v3-runbooks). The
//     versions table of examples/dev-worker.yaml releases v3 with half its
//     reads and writes failing and, for the writes it does acknowledge, a
//     payment_events row each. Its expand step migrates 4 → 5, v3 takes 10 %
//     of the traffic, fails verification and is rolled back: v2 on every
//     server, and the schema back at 4 after the rows of payment_events were
//     copied into rollbook_archive (the step's onRollback: archive).
//
// It prints what happened: outcomes, time from the bad version taking traffic
// to traffic restored, each deployment against the state just before it
// (versions per server, schema version and shape, keys, weights), client
// errors by kind, every acknowledged write looked for in the database (live
// or in a rollback's archive: v3's events are found only there), what the
// rollback preserved with row counts, and the Web UI links. It fails (exit 1)
// unless v2 succeeded, v3 was rolled back, the state after v3 equals the
// state before it with the archive as the only addition, the archive holds
// acknowledged writes of v3, and no acknowledged write was lost or
// duplicated. The stack keeps running; HAProxy answers from v2.
package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	_ "github.com/jackc/pgx/v5/stdlib"
	"go.temporal.io/sdk/client"
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
	overlay := flag.String("v3-files", releaseOverlay, "what v3's pull request adds to the runbook's folder (its own migration), at the paths it has there")
	flag.Parse()
	if err := run(*envFile, *rb, *overlay, *rps); err != nil {
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

func run(envFile, runbookPath, overlay string, rps int) error {
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

	if d.obs, err = haproxywatch.Start(st.HAProxySocket, devstack.Backend, 5*time.Millisecond); err != nil {
		return err
	}
	defer d.obs.Stop()

	fmt.Printf("== rollbook demo: %d requests/s through HAProxy at %s (reads, writes with an Idempotency-Key, a few without) ==\n", rps, st.HAProxyURL)
	fmt.Println("Nothing is reset: each deployment starts from the state the previous one left.")

	// 1. A good release: v2 onto the canary, 10/50/100 %, promoted onto stable, contract.
	goodBefore := d.snapshot()
	fmt.Printf("\n-- deployment 1: payments-api v2 (healthy), starting from %s --\n", goodBefore.versions)
	load := d.startLoad()
	goodCode, goodOut := d.deploy(runbookPath, "v2")
	good := load.Stop()
	goodAfter := d.snapshot()
	goodWrites, err := writecheck.Check(context.Background(), st.PGDSN, good.Acks)
	if err != nil {
		return err
	}

	// 2. A bad release on top of it, with a migration of its own: v3 fails half of its reads
	// and writes from its first request, and records an event for each payment it does create
	// (the versions table of examples/dev-worker.yaml chose both when it was released).
	v3Runbook, err := nextRelease(runbookPath, overlay, filepath.Join(st.Dir, "demo", "v3-runbooks"))
	if err != nil {
		return err
	}
	badBefore := d.snapshot()
	fmt.Printf("\n-- deployment 2: payments-api v3 (bad: fails half its requests; brings migration 00005, payment_events), starting from %s --\n", badBefore.versions)
	fmt.Printf("runbook: %s (%s unchanged, plus %s)\n", v3Runbook, runbookPath, overlayFiles(overlay))
	started := time.Now()
	load = d.startLoad()
	badCode, badOut := d.deploy(v3Runbook, "v3")
	bad := load.Stop()
	badAfter := d.snapshot()
	badWrites, err := writecheck.Check(context.Background(), st.PGDSN, bad.Acks)
	if err != nil {
		return err
	}
	// v3 misbehaves from the moment the canary takes traffic.
	badAt := d.obs.FirstAfter(started, func(w haproxywatch.Weights) bool { return w.Canary > 0 })
	var restoredAt time.Time
	if !badAt.IsZero() {
		restoredAt = d.obs.FirstAfter(badAt, func(w haproxywatch.Weights) bool { return w.Canary == 0 })
	}
	frontend, frontendErr := frontendVersions(st.HAProxyURL, 20)

	fmt.Println("\n== report ==")
	fmt.Printf("deployment 1 (v2): exit %d, outcome %s\n", goodCode, outcome(goodOut))
	fmt.Printf("deployment 2 (v3): exit %d, outcome %s\n", badCode, outcome(badOut))
	if !badAt.IsZero() && !restoredAt.IsZero() {
		fmt.Printf("v3 took traffic → traffic back on stable: %s (observer polling HAProxy every 5 ms)\n", restoredAt.Sub(badAt).Round(time.Millisecond))
	}
	row := func(name, a, b, c string) { fmt.Printf("%-34s %-26s %-26s %-26s\n", name, a, b, c) }
	fmt.Println()
	row("", "before v2", "after v2 (= before v3)", "after v3 (rolled back)")
	row("version on stable / canary", goodBefore.versions, goodAfter.versions, badAfter.versions)
	row("schema version (payments)", goodBefore.schema, goodAfter.schema, badAfter.schema)
	row("schema shape (columns, indexes)", goodBefore.shapeSummary(), goodAfter.shapeSummary(), badAfter.shapeSummary())
	row("HAProxy weights stable/canary", goodBefore.weights, goodAfter.weights, badAfter.weights)
	row("rollbook_archive tables", strconv.Itoa(len(goodBefore.archive)), strconv.Itoa(len(goodAfter.archive)), strconv.Itoa(len(badAfter.archive)))
	for _, k := range unionKeys(goodBefore.keys, goodAfter.keys, badAfter.keys) {
		row(strings.TrimPrefix(k, keyPrefix), val(goodBefore.keys, k), val(goodAfter.keys, k), val(badAfter.keys, k))
	}
	goodDiffs := goodBefore.diff(goodAfter)
	fmt.Printf("\ndeployment 1 changed (against the state just before it): %d", len(goodDiffs))
	for _, d := range goodDiffs {
		fmt.Printf("\n  %s", d)
	}
	diffs := badBefore.diff(badAfter)
	fmt.Printf("\ndeployment 2 changed (against the state just before it, after its rollback): %d", len(diffs))
	for _, d := range diffs {
		fmt.Printf("\n  %s", d)
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
	// The archive tables deployment 2's rollback wrote: those that were not there before it
	// (archives of earlier runs of the demo stay, rollbook never deletes them).
	var preserved []writecheck.Archive
	var preservedRows int64
	for _, a := range badWrites.Archives {
		if !slices.Contains(badBefore.archive, baseName(a.ArchiveTable)) {
			preserved = append(preserved, a)
			preservedRows += a.Rows
		}
	}
	fmt.Println("\nwhat the rollback of deployment 2 preserved (rollbook_archive.archives):")
	if len(preserved) == 0 {
		fmt.Println("  nothing archived")
	}
	for _, a := range preserved {
		fmt.Println("  " + a.String())
	}
	fmt.Printf("  %d acknowledged writes of deployment 2 were found only with the archive (their payment_events row)\n", badWrites.FoundInArchive)
	if preservedRows == 0 {
		fmt.Println("  (v3 was caught before it stored an event: the archive table is there, empty, and 00005's Down ran after it)")
	}
	if preservedRows > int64(badWrites.FoundInArchive) {
		// v3 fails some writes after their commit; without an Idempotency-Key nothing replays
		// them, so their callers were told 500 while the payment and its event were stored.
		fmt.Printf("  the other %d archived rows are writes v3 committed and then answered 500 (no Idempotency-Key to replay them): kept as well\n",
			preservedRows-int64(badWrites.FoundInArchive))
	}
	added := without(badAfter.archive, badBefore.archive)
	fmt.Printf("  after the rollback the payments database equals v2's (public schema: %d differences); the only addition is in rollbook_archive: %d new table(s) (%s) holding %d rows, and their catalog rows\n",
		len(schemaDiffs(diffs)), len(added), strings.Join(added, ", "), preservedRows)
	fmt.Printf("\nthrough HAProxy now: X-Rollbook-Version %s\n", frontend)
	fmt.Println("\nWeb UI:")
	for _, o := range []string{goodOut, badOut} {
		if l := webLink(o); l != "" {
			fmt.Println("  " + l)
		}
	}
	fmt.Printf("  all deployments: %s/namespaces/default/workflows?query=RollbookService%%3D%%22%s%%22\n", st.WebUI, service)
	fmt.Println("\nThe stack keeps running (stable v2, canary idle); stop it with `make stack-down`.")
	var problems []string
	if goodCode != 0 || badCode != 2 {
		problems = append(problems, fmt.Sprintf("exit codes %d and %d (want 0 and 2)", goodCode, badCode))
	}
	if len(diffs) > 0 {
		problems = append(problems, fmt.Sprintf("%d differences after the rollback of deployment 2", len(diffs)))
	}
	// The archive must exist before 00005's Down ran. How many rows it holds
	// depends on how many writes v3 served before the continuous check
	// caught it (often none: it is caught within a few requests); every
	// acknowledged one must be found, which Require checks below.
	if !slices.ContainsFunc(preserved, func(a writecheck.Archive) bool { return a.SourceTable == "payment_events" }) {
		problems = append(problems, "the rollback of deployment 2 did not archive payment_events (v3's migration 00005) before its Down")
	}
	if goodAfter.versions != "v2 / v2" {
		problems = append(problems, "after deployment 1 the targets run "+goodAfter.versions+", want v2 / v2 (promoted, canary idle)")
	}
	if frontendErr != nil || frontend != "v2" {
		problems = append(problems, fmt.Sprintf("HAProxy answers from %s (%v), want v2 only", frontend, frontendErr))
	}
	if len(problems) > 0 {
		return fmt.Errorf("unexpected result: %s", strings.Join(problems, "; "))
	}
	return errors.Join(goodWrites.Require(), badWrites.Require())
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

// startWorker runs the worker of examples/dev-worker.yaml in this process, with its /metrics
// on a free port that the stack's Prometheus scrapes (job rollbook-worker, worker="demo")
// while the demo runs.
func (d *demo) startWorker() (func(), error) {
	cfg, err := worker.LoadConfig(filepath.Join("examples", "dev-worker.yaml"))
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	r, err := worker.Start(context.Background(), cfg, zap.NewNop(), worker.Options{MetricsListener: ln})
	if err != nil {
		return nil, err
	}
	if d.stack.PrometheusURL != "" { // a stack started before it had one
		if err := d.stack.AddWorkerMetricsTarget("demo", ln.Addr().String()); err != nil {
			r.Stop()
			return nil, err
		}
	}
	return func() {
		_ = d.stack.RemoveWorkerMetricsTarget("demo")
		r.Stop()
	}, nil
}

// startLoad starts the mixed client load through HAProxy.
func (d *demo) startLoad() *loadgen.MixedLoad {
	return loadgen.StartMixed(loadgen.Mix{BaseURL: d.stack.HAProxyURL, Rate: d.rps})
}

type snapshot struct {
	versions string // "stable / canary", what each server's /healthz reports
	// archive lists the tables of rollbook_archive: what rollbacks preserved, kept apart from
	// the schema the service runs on (shape).
	archive []string
	schema  string
	// shape is the payments database's public schema: "table.column type" and "index name"
	// lines, so that "exactly what v2 left" is checked column by column.
	shape   []string
	weights string
	keys    map[string]string
}

func (d *demo) snapshot() snapshot {
	s := snapshot{keys: map[string]string{}}
	s.versions = serverVersion(d.stack.DemoStableURL) + " / " + serverVersion(d.stack.DemoCanaryURL)
	var v sql.NullInt64
	// No goose table yet means version 0, as goose itself reports it.
	_ = d.db.QueryRow(`SELECT max(version_id) FROM goose_db_version WHERE is_applied`).Scan(&v)
	s.schema = strconv.FormatInt(v.Int64, 10)
	// goose's own table is bookkeeping, reported as the schema version above.
	rows, err := d.db.Query(`SELECT table_name || '.' || column_name || ' ' || data_type FROM information_schema.columns
			WHERE table_schema = 'public' AND table_name <> 'goose_db_version'
		UNION ALL SELECT 'index ' || indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename <> 'goose_db_version' ORDER BY 1`)
	if err == nil {
		for rows.Next() {
			var line string
			if rows.Scan(&line) == nil {
				s.shape = append(s.shape, line)
			}
		}
		rows.Close()
	} else {
		s.shape = []string{"(unreadable: " + err.Error() + ")"}
	}
	if rows, err := d.db.Query(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'rollbook_archive' ORDER BY 1`); err == nil {
		for rows.Next() {
			var t string
			if rows.Scan(&t) == nil {
				s.archive = append(s.archive, t)
			}
		}
		rows.Close()
	}
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

func (s snapshot) shapeSummary() string {
	idx := 0
	for _, l := range s.shape {
		if strings.HasPrefix(l, "index ") {
			idx++
		}
	}
	return fmt.Sprintf("%d columns, %d indexes", len(s.shape)-idx, idx)
}

func (s snapshot) diff(o snapshot) []string {
	var d []string
	if s.versions != o.versions {
		d = append(d, "versions (stable / canary) "+s.versions+" → "+o.versions)
	}
	if s.schema != o.schema {
		d = append(d, "schema version "+s.schema+" → "+o.schema)
	}
	for _, l := range s.shape {
		if !slices.Contains(o.shape, l) {
			d = append(d, "schema: "+l+" removed")
		}
	}
	for _, l := range o.shape {
		if !slices.Contains(s.shape, l) {
			d = append(d, "schema: "+l+" added")
		}
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

// schemaDiffs are the differences of diff lines that concern the public schema.
func schemaDiffs(diffs []string) []string {
	var out []string
	for _, d := range diffs {
		if strings.HasPrefix(d, "schema") {
			out = append(out, d)
		}
	}
	return out
}

// without returns the elements of a not in b.
func without(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// baseName is an archive table's name without its schema.
func baseName(table string) string {
	if _, t, ok := strings.Cut(table, "."); ok {
		return t
	}
	return table
}

// overlayFiles lists the files of overlay, for the report.
func overlayFiles(overlay string) string {
	var out []string
	_ = filepath.WalkDir(overlay, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			rel, _ := filepath.Rel(overlay, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return strings.Join(out, ", ")
}

// serverVersion is what a server's /healthz reports (X-Rollbook-Version).
func serverVersion(url string) string {
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		return "down"
	}
	resp.Body.Close()
	return resp.Header.Get("X-Rollbook-Version")
}

// frontendVersions sends n reads through HAProxy and lists the versions that answered.
func frontendVersions(url string, n int) (string, error) {
	seen := map[string]bool{}
	for range n {
		resp, err := http.Get(url + "/api/payments?limit=1")
		if err != nil {
			return "", err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("GET /api/payments through HAProxy: %s", resp.Status)
		}
		seen[resp.Header.Get("X-Rollbook-Version")] = true
	}
	return strings.Join(slices.Sorted(maps.Keys(seen)), ", "), nil
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

var _ = workflows.WorkflowID
