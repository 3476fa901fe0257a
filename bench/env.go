package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/internal/router/haproxy"
)

// child is a process this benchmark started; it gets SIGTERM if we die.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func startChild(name, logPath, dir string, env []string, exe string, args ...string) (*child, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(exe, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to this one process (by PID), then SIGKILL after grace.
func (c *child) stop(grace time.Duration) {
	if c == nil || c.exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// memoryKB reads a field of /proc/<pid>/status (VmHWM: peak RSS, VmRSS).
func memoryKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(strings.TrimPrefix(line, field+":"))
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("%s not in /proc/%d/status", field, pid)
}

// cpuSeconds reads a process's user + system CPU time from /proc/<pid>/stat.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// After the command: state is field 3 of stat, utime 14 and stime 15.
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100 // USER_HZ is 100 on Linux
}

// ---- the benchmark's own HAProxy ----

// benchHAProxy is a second HAProxy that the benchmark starts next to the dev
// stack's, fronting the same two demo API instances. It has what the dev
// stack's does not: a backend with retry-to-stable on 500 and one without
// (bad-canary runs), and one backend per deployment for the concurrent runs.
type benchHAProxy struct {
	*child
	socket         string
	rt             *haproxy.Router // its runtime API, for readiness and counters
	retryOnURL     string
	retryOffURL    string
	observeURL     string
	concurrentBack []string
}

const benchHAProxyTmpl = `# Written by rollbook's benchmark (bench/env.go) for one run.
global
    maxconn 8192
    stats socket {{.Socket}} mode 600 level admin
    stats timeout 30s

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 10s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 5s

frontend fe_retry_on
    bind {{.RetryOnAddr}}
    default_backend be_retry_on

frontend fe_retry_off
    bind {{.RetryOffAddr}}
    default_backend be_retry_off

frontend fe_observe
    bind {{.ObserveAddr}}
    default_backend be_observe

# Retry to stable: an idempotent request that got a 5xx (or no answer) from one server is
# sent again, to another server (redispatch on every retry; roundrobin avoids the server that
# just failed). Requests that are not GET or HEAD are never replayed.
backend be_retry_on
    balance roundrobin
    option redispatch 1
    retries 2
    retry-on conn-failure empty-response response-timeout 500 502 503 504
    acl idempotent_write req.hdr(Idempotency-Key) -m len 1:
    http-request disable-l7-retry if !METH_GET !METH_HEAD !idempotent_write
    server stable {{.Stable}} weight 100
    server canary {{.Canary}} weight 0

# No retry to stable: HAProxy's defaults (connection failures only are retried, same server).
backend be_retry_off
    balance roundrobin
    server stable {{.Stable}} weight 100
    server canary {{.Canary}} weight 0

# be_retry_off plus what the dev stack's HAProxy does (internal/devstack/haproxy.cfg.tmpl):
# observe layer7 on the canary only, so HAProxy itself takes a canary that fails 5 requests
# in a row out of rotation; health checks bring it back (rise 2). Nothing is retried here, so
# every request counts as one that cannot be retried (an unkeyed write).
backend be_observe
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server check inter 1s fall 2 rise 2
    timeout check 2s
    server stable {{.Stable}} weight 100
    server canary {{.Canary}} weight 0 observe layer7 error-limit 5 on-error mark-down
{{range .Concurrent}}
backend {{.}}
    balance roundrobin
    server stable {{$.Stable}} weight 100
    server canary {{$.Canary}} weight 0
{{end}}`

func startBenchHAProxy(ctx context.Context, dir, stableURL, canaryURL string, concurrent int) (*benchHAProxy, error) {
	hostOf := func(u string) (string, error) {
		p, err := url.Parse(u)
		if err != nil || p.Host == "" {
			return "", fmt.Errorf("bad demo API URL %q", u)
		}
		return p.Host, nil
	}
	stable, err := hostOf(stableURL)
	if err != nil {
		return nil, err
	}
	canary, err := hostOf(canaryURL)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	h := &benchHAProxy{socket: filepath.Join(dir, "bh.sock")}
	if len(h.socket) > 100 {
		return nil, fmt.Errorf("work directory path too long for a unix socket: %s", h.socket)
	}
	if h.rt, err = haproxy.New(h.socket); err != nil {
		return nil, err
	}
	for i := 0; i < concurrent; i++ {
		h.concurrentBack = append(h.concurrentBack, fmt.Sprintf("be_c_%03d", i))
	}
	on, off := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	obs := fmt.Sprintf("127.0.0.1:%d", ports[2])
	h.retryOnURL, h.retryOffURL, h.observeURL = "http://"+on, "http://"+off, "http://"+obs
	var cfg bytes.Buffer
	if err := template.Must(template.New("cfg").Parse(benchHAProxyTmpl)).Execute(&cfg, map[string]any{
		"Socket": h.socket, "RetryOnAddr": on, "RetryOffAddr": off, "ObserveAddr": obs,
		"Stable": stable, "Canary": canary, "Concurrent": h.concurrentBack,
	}); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "bench-haproxy.cfg")
	if err := os.WriteFile(cfgPath, cfg.Bytes(), 0o644); err != nil {
		return nil, err
	}
	exe, err := exec.LookPath("haproxy")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/haproxy"); serr == nil {
			exe = "/usr/sbin/haproxy"
		} else {
			return nil, errors.New("haproxy not found (make tools installs it)")
		}
	}
	if out, err := exec.Command(exe, "-c", "-f", cfgPath).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("bench haproxy config invalid: %v\n%s", err, out)
	}
	h.child, err = startChild("bench-haproxy", filepath.Join(dir, "bench-haproxy.log"), dir, os.Environ(), exe, "-db", "-f", cfgPath)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		servers, err := h.rt.Servers(ctx, "be_retry_on")
		if _, ok := servers["canary"]; err == nil && ok {
			return h, nil
		}
		if h.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			h.stop(5 * time.Second)
			logText, _ := os.ReadFile(filepath.Join(dir, "bench-haproxy.log"))
			return nil, fmt.Errorf("bench haproxy did not come up: %v; its log:\n%s", err, tailLines(string(logText), 15))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ---- the rollbook worker, as a separate process ----

const workerConfigTmpl = `# Written by rollbook's benchmark for one run.
taskQueue: {{.TaskQueue}}
databases:
  payments: {dialect: postgres, dsnEnv: ROLLBOOK_PG_DSN}
routers:
  edge: {driver: haproxy, address: {{.EdgeSocket}}, allowedBackends: [{{.EdgeBackend}}]}
  bench: {driver: haproxy, address: {{.BenchSocket}}, allowedBackends: [{{.BenchBackends}}]}
consul:
  allowedPrefixes: [rollbook-bench/]
endpoints:
  edge: {urlEnv: ROLLBOOK_HAPROXY_URL}
  canary: {urlEnv: ROLLBOOK_DEMO_CANARY_URL}
# The example runbook's PromQL checks (the false-rollback phase) read the
# stack's Prometheus.
prometheus:
  default: {urlEnv: ROLLBOOK_PROMETHEUS_URL}
log:
  level: warn
  format: json
`

// startWorker builds ./workers/rollbook-worker and runs it with a config
// generated for this run, on its own task queue. It returns once the worker polls.
func startWorker(ctx context.Context, tc client.Client, root, dir string, stackEnv map[string]string, taskQueue, edgeSocket, benchSocket string, benchBackends []string) (*child, error) {
	bin := filepath.Join(dir, "rollbook-worker")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./workers/rollbook-worker")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./workers/rollbook-worker: %v\n%s", err, out)
	}
	var cfg bytes.Buffer
	if err := template.Must(template.New("w").Parse(workerConfigTmpl)).Execute(&cfg, map[string]string{
		"TaskQueue": taskQueue, "EdgeSocket": edgeSocket, "BenchSocket": benchSocket,
		// The worker refuses backends its config does not list.
		"EdgeBackend": devstack.Backend, "BenchBackends": strings.Join(benchBackends, ", "),
	}); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "worker.yaml")
	if err := os.WriteFile(cfgPath, cfg.Bytes(), 0o644); err != nil {
		return nil, err
	}
	env := os.Environ()
	for k, v := range stackEnv {
		env = append(env, k+"="+v)
	}
	w, err := startChild("worker", filepath.Join(dir, "worker.log"), root, env, bin, "-config", cfgPath)
	if err != nil {
		return nil, err
	}
	if err := waitPollers(ctx, tc, taskQueue, w); err != nil {
		w.stop(5 * time.Second)
		return nil, fmt.Errorf("%w (log %s)", err, filepath.Join(dir, "worker.log"))
	}
	return w, nil
}

// waitPollers waits until some worker polls the task queue for workflow and
// activity tasks.
func waitPollers(ctx context.Context, tc client.Client, taskQueue string, w *child) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		for _, tt := range []enums.TaskQueueType{enums.TASK_QUEUE_TYPE_WORKFLOW, enums.TASK_QUEUE_TYPE_ACTIVITY} {
			resp, err := tc.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
				Namespace: "default", TaskQueue: &taskqueue.TaskQueue{Name: taskQueue, Kind: enums.TASK_QUEUE_KIND_NORMAL}, TaskQueueType: tt,
			})
			if err != nil || len(resp.GetPollers()) == 0 {
				ok = false
			}
		}
		if ok {
			return nil
		}
		if w != nil && w.exited() {
			return errors.New("the worker exited")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no worker polls task queue %s after 30 s", taskQueue)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
