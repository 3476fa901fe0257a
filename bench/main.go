// Command bench is `make bench`: rollbook's benchmark on the real dev stack.
//
// It starts a private dev stack (or attaches to a running one with -env), a
// second HAProxy of its own (retry-to-stable on and off, one backend per
// concurrent deployment), the rollbook worker as a separate process built
// from ./workers/rollbook-worker (so its peak RSS can be read from /proc),
// and a worker for bare Temporal workflows in this process. HTTP load comes
// from vegeta; an observer polls the HAProxy runtime API every few
// milliseconds and timestamps every weight change, so no time is inferred
// from sleeps or from the workflow's own logs. Where the time goes is read from Temporal's
// history event times.
//
// It measures, in one run: (1) the floor — a bare workflow's signal → one
// activity → done; (2) abort → traffic restored; (3) a canary turning bad →
// restored; (4) client errors over many 0→10→50→100 % switches and
// rollbacks under load; (5) the blast radius of a bad canary with HAProxy's
// retry-to-stable on and off; (6) many deployments at once against as many
// bare workflows; (7) a bad canary under mixed read/write load that rolls back
// a migration: every acknowledged write found afterwards, none twice; (8) a
// canary turning bad caught by rollbook's continuous check, by the seed's
// own loop and by either with HAProxy's observe layer7 on the canary, with
// the client errors no retry can hide; (9) healthy canaries deployed with
// the example runbook's checks (false rollbacks); (10) the sequential test's
// seeded simulation. It writes bench/results/latest.json and a dated copy,
// and prints the same as a table with issues 4 and 14's targets.
//
//	go run ./bench                      # full run, a few minutes
//	go run ./bench -smoke -out /tmp/b   # a few cycles of each (what make test runs)
//	go run ./bench -env .stack/env      # use the stack of `make stack-up`
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/internal/haproxywatch"
	"github.com/rollbook/rollbook/internal/zapadapter"
)

// Config sets the sizes of one run. fullConfig and smokeConfig are the two
// presets; flags override single values.
type Config struct {
	Mode          string
	EnvFile       string // attach to this stack instead of starting one
	OutDir        string // where latest.json and the dated copy go ("" = none)
	FloorN        int
	AbortN        int
	DetectN       int
	CheckInterval time.Duration
	DetectTimeout time.Duration
	BackgroundRPS int

	SwitchCycles      int
	SwitchMinRequests int64
	SwitchRPS         int
	SwitchMaxTime     time.Duration

	BadRuns      int // per gateway configuration
	BadRPS       int
	BadCanaryPct int
	BadErrorRate float64

	Concurrent int

	// Issue 14: continuous detection vs the seed's loop (runs per
	// detector), and healthy canaries with the example runbook's checks.
	FastRuns      int
	FastInterval  time.Duration // the round interval of the fast runs' verify step
	FastWindow    time.Duration // the continuous check's window
	HealthyRuns   int
	HealthyVerify time.Duration // each verify step's duration in the healthy runs

	ObserveEvery time.Duration
	Only         map[string]bool // phases to run (nil: all)
	TemporalArgs []string
	Log          io.Writer
	Command      string
}

func fullConfig() Config {
	return Config{
		Mode: "full", OutDir: "bench/results",
		FloorN: 40, AbortN: 40, DetectN: 24,
		CheckInterval: time.Second, DetectTimeout: 6 * time.Second, BackgroundRPS: 200,
		SwitchCycles: 50, SwitchMinRequests: 100_000, SwitchRPS: 1000, SwitchMaxTime: 6 * time.Minute,
		BadRuns: 6, BadRPS: 500, BadCanaryPct: 10, BadErrorRate: 1,
		Concurrent: 200,
		FastRuns:   12, FastInterval: 10 * time.Second, FastWindow: 500 * time.Millisecond,
		HealthyRuns: 20, HealthyVerify: 2 * time.Second,
		ObserveEvery: 2 * time.Millisecond,
	}
}

func smokeConfig() Config {
	c := fullConfig()
	c.Mode, c.OutDir = "smoke", ""
	c.FloorN, c.AbortN, c.DetectN = 4, 4, 2
	c.SwitchCycles, c.SwitchMinRequests, c.SwitchRPS, c.SwitchMaxTime = 3, 1000, 500, time.Minute
	c.BadRuns = 1
	c.Concurrent = 10
	c.FastRuns, c.HealthyRuns = 2, 2
	return c
}

func main() {
	smoke := flag.Bool("smoke", false, "a few cycles of each measurement (what make test runs)")
	envFile := flag.String("env", "", "attach to the dev stack of this env file (e.g. .stack/env) instead of starting a private one")
	out := flag.String("out", "", "results directory (default bench/results; smoke: none)")
	strict := flag.Bool("strict", false, "exit 3 when a target is missed")
	var tArgs multiFlag
	flag.Var(&tArgs, "temporal-arg", "extra argument for `temporal server start-dev` of a private stack (repeatable; for experiments)")
	concurrent := flag.Int("concurrent", 0, "override: concurrent deployments")
	switchRPS := flag.Int("switch-rps", 0, "override: requests/s during the switching cycles")
	only := flag.String("only", "", "comma-separated phases to run, of floor (1+2), detect, switch, bad, writes, fast, healthy, sequential, concurrent (for experiments; results are partial)")
	flag.Parse()

	cfg := fullConfig()
	if *smoke {
		cfg = smokeConfig()
	}
	if *out != "" {
		cfg.OutDir = *out
	}
	if *concurrent > 0 {
		cfg.Concurrent = *concurrent
	}
	if *switchRPS > 0 {
		cfg.SwitchRPS = *switchRPS
	}
	cfg.TemporalArgs = tArgs
	cfg.EnvFile, cfg.Log = *envFile, os.Stderr
	if *only != "" {
		cfg.Only = map[string]bool{}
		for _, p := range strings.Split(*only, ",") {
			cfg.Only[strings.TrimSpace(p)] = true
		}
	}
	cfg.Command = "go run ./bench " + strings.Join(os.Args[1:], " ")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, files, err := run(ctx, cfg)
	if err == nil {
		res.table(os.Stdout)
		for _, f := range files {
			fmt.Println("wrote", f)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if *strict {
		for _, t := range res.Targets {
			if !t.Met {
				os.Exit(3)
			}
		}
	}
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// bench is one run's wiring.
type bench struct {
	cfg           Config
	runID         string
	st            *devstack.Stack
	tc            client.Client
	dep           *deployer
	bh            *benchHAProxy
	worker        *child
	bareTQ        string
	edgeObs       *haproxywatch.Observer
	canaryVersion string
	res           *Results
}

// run does the whole benchmark and returns the results (also when a phase
// failed: what was measured so far) and the files written.
func run(ctx context.Context, cfg Config) (*Results, []string, error) {
	started := time.Now()
	res := &Results{Run: RunInfo{
		Mode: cfg.Mode, StartedAt: started.UTC().Format(time.RFC3339), CPUs: runtime.NumCPU(),
		LoadBefore: loadavg(), GoVersion: runtime.Version(), BackgroundR: cfg.BackgroundRPS, Command: cfg.Command,
	}}
	b := &bench{cfg: cfg, res: res, runID: randomHex(4), canaryVersion: "v2"}
	err := b.run(ctx)
	res.Run.DurationS = round1(time.Since(started).Seconds())
	res.Run.LoadAfter = loadavg()
	res.evaluate()
	var files []string
	if err == nil && cfg.OutDir != "" {
		var werr error
		files, werr = res.write(cfg.OutDir, started)
		err = werr
	}
	return res, files, err
}

func (b *bench) run(ctx context.Context) (err error) {
	root, err := devstack.FindModuleRoot()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "rb-bench-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			b.logf("logs of the failed run kept in %s (worker.log, bench-haproxy.log)", work)
			return
		}
		os.RemoveAll(work)
	}()

	stopStack, err := b.openStack(ctx, root, work)
	if err != nil {
		return err
	}
	defer func() {
		if serr := stopStack(); serr != nil {
			err = errors.Join(err, serr)
		}
	}()

	b.tc, err = client.Dial(client.Options{HostPort: b.st.TemporalAddress, Namespace: devstack.Namespace, Logger: zapadapter.New(zap.NewNop())})
	if err != nil {
		return fmt.Errorf("temporal client: %w", err)
	}
	defer b.tc.Close()

	b.bh, err = startBenchHAProxy(ctx, work, b.st.DemoStableURL, b.st.DemoCanaryURL, b.cfg.Concurrent)
	if err != nil {
		return err
	}
	defer b.bh.stop(5 * time.Second)

	taskQueue := "rollbook-bench-" + b.runID
	if err := b.startRollbookWorker(ctx, root, work, taskQueue); err != nil {
		return err
	}
	defer b.worker.stop(25 * time.Second)

	b.bareTQ = taskQueue + "-bare"
	stopBare, err := b.startBareWorker(ctx)
	if err != nil {
		return err
	}
	defer stopBare()

	cleanKV, err := b.kvCleaner()
	if err != nil {
		return err
	}
	defer cleanKV()

	if err := b.startEdgeObserver(); err != nil {
		return err
	}
	defer func() {
		if b.edgeObs != nil {
			b.res.Observer = b.edgeObs.Stop()
		}
	}()

	if err := b.runPhases(ctx); err != nil {
		return err
	}
	b.res.Observer = b.edgeObs.Stop()
	b.edgeObs = nil
	if b.cfg.Only != nil && !b.cfg.Only["concurrent"] {
		return nil
	}
	return b.runConcurrent(ctx)
}

// openStack attaches to the stack of cfg.EnvFile or starts a private one
// under work, and returns how to stop what it started.
func (b *bench) openStack(ctx context.Context, root, work string) (stop func() error, err error) {
	stop = func() error { return nil }
	if b.cfg.EnvFile != "" {
		b.st, err = devstack.Attach(b.cfg.EnvFile)
		if err != nil {
			return stop, fmt.Errorf("attaching to the stack of %s: %w", b.cfg.EnvFile, err)
		}
		b.res.Run.Stack = "attached: " + b.cfg.EnvFile
	} else {
		b.logf("starting a private dev stack")
		b.st, err = devstack.Start(ctx, devstack.Options{
			Dir: filepath.Join(work, "stack"), RemoveOnStop: true, ModuleRoot: root, Log: b.cfg.Log, TemporalArgs: b.cfg.TemporalArgs,
		})
		if err != nil {
			return stop, err
		}
		stop = func() error {
			if serr := b.st.Stop(); serr != nil {
				return fmt.Errorf("stopping the stack: %w", serr)
			}
			return nil
		}
		b.res.Run.Stack = "private (internal/devstack)"
		if len(b.cfg.TemporalArgs) > 0 {
			b.res.Run.Stack += ", temporal " + strings.Join(b.cfg.TemporalArgs, " ")
		}
	}
	if out, err := exec.Command("haproxy", "-v").Output(); err == nil {
		b.res.Run.HAProxy = strings.SplitN(string(out), "\n", 2)[0]
	}

	return stop, nil
}

// startRollbookWorker builds and starts the rollbook worker on taskQueue,
// allowed to drive the edge route and the bench HAProxy's backends.
func (b *bench) startRollbookWorker(ctx context.Context, root, work, taskQueue string) (err error) {
	b.res.Run.TaskQueue = taskQueue
	b.logf("building and starting the worker (./workers/rollbook-worker) on task queue %s", taskQueue)
	b.worker, err = startWorker(ctx, b.tc, root, work, b.st.Env(), taskQueue, b.st.HAProxySocket, b.bh.socket, append([]string{"be_retry_on", "be_retry_off", "be_observe"}, b.bh.concurrentBack...))
	if err != nil {
		return err
	}
	b.dep = &deployer{tc: b.tc, taskQueue: taskQueue, dir: work}
	return nil
}

// startEdgeObserver puts the edge route at stable 100 % and starts watching
// it.
func (b *bench) startEdgeObserver() (err error) {
	if err := b.resetEdge(); err != nil {
		return err
	}
	b.edgeObs, err = haproxywatch.Start(b.st.HAProxySocket, devstack.Backend, b.cfg.ObserveEvery)
	return err
}

// kvCleaner returns how to delete the Consul keys the runs leave behind.
func (b *bench) kvCleaner() (func(), error) {
	cfg := consulapi.DefaultConfig()
	cfg.Address = b.st.ConsulHTTPAddr
	consul, err := consulapi.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	return func() { _, _ = consul.KV().DeleteTree("rollbook-bench/", nil) }, nil
}

// startBareWorker runs, in this process, the worker of the bare workflows
// that measure Temporal alone.
func (b *bench) startBareWorker(ctx context.Context) (stop func(), err error) {
	bw := sdkworker.New(b.tc, b.bareTQ, sdkworker.Options{})
	bw.RegisterWorkflowWithOptions(benchFloor, workflow.RegisterOptions{Name: bareFloorWorkflow})
	bw.RegisterWorkflowWithOptions(benchSequence, workflow.RegisterOptions{Name: bareSeqWorkflow})
	bw.RegisterActivityWithOptions(benchNoop, activityOptions(bareActivity))
	if err := bw.Start(); err != nil {
		return nil, err
	}
	if err := waitPollers(ctx, b.tc, b.bareTQ, nil); err != nil {
		bw.Stop()
		return nil, err
	}
	return bw.Stop, nil
}

// runPhases runs phases 1 to 5 and 7 (those selected by cfg.Only) one
// after the other on the edge route.
func (b *bench) runPhases(ctx context.Context) error {
	phases := []struct {
		key, name string
		f         func(context.Context) error
	}{
		// The healthy canaries go first: the example runbook's PromQL checks
		// look 30 s back, and every phase after this one makes the canary
		// fail on purpose.
		{"healthy", fmt.Sprintf("9: false rollbacks: %d healthy canaries with %s's checks, %d rps", b.cfg.HealthyRuns, exampleRunbook, b.cfg.BackgroundRPS), b.falseRollbacks},
		{"floor", fmt.Sprintf("1+2: floor (n=%d) and abort → restored (n=%d), interleaved, %d rps background", b.cfg.FloorN, b.cfg.AbortN, b.cfg.BackgroundRPS), b.floorAndAbort},
		{"detect", fmt.Sprintf("3: detect → restored (n=%d, check interval %s)", b.cfg.DetectN, b.cfg.CheckInterval), b.detect},
		{"switch", fmt.Sprintf("4: switching, ≥%d cycles and ≥%d requests at %d rps", b.cfg.SwitchCycles, b.cfg.SwitchMinRequests, b.cfg.SwitchRPS), b.switching},
		{"bad", fmt.Sprintf("5: bad canary at %d %%, %d runs with retry-to-stable on and off, %d rps", b.cfg.BadCanaryPct, b.cfg.BadRuns, b.cfg.BadRPS), b.badCanary},
		{"writes", fmt.Sprintf("7: bad canary at 50 %% under mixed read/write load (%d rps), migrations rolled back, every acknowledged write checked", b.cfg.BackgroundRPS), b.writes},
		{"fast", fmt.Sprintf("8: canary at %d %% turning bad at %d rps, %d runs each: the seed's loop, rollbook's continuous check (round interval %s), the same with HAProxy's observe layer7", b.cfg.BadCanaryPct, b.cfg.BadRPS, b.cfg.FastRuns, b.cfg.FastInterval), b.fast},
		{"sequential", "10: the sequential test's seeded simulation (internal/stats)", b.sequential},
	}
	for _, p := range phases {
		if b.cfg.Only != nil && !b.cfg.Only[p.key] {
			continue
		}
		t := time.Now()
		b.logf("phase %s", p.name)
		if err := p.f(ctx); err != nil {
			return fmt.Errorf("phase %s: %w", p.name, err)
		}
		b.logf("  done in %.0f s", time.Since(t).Seconds())
	}
	return nil
}

// runConcurrent runs phase 6 and reads the worker's memory after it.
func (b *bench) runConcurrent(ctx context.Context) error {
	t := time.Now()
	b.logf("phase 6: %d deployments at once vs %d bare workflows", b.cfg.Concurrent, b.cfg.Concurrent)
	if err := b.concurrent(ctx); err != nil {
		return fmt.Errorf("phase 6: %w", err)
	}
	b.logf("  done in %.0f s", time.Since(t).Seconds())
	hwm, err := memoryKB(b.worker.pid(), "VmHWM")
	if err != nil {
		return fmt.Errorf("reading the worker's peak RSS: %w", err)
	}
	rss, _ := memoryKB(b.worker.pid(), "VmRSS")
	b.res.Concurrent.WorkerPeakRSSMB = round1(float64(hwm) / 1024)
	b.res.Concurrent.WorkerRSSEndMB = round1(float64(rss) / 1024)
	return nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
