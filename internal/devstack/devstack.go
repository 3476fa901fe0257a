// Package devstack starts and stops rollbook's development stack from real binaries, on
// 127.0.0.1 and free ports, so that any number of stacks can run side by side:
//
//   - the Temporal dev server (temporal server start-dev) with rollbook's search attributes,
//     an SQLite file for persistence and, optionally, the Web UI;
//   - Consul, a single server that bootstraps itself, with its data in <Dir>/consul (not a
//     -dev agent, which would lose every key when restarted);
//   - a private PostgreSQL 15 cluster (initdb + postgres under the stack directory; never the
//     system cluster) with the database "payments";
//   - the demo API (examples/demoapi) twice: stable (v1) and canary (v2), run by the release
//     supervisor (supervisor.go), which replaces them with other versions when rollbook's
//     exec release driver asks (bin/demo-release; targets stable and canary);
//   - HAProxy fronting both, backend "payments_api" with servers "stable" (weight 256 = 100 %)
//     and "canary" (weight 0), and its runtime API on a unix socket;
//   - Prometheus scraping HAProxy's exporter, both demo API instances and registered
//     workers, with the rule files of Options.RulesDir, and Alertmanager sending alerts to
//     Options.AlertWebhookURL (prometheus.go).
//
// The e2e tests' TestMain, `make stack-up`, the demo and the benchmarks all use it. Start
// writes the addresses to <Dir>/env (KEY=VALUE lines) and the PIDs to <Dir>/pids, so another
// process can Attach to the stack or stop it. Each process logs to <Dir>/logs/<name>.log.
//
// Ports are chosen free and bound a moment later by another program, so another stack
// starting at the same time can take one in between: every component's start detects it
// (the process exits with "address already in use", or another process listens on the
// port) and starts again, on new ports during Start (components.go).
//
// StopComponent, StartComponent and Restart stop and start the stateful components
// (temporal, consul, postgres, haproxy) on the same ports with the same data, for outage
// tests (tests/durability_e2e_test.go) and drills (`stack restart`); <Dir>/ports keeps the
// ports for a Stack from Load.
//
// The Temporal CLI and Consul are built by scripts/tools.sh (make tools); HAProxy,
// PostgreSQL, Prometheus and Alertmanager come from Debian packages. A missing one is an error wrapping ErrMissingTool
// that says what to run.
package devstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// Environment keys written by WriteEnv and returned by Env.
const (
	EnvTemporalAddress   = "TEMPORAL_ADDRESS"   // host:port of the Temporal frontend (gRPC)
	EnvTemporalNamespace = "TEMPORAL_NAMESPACE" // always "default"
	EnvWebUI             = "ROLLBOOK_WEB_UI"    // http://127.0.0.1:U, empty when started headless
	EnvConsulHTTPAddr    = "CONSUL_HTTP_ADDR"   // http://127.0.0.1:P (the Consul API client accepts the scheme)
	EnvPGDSN             = "ROLLBOOK_PG_DSN"    // postgres://rollbook:pw@127.0.0.1:P/payments?sslmode=disable
	EnvPGAdminDSN        = "ROLLBOOK_PG_ADMIN_DSN"
	EnvPGDir             = "ROLLBOOK_PG_DIR"            // the cluster's directory (data/, run/)
	EnvHAProxySocket     = "ROLLBOOK_HAPROXY_SOCKET"    // runtime API, unix socket, level admin
	EnvHAProxyAdminAddr  = "ROLLBOOK_HAPROXY_ADMIN"     // runtime API, TCP 127.0.0.1:P, level admin
	EnvHAProxyURL        = "ROLLBOOK_HAPROXY_URL"       // the frontend clients call
	EnvHAProxyStatsURL   = "ROLLBOOK_HAPROXY_STATS_URL" // HAProxy's stats page
	EnvHAProxyBackend    = "ROLLBOOK_HAPROXY_BACKEND"   // payments_api
	EnvDemoStableURL     = "ROLLBOOK_DEMO_STABLE_URL"
	EnvDemoCanaryURL     = "ROLLBOOK_DEMO_CANARY_URL"
	EnvStackDir          = "ROLLBOOK_STACK_DIR"
	// Monitoring (prometheus.go).
	EnvHAProxyMetricsURL = "ROLLBOOK_HAPROXY_METRICS_URL" // HAProxy's Prometheus exporter, http://127.0.0.1:P/metrics
	EnvPrometheusURL     = "ROLLBOOK_PROMETHEUS_URL"      // http://127.0.0.1:P, the stack's Prometheus
	EnvAlertmanagerURL   = "ROLLBOOK_ALERTMANAGER_URL"    // http://127.0.0.1:P, the stack's Alertmanager
)

// Names fixed by the stack.
const (
	Namespace     = "default"
	Backend       = "payments_api"
	StableServer  = "stable"
	CanaryServer  = "canary"
	DefaultDBName = "payments"
	pgUserName    = "rollbook"
)

// SearchAttributes are registered on the namespace when the Temporal dev server starts.
var SearchAttributes = []string{"RollbookService", "RollbookVersion", "RollbookPhase"}

// ErrAlreadyRunning is returned by Start when the directory's pids file lists live processes.
var ErrAlreadyRunning = errors.New("devstack: a stack is already running in this directory")

// ErrNotRunning is returned by Attach when no live stack is found.
var ErrNotRunning = errors.New("devstack: no running stack")

// Options configure Start. Only Dir is required.
type Options struct {
	// Dir holds everything the stack writes: env, pids, logs/, temporal.db, the PostgreSQL
	// cluster, haproxy.cfg and its sockets. Created if missing. Data in it is reused by the
	// next Start unless Fresh is set.
	Dir string
	// WebUI starts the Temporal Web UI (ROLLBOOK_WEB_UI). Off, the dev server runs headless,
	// which starts a little faster and uses less memory — enough for tests.
	WebUI bool
	// Detach puts the processes in their own session so they outlive this process (make
	// stack-up, make demo). Otherwise they get SIGTERM when this process dies.
	Detach bool
	// Fresh deletes the Temporal database and the PostgreSQL cluster of a previous run.
	Fresh bool
	// RemoveOnStop makes Stop delete Dir (and the PostgreSQL directory, wherever it is).
	RemoveOnStop bool
	// Databases are created in PostgreSQL; the first is the one in ROLLBOOK_PG_DSN.
	// Default: ["payments"].
	Databases []string
	// StableVersion and CanaryVersion are what the two demo API instances report.
	// Default: "v1" and "v2".
	StableVersion, CanaryVersion string
	// DemoBinary is a prebuilt examples/demoapi. Empty: it is built with `go build` from
	// ModuleRoot (found by walking up from the working directory when empty).
	DemoBinary string
	// ReleaseBinary is a prebuilt internal/devstack/cmd/demo-release (the supervisor and the
	// release command). Empty: built like the demo API.
	ReleaseBinary string
	ModuleRoot    string
	// TemporalArgs are appended to `temporal server start-dev` (e.g. --dynamic-config-value).
	TemporalArgs []string
	// RulesDir holds the alert and recording rule files (*.yml, *.yaml) the stack's
	// Prometheus evaluates. Default: deploy/monitoring/rules of the module.
	RulesDir string
	// ScrapeInterval and EvaluationInterval of the stack's Prometheus. Default: 1 s each.
	ScrapeInterval, EvaluationInterval time.Duration
	// AlertWebhookURL is the receiver the stack's Alertmanager sends every alert group to
	// (Alertmanager's webhook format, resolved notifications too); empty: alerts are
	// dropped. AlertWebhookTokenFile, when set, holds the bearer token it sends.
	// Stack.SetAlertWebhook changes both on a running stack.
	AlertWebhookURL, AlertWebhookTokenFile string
	// AlertGroupWait, AlertGroupInterval and AlertRepeatInterval of the Alertmanager
	// route. Default: 1 s, 1 s and 1 h.
	AlertGroupWait, AlertGroupInterval, AlertRepeatInterval time.Duration
	// Log receives one line per component as it becomes ready. Nil: silent.
	Log io.Writer
	// Timeout bounds the whole start. Default: 90 s.
	Timeout time.Duration

	// beforeStart, when set, is called before each attempt to start a component, with the
	// ports it is about to get (tests take one of them to prove the start survives it).
	beforeStart func(component string, pt stackPorts)
}

// Stack is a running dev stack. Its fields are what Env reports.
type Stack struct {
	Dir string

	TemporalAddress string // 127.0.0.1:P
	WebUI           string // http://127.0.0.1:U, or "" when headless
	ConsulHTTPAddr  string // http://127.0.0.1:P
	PGDSN           string // DSN of the first database (payments)
	PGAdminDSN      string // DSN of the "postgres" database, for creating more databases
	PGDir           string
	HAProxySocket   string // unix socket path, runtime API level admin
	HAProxyAdmin    string // 127.0.0.1:P, runtime API level admin over TCP
	HAProxyURL      string // http://127.0.0.1:P, the frontend
	HAProxyStatsURL string
	DemoStableURL   string
	DemoCanaryURL   string
	// Monitoring: HAProxy's exporter (http://127.0.0.1:P/metrics), Prometheus and
	// Alertmanager (http://127.0.0.1:P).
	HAProxyMetricsURL string
	PrometheusURL     string
	AlertmanagerURL   string

	// Attached is true when this Stack came from Attach (or StartOrAttach found a running
	// one): this process did not start it. Callers that reuse a stack usually leave it running.
	Attached bool

	opts Options
	// pgUp is closed once PostgreSQL answers during Start: the demo API waits for it.
	pgUp   chan struct{}
	mu     sync.Mutex
	procs  []*proc
	pgUser *osUser
	// ports and bins are kept so that a component can be started again on the same ports
	// (StartComponent); ports is also written to <Dir>/ports for a Stack from Load.
	ports *stackPorts
	bins  *binaries
	// up is set once Start has finished: processes spawned later (StartComponent) append
	// to their log instead of truncating it.
	up bool
}

// Start starts a stack in opts.Dir and waits until every component answers. On error,
// whatever was started is stopped again. It refuses (ErrAlreadyRunning) when the directory
// already has a live stack: use Attach or StartOrAttach to reuse it.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	if opts.Dir == "" {
		return nil, errors.New("devstack: Options.Dir is required")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	opts.Dir = dir
	if len(opts.Databases) == 0 {
		opts.Databases = []string{DefaultDBName}
	}
	if opts.StableVersion == "" {
		opts.StableVersion = "v1"
	}
	if opts.CanaryVersion == "" {
		opts.CanaryVersion = "v2"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 90 * time.Second
	}
	opts.monitoringDefaults()

	if procs, err := readPids(filepath.Join(dir, "pids")); err == nil {
		var live []string
		for _, p := range procs {
			if p.alive() {
				live = append(live, fmt.Sprintf("%s (pid %d)", p.name, p.pid))
			}
		}
		if len(live) > 0 {
			return nil, fmt.Errorf("%w: %s: %s (stop it first, or attach to it)", ErrAlreadyRunning, dir, strings.Join(live, ", "))
		}
	}

	bins, err := findBinaries(opts.DemoBinary == "")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		return nil, err
	}
	// Remove what describes a previous run before anything else can read it.
	for _, f := range []string{"env", "pids", "ports", "haproxy.state"} {
		_ = os.Remove(filepath.Join(dir, f))
	}
	if opts.Fresh {
		_ = os.Remove(filepath.Join(dir, "temporal.db"))
		_ = os.RemoveAll(filepath.Join(dir, "consul"))
	}

	// temporal: grpc, http, metrics, ui; consul: http, serf lan, serf wan, server;
	// postgres; demo: stable, canary; haproxy: frontend, admin, stats, metrics;
	// prometheus; alertmanager.
	ports, err := freePorts(17, nil)
	if err != nil {
		return nil, err
	}
	s := &Stack{Dir: dir, opts: opts, bins: &bins}
	s.ports = &stackPorts{
		Temporal: ports[0], TemporalHTTP: ports[1], TemporalMetrics: ports[2], TemporalUI: ports[3],
		ConsulHTTP: ports[4], ConsulSerfLAN: ports[5], ConsulSerfWAN: ports[6], ConsulServer: ports[7],
		PG:         ports[8],
		DemoStable: ports[9], DemoCanary: ports[10],
		HAProxy: ports[11], HAProxyAdmin: ports[12], HAProxyStats: ports[13], HAProxyMetrics: ports[14],
		Prometheus: ports[15], Alertmanager: ports[16],
	}
	for _, name := range startOrder {
		s.component(name).addrs(*s.ports)
	}
	s.HAProxySocket = filepath.Join(dir, "haproxy.sock")

	defer func() {
		if err != nil {
			if stopErr := s.Stop(); stopErr != nil {
				err = fmt.Errorf("%w (and stopping what had started: %v)", err, stopErr)
			}
		}
	}()

	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	run := func(name string) error {
		return s.timed(start, name, func() error { return s.startComponent(gctx, s.component(name), bins) })
	}
	g.Go(func() error { return run(ComponentTemporal) })
	g.Go(func() error { return run(ComponentConsul) })
	// The demo API writes to PostgreSQL: it starts once the database is up (its build runs
	// meanwhile; startDemo waits for pgUp).
	s.pgUp = make(chan struct{})
	g.Go(func() error {
		if err := run(ComponentPostgres); err != nil {
			return err
		}
		close(s.pgUp)
		return nil
	})
	amUp := make(chan struct{})
	g.Go(func() error {
		if err := run(ComponentAlertmanager); err != nil {
			return err
		}
		close(amUp)
		return nil
	})
	g.Go(func() error {
		// HAProxy fronts the demo API: its configuration needs the demo's final ports.
		if err := run(componentDemo); err != nil {
			return err
		}
		if err := run(ComponentHAProxy); err != nil {
			return err
		}
		// Prometheus scrapes both and sends to Alertmanager: it needs their final ports.
		select {
		case <-amUp:
		case <-gctx.Done():
			return gctx.Err()
		}
		return run(ComponentPrometheus)
	})
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("devstack: start timed out after %v: %w (logs in %s)", opts.Timeout, err, filepath.Join(dir, "logs"))
		}
		return nil, err
	}
	if err := s.WriteEnv(filepath.Join(dir, "env")); err != nil {
		return nil, err
	}
	// After the start: a component that lost the race for a port has moved to others.
	if err := writePorts(filepath.Join(dir, "ports"), s.portsNow()); err != nil {
		return nil, err
	}
	s.logf("stack up in %.1fs: env in %s", time.Since(start).Seconds(), filepath.Join(dir, "env"))
	s.mu.Lock()
	s.up = true
	s.mu.Unlock()
	return s, nil
}

// startOrder lists the components in the order Start reports them.
var startOrder = []string{ComponentTemporal, ComponentConsul, ComponentPostgres, componentDemo, ComponentHAProxy,
	ComponentAlertmanager, ComponentPrometheus}

type stackPorts struct {
	Temporal        int `json:"temporal"`
	TemporalHTTP    int `json:"temporalHTTP"`
	TemporalMetrics int `json:"temporalMetrics"`
	TemporalUI      int `json:"temporalUI"`
	ConsulHTTP      int `json:"consulHTTP"`
	ConsulSerfLAN   int `json:"consulSerfLAN"`
	ConsulSerfWAN   int `json:"consulSerfWAN"`
	ConsulServer    int `json:"consulServer"`
	PG              int `json:"pg"`
	DemoStable      int `json:"demoStable"`
	DemoCanary      int `json:"demoCanary"`
	HAProxy         int `json:"haproxy"`
	HAProxyAdmin    int `json:"haproxyAdmin"`
	HAProxyStats    int `json:"haproxyStats"`
	HAProxyMetrics  int `json:"haproxyMetrics"`
	Prometheus      int `json:"prometheus"`
	Alertmanager    int `json:"alertmanager"`
}

func hostPort(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func (s *Stack) timed(start time.Time, what string, f func() error) error {
	if err := f(); err != nil {
		return fmt.Errorf("devstack: %s: %w", what, err)
	}
	s.logf("%-9s ready after %.1fs", what, time.Since(start).Seconds())
	return nil
}

func (s *Stack) logf(format string, args ...any) {
	if s.opts.Log != nil {
		fmt.Fprintf(s.opts.Log, "devstack: "+format+"\n", args...)
	}
}

// spawn starts a process of this stack and records it in the pids file at once, so that
// even a half-started stack can be stopped from another process.
func (s *Stack) spawn(sp spawnSpec) (*proc, error) {
	sp.detach = s.opts.Detach
	s.mu.Lock()
	sp.appendLog = s.up
	s.mu.Unlock()
	p, err := spawn(filepath.Join(s.Dir, "logs"), sp)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.procs = append(s.procs, p)
	return p, writePids(filepath.Join(s.Dir, "pids"), s.procs)
}

// forget drops a process that has exited during start from the stack and its pids file,
// before the component is started again.
func (s *Stack) forget(p *proc) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.procs = slices.DeleteFunc(s.procs, func(q *proc) bool { return q == p })
	return writePids(filepath.Join(s.Dir, "pids"), s.procs)
}

// Env returns the stack's addresses under the keys of the Env* constants.
func (s *Stack) Env() map[string]string {
	return map[string]string{
		EnvTemporalAddress:   s.TemporalAddress,
		EnvTemporalNamespace: Namespace,
		EnvWebUI:             s.WebUI,
		EnvConsulHTTPAddr:    s.ConsulHTTPAddr,
		EnvPGDSN:             s.PGDSN,
		EnvPGAdminDSN:        s.PGAdminDSN,
		EnvPGDir:             s.PGDir,
		EnvHAProxySocket:     s.HAProxySocket,
		EnvHAProxyAdminAddr:  s.HAProxyAdmin,
		EnvHAProxyURL:        s.HAProxyURL,
		EnvHAProxyStatsURL:   s.HAProxyStatsURL,
		EnvHAProxyBackend:    Backend,
		EnvDemoStableURL:     s.DemoStableURL,
		EnvDemoCanaryURL:     s.DemoCanaryURL,
		EnvStackDir:          s.Dir,
		EnvHAProxyMetricsURL: s.HAProxyMetricsURL,
		EnvPrometheusURL:     s.PrometheusURL,
		EnvAlertmanagerURL:   s.AlertmanagerURL,
	}
}

// WriteEnv writes Env as sorted KEY=VALUE lines (mode 0600: it holds the database
// password). The file can be sourced by a shell (`set -a; . .stack/env; set +a`), read by
// make's include, or by ReadEnv.
func (s *Stack) WriteEnv(path string) error {
	env := s.Env()
	var b strings.Builder
	b.WriteString("# rollbook dev stack — written by internal/devstack; load with: set -a; . " + path + "; set +a\n")
	for _, k := range slices.Sorted(maps.Keys(env)) {
		fmt.Fprintf(&b, "%s=%s\n", k, shellValue(env[k]))
	}
	return writeFileAtomic(path, []byte(b.String()), 0o600)
}

// shellValue quotes a value only when a shell would need it.
func shellValue(v string) string {
	if strings.IndexFunc(v, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/:._-@?=&%+,", r))
	}) < 0 {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// ReadEnv parses a file written by WriteEnv (KEY=VALUE lines, # comments, optional
// `export ` and single or double quotes).
func ReadEnv(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s:%d: want KEY=VALUE", path, i+1)
		}
		if len(v) >= 2 && (v[0] == '\'' && v[len(v)-1] == '\'' || v[0] == '"' && v[len(v)-1] == '"') {
			v = strings.ReplaceAll(v[1:len(v)-1], `'\''`, "'")
		}
		env[k] = v
	}
	return env, nil
}

// PIDs returns the PID of every process the stack runs, by name (temporal, consul,
// postgres, demo-supervisor, haproxy). The demo API instances are the supervisor's children.
func (s *Stack) PIDs() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]int, len(s.procs))
	for _, p := range s.procs {
		m[p.name] = p.pid
	}
	return m
}

// Stop stops the stack's processes — only those it started or found in its pids file, by
// PID, after checking each PID still runs the same executable: SIGTERM, then SIGKILL after a
// grace period (PostgreSQL: SIGINT, a fast shutdown like `pg_ctl stop -m fast`, then SIGQUIT).
// It removes the env and pids files; data and logs stay unless RemoveOnStop was set.
// Stopping a stopped stack is a no-op.
func (s *Stack) Stop() error {
	s.mu.Lock()
	procs := slices.Clone(s.procs)
	s.mu.Unlock()

	// Like a graceful HAProxy restart: the state file then holds the weights of the moment
	// the stack stopped, for whoever inspects it. (Start begins from the configured weights
	// all the same: a new stack starts with stable at 100 %.)
	for _, p := range procs {
		if p.name == ComponentHAProxy && p.alive() {
			if err := s.SaveHAProxyState(); err != nil {
				s.logf("%v", err)
			}
		}
	}

	var wg sync.WaitGroup
	errs := make([]error, len(procs))
	for i, p := range procs {
		wg.Go(func() { errs[i] = stopProc(p) })
	}
	wg.Wait()
	err := errors.Join(errs...)
	if err == nil {
		s.mu.Lock()
		s.procs = nil
		s.mu.Unlock()
		for _, f := range []string{"env", "pids", "haproxy.sock"} {
			_ = os.Remove(filepath.Join(s.Dir, f))
		}
		if s.opts.RemoveOnStop {
			err = removeStackDir(s.Dir, s.PGDir)
		}
	}
	return err
}

func isWithin(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// Load reads the stack recorded in dir (its pids file and, when present, its env file)
// without checking that anything runs: use it to Stop or inspect a stack started by another
// process. It returns an error wrapping ErrNotRunning when dir has no pids file.
func Load(dir string) (*Stack, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	procs, err := readPids(filepath.Join(dir, "pids"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w in %s", ErrNotRunning, dir)
		}
		return nil, err
	}
	env, err := ReadEnv(filepath.Join(dir, "env"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	s := stackFromEnv(env)
	s.Dir, s.opts.Dir, s.procs, s.Attached = dir, dir, procs, true
	s.loaded(dir)
	return s, nil
}

// loaded prepares a Stack read from dir for StartComponent: its ports, and detached
// processes, since the stack belongs to the process that started it (or to nobody, after
// `stack up`), not to this one.
func (s *Stack) loaded(dir string) {
	s.opts.Detach = true
	s.up = true
	// What Start was given, as far as a restart needs it: a Temporal server started with
	// its Web UI comes back with it, and PostgreSQL with the database of ROLLBOOK_PG_DSN
	// (the others exist in the cluster already).
	s.opts.WebUI = s.WebUI != ""
	if u, err := url.Parse(s.PGDSN); err == nil && strings.TrimPrefix(u.Path, "/") != "" {
		s.opts.Databases = []string{strings.TrimPrefix(u.Path, "/")}
	} else {
		s.opts.Databases = []string{DefaultDBName}
	}
	if pt, err := readPorts(filepath.Join(dir, "ports")); err == nil {
		s.ports = pt
	}
}

func stackFromEnv(env map[string]string) *Stack {
	return &Stack{
		Dir:             env[EnvStackDir],
		TemporalAddress: env[EnvTemporalAddress],
		WebUI:           env[EnvWebUI],
		ConsulHTTPAddr:  env[EnvConsulHTTPAddr],
		PGDSN:           env[EnvPGDSN],
		PGAdminDSN:      env[EnvPGAdminDSN],
		PGDir:           env[EnvPGDir],
		HAProxySocket:   env[EnvHAProxySocket],
		HAProxyAdmin:    env[EnvHAProxyAdminAddr],
		HAProxyURL:      env[EnvHAProxyURL],
		HAProxyStatsURL: env[EnvHAProxyStatsURL],
		DemoStableURL:   env[EnvDemoStableURL],
		DemoCanaryURL:   env[EnvDemoCanaryURL],

		HAProxyMetricsURL: env[EnvHAProxyMetricsURL],
		PrometheusURL:     env[EnvPrometheusURL],
		AlertmanagerURL:   env[EnvAlertmanagerURL],
	}
}

// Attach returns the stack described by an env file written by Start (for example
// .stack/env) after checking that every process in its pids file still runs and that every
// component answers; otherwise an error wrapping ErrNotRunning. The returned Stack has
// Attached set: its Stop stops the stack all the same.
func Attach(envFile string) (*Stack, error) {
	env, err := ReadEnv(envFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s does not exist", ErrNotRunning, envFile)
		}
		return nil, err
	}
	dir := env[EnvStackDir]
	if dir == "" {
		dir = filepath.Dir(envFile)
	}
	s, err := Load(dir)
	if err != nil {
		return nil, err
	}
	if s.TemporalAddress == "" { // envFile is not <dir>/env
		loaded := s
		s = stackFromEnv(env)
		s.Dir, s.opts.Dir, s.procs, s.Attached = loaded.Dir, loaded.Dir, loaded.procs, true
		s.loaded(s.Dir)
	}
	if dead := s.Dead(); len(dead) > 0 {
		return nil, fmt.Errorf("%w: %s: not running: %s", ErrNotRunning, s.Dir, strings.Join(dead, ", "))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Check(ctx); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotRunning, s.Dir, err)
	}
	return s, nil
}

// Dead lists the stack's processes that no longer run, as "name (pid N)".
func (s *Stack) Dead() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var dead []string
	for _, p := range s.procs {
		if !p.alive() {
			dead = append(dead, fmt.Sprintf("%s (pid %d)", p.name, p.pid))
		}
	}
	return dead
}

// Remove deletes the stack directory and the PostgreSQL directory (which may live outside
// it, see Options.Dir). It refuses while a process of the stack still runs.
func (s *Stack) Remove() error {
	s.mu.Lock()
	for _, p := range s.procs {
		if p.alive() {
			s.mu.Unlock()
			return fmt.Errorf("devstack: %s (pid %d) still runs: stop the stack first", p.name, p.pid)
		}
	}
	s.mu.Unlock()
	return removeStackDir(s.Dir, s.PGDir)
}

func removeStackDir(dir, pgDir string) error {
	if pgDir == "" {
		if target, err := os.Readlink(filepath.Join(dir, "postgres")); err == nil {
			pgDir = target
		}
	}
	var err error
	if pgDir != "" && !isWithin(pgDir, dir) && strings.HasPrefix(filepath.Base(pgDir), "rollbook-pg-") {
		err = os.RemoveAll(pgDir)
	}
	return errors.Join(err, os.RemoveAll(dir))
}

// StartOrAttach attaches to the stack of envFile when it is alive, and otherwise starts a
// new one with opts. Check Stack.Attached to know whether this process owns it.
func StartOrAttach(ctx context.Context, envFile string, opts Options) (*Stack, error) {
	if s, err := Attach(envFile); err == nil {
		return s, nil
	}
	return Start(ctx, opts)
}

// Check asks every component once whether it answers.
func (s *Stack) Check(ctx context.Context) error {
	var errs []error
	add := func(what string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	add("temporal", temporalReady(ctx, s.TemporalAddress))
	add("consul", consulReady(ctx, s.ConsulHTTPAddr))
	add("postgres", pgPing(ctx, s.PGDSN))
	add("demo stable", httpOK(ctx, s.DemoStableURL+"/healthz"))
	add("demo canary", httpOK(ctx, s.DemoCanaryURL+"/healthz"))
	_, err := s.HAProxyCommand("show info")
	add("haproxy runtime API", err)
	add("haproxy frontend", httpOK(ctx, s.HAProxyURL+"/healthz"))
	// A stack started before monitoring was added has no such address.
	if s.PrometheusURL != "" {
		add("haproxy exporter", httpOK(ctx, s.HAProxyMetricsURL))
		add("prometheus", httpOK(ctx, s.PrometheusURL+"/-/ready"))
		add("alertmanager", httpOK(ctx, s.AlertmanagerURL+"/-/ready"))
	}
	return errors.Join(errs...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
