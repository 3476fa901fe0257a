// Command chaos is rollbook's crash campaign (`make chaos`, issue 5): it runs
// the example canary runbook (runbooks/payments-api.yaml, durations
// shortened) against the real dev stack — Temporal dev server, Consul,
// PostgreSQL, HAProxy and the demo API, started privately under /tmp — with
// the worker as a separate OS process, and kill -9s that worker at one
// precise point per run: before and after each capture, apply and
// compensate of every mutating step kind, between the files of a migration,
// during a verification, during the gradual traffic restore, and while
// paused at an approval. Then it starts a new worker and checks that the
// deployment ends as planned (succeeded, rolled-back or aborted) and that the
// schema version, every Consul key of the runbook and the HAProxy weights are
// exactly what that outcome implies.
//
// Precise points come from internal/faults: the killed worker runs with
// ROLLBOOK_CRASHPOINT set, announces the point on stdout and blocks there
// until the harness kills it by PID. The paused point is driven by the
// harness (kill once the status query says "paused at approval").
//
//	go run ./tests/chaos                     # every point; writes tests/results/chaos.json
//	go run ./tests/chaos -list               # the kill points
//	go run ./tests/chaos -points mid2:MigrateUp,RestoreKV -out /tmp/chaos.json
//
// It exits 1 when a run is inconsistent.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/internal/loadgen"
	"github.com/rollbook/rollbook/internal/zapadapter"
)

const taskQueue = "rollbook-chaos"

type options struct {
	points string
	out    string
	env    string
	rps    int
	keep   bool
	// log receives progress lines; the table goes to stdout.
	log io.Writer
}

func main() {
	var o options
	list := flag.Bool("list", false, "list the kill points and exit")
	flag.StringVar(&o.points, "points", "all", "comma-separated kill points to run (exact names or substrings; see -list)")
	flag.StringVar(&o.out, "out", "tests/results/chaos.json", "where to write the JSON report")
	flag.StringVar(&o.env, "env", "", "env file of a running dev stack to use instead of a private one (its payments-api deployment, keys and weights are reset!)")
	flag.IntVar(&o.rps, "rps", 100, "client requests per second through HAProxy during the campaign (the router checks need traffic)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (worker logs) after the campaign")
	flag.Parse()
	if *list {
		for i, p := range catalogue {
			fmt.Printf("%2d  %-40s %-8s %-8s %s\n", i+1, p.Name, p.Kind, p.Path, p.Why)
		}
		return
	}
	o.log = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := campaign(ctx, o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	if rep.Inconsistent > 0 {
		os.Exit(1)
	}
}

// report is tests/results/chaos.json.
type report struct {
	KillPoints   int         `json:"kill_points"`
	Runs         int         `json:"runs"`
	Consistent   int         `json:"consistent"`
	Inconsistent int         `json:"inconsistent"`
	RollbackRuns int         `json:"rollback_path_runs"`
	Runbook      string      `json:"runbook"`
	Shortened    string      `json:"runbook_changes"`
	StartedAt    time.Time   `json:"started_at"`
	DurationS    float64     `json:"duration_s"`
	Load         loadSummary `json:"client_load"`
	// Every write the API acknowledged during the runs, and how many of them the checker
	// (internal/writecheck) could not find afterwards, live or archived, or found twice.
	WritesAcknowledged int         `json:"writes_acknowledged"`
	WritesLost         int         `json:"writes_lost"`
	WritesDuplicated   int         `json:"writes_duplicated"`
	Details            []runResult `json:"details"`
}

type loadSummary struct {
	RPS      int    `json:"rps"`
	Requests int64  `json:"requests"`
	Failed   int64  `json:"failed"`
	Note     string `json:"note"`
	// By kind, summed over the runs.
	Counts loadgen.MixedCounts `json:"by_kind"`
}

type harness struct {
	root, dir   string
	runbookPath string
	taskQueue   string
	stack       *devstack.Stack
	tc          client.Client
	state       *stateReader
	bin, cfg    string
	env         map[string]string
	log         io.Writer
	rps         int // mixed client load per run; 0: none
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.log, "chaos: "+format+"\n", args...)
}

// campaign runs the selected points one after the other, prints the table to
// out and writes the JSON report.
func campaign(ctx context.Context, o options, out io.Writer) (*report, error) {
	points, err := selectPoints(o.points)
	if err != nil {
		return nil, err
	}
	if o.log == nil {
		o.log = io.Discard
	}
	root, err := devstack.FindModuleRoot()
	if err != nil {
		return nil, err
	}
	// Short: HAProxy's unix socket lives in the stack directory.
	dir, err := os.MkdirTemp("", "rbchaos-")
	if err != nil {
		return nil, err
	}
	h := &harness{root: root, dir: dir, runbookPath: filepath.Join(root, "runbooks", "payments-api.yaml"), taskQueue: taskQueue, log: o.log}
	defer func() {
		if o.keep {
			h.logf("work directory kept: %s", dir)
		} else {
			_ = os.RemoveAll(dir)
		}
	}()
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, err
	}

	h.logf("building the worker (./workers/rollbook-worker)")
	if h.bin, err = buildWorker(root, dir); err != nil {
		return nil, err
	}
	if h.cfg, err = writeWorkerConfig(root, dir, taskQueue); err != nil {
		return nil, err
	}
	stopStack, err := h.openStack(ctx, o)
	if err != nil {
		return nil, err
	}
	defer stopStack()
	h.env = h.stack.Env()
	h.tc, err = client.Dial(client.Options{HostPort: h.stack.TemporalAddress, Namespace: devstack.Namespace, Logger: zapadapter.New(zap.NewNop())})
	if err != nil {
		return nil, fmt.Errorf("temporal client: %w", err)
	}
	defer h.tc.Close()
	if h.state, err = newStateReader(h.stack); err != nil {
		return nil, err
	}
	defer h.state.close()
	if _, err := h.bundle("chaos-check"); err != nil {
		return nil, err
	}

	// The router checks need requests to judge, and the writes are what must survive: every
	// run sends a mixed load (runOne); -rps 0 runs without load.
	h.rps = o.rps

	rep := &report{KillPoints: len(points), Runbook: "runbooks/payments-api.yaml", Shortened: shortenedNote, StartedAt: time.Now().UTC()}
	fmt.Fprintf(out, "rollbook crash campaign: %d kill points, runbook %s\n%s\n\n", len(points), rep.Runbook, shortenedNote)
	printHeader(out)
	if o.keep, err = h.runPoints(ctx, points, rep, out, o.keep); err != nil {
		return nil, err
	}
	rep.summarise(o.rps, o.keep, out)
	if o.out != "" {
		if err := writeReport(rep, root, o.out, out); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// openStack attaches to the stack of o.env or starts a private one, and
// returns how to stop what it started.
func (h *harness) openStack(ctx context.Context, o options) (stop func(), err error) {
	if o.env != "" {
		if h.stack, err = devstack.Attach(o.env); err != nil {
			return nil, fmt.Errorf("no dev stack at %s: %w", o.env, err)
		}
		return func() {}, nil
	}
	h.logf("starting a private dev stack in %s", filepath.Join(h.dir, "stack"))
	h.stack, err = devstack.Start(ctx, devstack.Options{Dir: filepath.Join(h.dir, "stack"), ModuleRoot: h.root, Log: o.log, RemoveOnStop: true})
	if err != nil {
		return nil, fmt.Errorf("starting the dev stack: %w", err)
	}
	return func() {
		if err := h.stack.Stop(); err != nil {
			h.logf("stopping the dev stack: %v", err)
		}
	}, nil
}

// runPoints runs every point in order, prints its row and, for an
// inconsistent one, what failed. It returns keep, turned on by the first
// inconsistent run: its worker logs are the only way to see why.
func (h *harness) runPoints(ctx context.Context, points []killPoint, rep *report, out io.Writer, keep bool) (bool, error) {
	for i, p := range points {
		if ctx.Err() != nil {
			return keep, ctx.Err()
		}
		h.logf("run %d/%d: %s (%s path%s)", i+1, len(points), p.Name, p.Path, prefixed(", ", p.trigger()))
		r := h.runOne(ctx, i+1, p)
		rep.Details = append(rep.Details, r)
		printRow(out, r)
		if !r.Consistent {
			for _, c := range r.Checks {
				if !c.OK {
					fmt.Fprintf(out, "      ✗ %s: want %s, got %s\n", c.Name, c.Want, c.Got)
				}
			}
			if !keep {
				// The logs are the only way to see why.
				keep = true
				h.logf("run %d is inconsistent: keeping the worker logs in %s", i+1, filepath.Join(h.dir, "logs"))
			}
		}
	}
	return keep, nil
}

// summarise adds up the runs, their client load and their writes, and
// prints the totals.
func (rep *report) summarise(rps int, keep bool, out io.Writer) {
	rep.Runs = len(rep.Details)
	for _, r := range rep.Details {
		if r.Consistent {
			rep.Consistent++
		} else {
			rep.Inconsistent++
		}
		if r.Path != pathSuccess {
			rep.RollbackRuns++
		}
	}
	if !keep {
		for i := range rep.Details {
			rep.Details[i].Logs = nil
		}
	}
	rep.DurationS = time.Since(rep.StartedAt).Seconds()
	var counts loadgen.MixedCounts
	for _, r := range rep.Details {
		if r.Load != nil {
			counts = addCounts(counts, *r.Load)
		}
		rep.WritesAcknowledged += r.WritesAcknowledged
		rep.WritesLost += r.WritesLost
		rep.WritesDuplicated += r.WritesDuplicated
	}
	reqs := counts.Reads.Sent + counts.Keyed.Sent + counts.Unkeyed.Sent
	failed := counts.Errors()
	rep.Load = loadSummary{RPS: rps, Requests: reqs, Failed: failed, Counts: counts,
		Note: "reads, writes with an Idempotency-Key and a few without, through HAProxy during every run (internal/loadgen mixed load); client errors are informational, lost writes are not"}
	fmt.Fprintf(out, "\nkill points %d, runs %d (%d on the rollback/abort path), consistent %d, inconsistent %d, %.0fs; client requests %d, failed %d (reads %d, keyed writes %d, unkeyed writes %d)\nacknowledged writes: %d, lost: %d, duplicated: %d\n",
		rep.KillPoints, rep.Runs, rep.RollbackRuns, rep.Consistent, rep.Inconsistent, rep.DurationS, reqs, failed,
		counts.Reads.Errors, counts.Keyed.Errors, counts.Unkeyed.Errors, rep.WritesAcknowledged, rep.WritesLost, rep.WritesDuplicated)
}

// writeReport writes the report as JSON to path (relative to the module
// root).
func writeReport(rep *report, root, path string, w io.Writer) error {
	if !filepath.IsAbs(path) {
		path = filepath.Join(root, path)
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(w, "report: %s\n", path)
	return nil
}

func addCounts(a, b loadgen.MixedCounts) loadgen.MixedCounts {
	add := func(x, y loadgen.KindCounts) loadgen.KindCounts {
		return loadgen.KindCounts{Sent: x.Sent + y.Sent, Errors: x.Errors + y.Errors, Retried: x.Retried + y.Retried}
	}
	return loadgen.MixedCounts{Reads: add(a.Reads, b.Reads), Keyed: add(a.Keyed, b.Keyed), Unkeyed: add(a.Unkeyed, b.Unkeyed), Skipped: a.Skipped + b.Skipped}
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

const rowFormat = "%-3s %-38s %-8s %-12s %-12s %-10s %8s  %s\n"

func printHeader(out io.Writer) {
	fmt.Fprintf(out, rowFormat, "#", "point", "path", "outcome", "expected", "consistent", "duration", "notes")
	fmt.Fprintln(out, strings.Repeat("-", 140))
}

func printRow(out io.Writer, r runResult) {
	consistent := "yes"
	if !r.Consistent {
		consistent = "NO"
	}
	got := r.Got
	if got == "" {
		got = "-"
	}
	var notes []string
	if r.Trigger != "" {
		notes = append(notes, r.Trigger)
	}
	if len(r.Kills) > 0 {
		k := r.Kills[0]
		where := k.Step
		if k.Phase != "" {
			where = k.Phase + " at " + k.Step
		}
		notes = append(notes, fmt.Sprintf("pid %d killed at %.1fs (%s)", k.Pid, float64(k.SinceStartMs)/1000, where))
	}
	notes = append(notes, r.Notes...)
	fmt.Fprintf(out, rowFormat, fmt.Sprint(r.Index), r.Point, r.Path, got, r.Expected, consistent,
		fmt.Sprintf("%.1fs", float64(r.DurationMs)/1000), strings.Join(notes, "; "))
}
