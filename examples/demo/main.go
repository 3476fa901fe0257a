// Command demo is `make demo`: on the dev stack (make stack-up) it starts a
// rollbook worker, sends steady HTTP load through HAProxy, runs a good
// deployment of runbooks/payments-api.yaml (succeeds) and a bad one (the
// canary starts failing → verification fails → automatic rollback), and
// prints what happened: outcomes, time from failure to traffic restored,
// schema / keys / weights before and after, failed client requests, and the
// Web UI links. The stack keeps running for inspection.
package main

import (
	"bytes"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	_ "github.com/jackc/pgx/v5/stdlib"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/rollbook/rollbook/internal/cli"
	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/internal/worker"
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
	obs   *observer
	load  *loadGen
}

func run(envFile, runbookPath string, rps int) error {
	st, err := devstack.Attach(envFile)
	if err != nil {
		return fmt.Errorf("no dev stack at %s (run `make stack-up` first): %w", envFile, err)
	}
	for k, v := range st.Env() {
		os.Setenv(k, v)
	}
	d := &demo{stack: st}
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
	d.obs = startObserver(st)
	defer d.obs.stop()
	d.load = startLoad(st.HAProxyURL+"/api/payments", rps)
	defer d.load.stop()
	time.Sleep(time.Second)

	fmt.Printf("== rollbook demo: %d requests/s through HAProxy at %s ==\n\n", rps, st.HAProxyURL)

	// 1. A good release.
	goodBefore := d.snapshot()
	fmt.Println("-- deployment 1: payments-api v2 (healthy canary) --")
	goodCode, goodOut := d.deploy(runbookPath, "v2")
	goodAfter := d.snapshot()
	goodReq, goodFail := d.load.take()

	// Back to the starting point, so the second deployment shows a full
	// rollback of schema, keys and weights.
	if err := d.reset(); err != nil {
		return fmt.Errorf("resetting between deployments: %w", err)
	}
	time.Sleep(500 * time.Millisecond)
	d.load.take()

	// 2. A bad release: the canary starts failing once it takes traffic.
	badBefore := d.snapshot()
	fmt.Println("\n-- deployment 2: payments-api v3 (the canary starts returning errors) --")
	var badAt time.Time
	go func() {
		d.obs.waitFor(func(w weights) bool { return w.canary > 0 })
		setBad(st.DemoCanaryURL, 0.5)
		badAt = time.Now()
		fmt.Printf("   %s   demo: canary v3 now fails 50%% of requests\n", badAt.Format("15:04:05"))
	}()
	badCode, badOut := d.deploy(runbookPath, "v3")
	badAfter := d.snapshot()
	badReq, badFail := d.load.take()
	setBad(st.DemoCanaryURL, 0)
	restoredAt := d.obs.firstAfter(badAt, func(w weights) bool { return w.canary == 0 })

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
	fmt.Printf("\nclient requests: deployment 1: %d sent, %d failed; deployment 2: %d sent, %d failed\n",
		goodReq, goodFail, badReq, badFail)
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

// reset puts the demo's slice of the stack in its starting state: no
// ledger schema, the flags off, all traffic on stable, the canary healthy.
func (d *demo) reset() error {
	if _, err := d.db.Exec(`DROP TABLE IF EXISTS ledger_entries; DROP TABLE IF EXISTS goose_db_version`); err != nil {
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
	w := d.obs.current()
	s.weights = fmt.Sprintf("%d / %d", w.stable, w.canary)
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
		u = fmt.Sprintf("%s/admin/bad?errorRate=%g", canaryURL, rate)
	}
	if resp, err := http.Post(u, "application/json", nil); err == nil {
		resp.Body.Close()
	}
}

// weights are the live HAProxy weights of the two servers.
type weights struct{ stable, canary int }

// observer polls the HAProxy runtime API independently of rollbook, so the
// times it reports are what really happened at the gateway.
type observer struct {
	st   *devstack.Stack
	mu   sync.Mutex
	log  []sample
	done chan struct{}
	wg   sync.WaitGroup
}

type sample struct {
	at time.Time
	w  weights
}

func startObserver(st *devstack.Stack) *observer {
	o := &observer{st: st, done: make(chan struct{})}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		for {
			select {
			case <-o.done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			w, err := o.read()
			if err != nil {
				continue
			}
			o.mu.Lock()
			if n := len(o.log); n == 0 || o.log[n-1].w != w {
				o.log = append(o.log, sample{time.Now(), w})
			}
			o.mu.Unlock()
		}
	}()
	return o
}

func (o *observer) read() (weights, error) {
	out, err := o.st.HAProxyCommand("get weight payments_api/stable; get weight payments_api/canary")
	if err != nil {
		return weights{}, err
	}
	f := strings.Fields(out)
	// "100 (initial 256)\n0 (initial 0)"
	if len(f) < 5 {
		return weights{}, fmt.Errorf("unexpected answer %q", out)
	}
	s, err1 := strconv.Atoi(f[0])
	c, err2 := strconv.Atoi(f[3])
	if err1 != nil || err2 != nil {
		return weights{}, fmt.Errorf("unexpected answer %q", out)
	}
	return weights{s, c}, nil
}

func (o *observer) current() weights {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.log) == 0 {
		w, _ := o.read()
		return w
	}
	return o.log[len(o.log)-1].w
}

func (o *observer) waitFor(cond func(weights) bool) {
	for !cond(o.current()) {
		time.Sleep(2 * time.Millisecond)
	}
}

func (o *observer) firstAfter(t time.Time, cond func(weights) bool) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.log {
		if s.at.After(t) && cond(s.w) {
			return s.at
		}
	}
	return time.Time{}
}

func (o *observer) stop() {
	close(o.done)
	o.wg.Wait()
}

// loadGen sends GET requests at a steady rate and counts client-visible
// failures (non-2xx, connection errors, timeouts).
type loadGen struct {
	requests, failures atomic.Int64
	done               chan struct{}
	wg                 sync.WaitGroup
}

func startLoad(url string, rps int) *loadGen {
	l := &loadGen{done: make(chan struct{})}
	c := &http.Client{Timeout: 2 * time.Second}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(time.Second / time.Duration(rps))
		defer t.Stop()
		for {
			select {
			case <-l.done:
				return
			case <-t.C:
				l.wg.Add(1)
				go func() {
					defer l.wg.Done()
					l.requests.Add(1)
					resp, err := c.Get(url)
					if err != nil {
						l.failures.Add(1)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode >= 300 {
						l.failures.Add(1)
					}
				}()
			}
		}
	}()
	return l
}

// take returns the counters since the last take and resets them.
func (l *loadGen) take() (int64, int64) {
	return l.requests.Swap(0), l.failures.Swap(0)
}

func (l *loadGen) stop() {
	close(l.done)
	l.wg.Wait()
}

var _ = workflows.WorkflowID
