package devstack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rollbook/rollbook/internal/router/haproxy"
	"github.com/rollbook/rollbook/runbook"
)

// The release supervisor is the dev stack's "platform": it owns the demo API's instances
// (one per target: stable and canary, each on its fixed port behind HAProxy) and replaces
// an instance with another version when asked. rollbook's exec release driver reaches it
// through the small command internal/devstack/cmd/demo-release (current, deploy, health),
// over a unix socket in the stack directory, the way a worker's operator would wrap a real
// deployer in a script.
//
// What a target runs survives a restart of the supervisor (or of the stack without Fresh):
// <Dir>/release/<target>.json holds its version and flags, as a real platform remembers what
// was deployed. The database keeps the schema that version runs on, so starting the stack
// again must not quietly go back to v1.
//
// Replacing an instance stops the old process (SIGTERM: the demo API finishes in-flight
// requests) and starts the new version on the same port. Requests HAProxy sends meanwhile
// fail to connect and are redispatched to the other server (option redispatch, retry-on
// conn-failure), but the runbooks release a target only while it has weight 0 (the canary
// before it takes traffic, the stable target after the canary took 100 %), so normally no
// request is on its way there. Health means: the instance answers /healthz with the version
// and HAProxy's own check has the server UP, so that moving traffic to it right after the
// release never meets a server HAProxy still counts as down.

// SupervisorSocket is the supervisor's unix socket, relative to the stack directory.
const SupervisorSocket = "release.sock"

// EnvReleaseFlagsPrefix + a version names the variable holding that version's demo API
// flags in the release command's environment (the versions table of the dev worker's exec
// configuration), e.g. DEMO_RELEASE_FLAGS_v3="-error-rate=0.5 -write-failure=both".
const EnvReleaseFlagsPrefix = "DEMO_RELEASE_FLAGS_"

// releaseFlags are the demo API flags a release may set: how the version behaves (its
// misbehaviour, and what it writes: -payment-events). The port, name and database stay the
// supervisor's.
var releaseFlags = []string{"-error-rate", "-latency-ms", "-write-failure", "-payment-events"}

// SupervisedTarget is one instance the supervisor runs.
type SupervisedTarget struct {
	Port int
	// Version is what the target runs when the state directory has nothing for it.
	Version string
}

// SupervisorConfig configures RunSupervisor.
type SupervisorConfig struct {
	// Dir is the stack directory: socket, state (release/) and logs (logs/demo-<target>.log).
	Dir string
	// DemoBinary is examples/demoapi, built.
	DemoBinary string
	// Env is added to the instances' environment (the database DSN).
	Env []string
	// HAProxySocket and Backend: where health reads whether HAProxy has the server UP.
	HAProxySocket, Backend string
	Targets                map[string]SupervisedTarget
}

// TargetState is what a target runs, as the supervisor reports and persists it.
type TargetState struct {
	Target  string   `json:"target"`
	Version string   `json:"version"`
	Flags   []string `json:"flags,omitempty"`
	// Key is the idempotency key of the deploy that put Version there.
	Key string `json:"key,omitempty"`
	PID int    `json:"pid,omitempty"`
	// Healthy and Detail are set by a health request.
	Healthy bool   `json:"healthy,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

// DeployRequest asks the supervisor to run Version (with Flags) on a target.
type DeployRequest struct {
	Version string   `json:"version"`
	Flags   []string `json:"flags,omitempty"`
	Key     string   `json:"key,omitempty"`
}

type supervised struct {
	mu    sync.Mutex // held for a whole deploy: one replacement per target at a time
	name  string
	port  int
	state TargetState
	cmd   *exec.Cmd
	done  chan struct{}
}

type supervisor struct {
	cfg     SupervisorConfig
	targets map[string]*supervised
}

// RunSupervisor starts every target at its recorded (or initial) version, serves release
// requests on <Dir>/release.sock until ctx ends, then stops the instances.
func RunSupervisor(ctx context.Context, cfg SupervisorConfig) error {
	if cfg.Dir == "" || cfg.DemoBinary == "" || len(cfg.Targets) == 0 {
		return errors.New("release supervisor: Dir, DemoBinary and Targets are required")
	}
	sv := &supervisor{cfg: cfg, targets: map[string]*supervised{}}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "release"), 0o755); err != nil {
		return err
	}
	defer sv.stopAll()
	for name, t := range cfg.Targets {
		if !runbook.ValidTargetName(name) || t.Port <= 0 {
			return fmt.Errorf("release supervisor: invalid target %q (port %d)", name, t.Port)
		}
		st := TargetState{Target: name, Version: t.Version}
		if b, err := os.ReadFile(sv.statePath(name)); err == nil {
			if err := json.Unmarshal(b, &st); err != nil {
				return fmt.Errorf("release supervisor: reading the state of target %s: %w", name, err)
			}
		}
		tg := &supervised{name: name, port: t.Port, state: st}
		sv.targets[name] = tg
		if err := sv.start(ctx, tg, st); err != nil {
			return fmt.Errorf("release supervisor: starting target %s at %s: %w", name, st.Version, err)
		}
	}
	sock := filepath.Join(cfg.Dir, SupervisorSocket)
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("release supervisor: %w", err)
	}
	defer os.Remove(sock)
	// Only this user (the worker's commands run as it) may release.
	if err := os.Chmod(sock, 0o600); err != nil {
		return fmt.Errorf("release supervisor: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /targets/{target}", sv.handleGet)
	mux.HandleFunc("GET /targets/{target}/health", sv.handleHealth)
	mux.HandleFunc("POST /targets/{target}/deploy", sv.handleDeploy)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (sv *supervisor) statePath(target string) string {
	return filepath.Join(sv.cfg.Dir, "release", target+".json")
}

// checkDeploy refuses a version or flags the demo API must not get.
func checkDeploy(r DeployRequest) error {
	if err := runbook.CheckVersion(r.Version); err != nil {
		return err
	}
	for _, f := range r.Flags {
		name, _, ok := strings.Cut(f, "=")
		if !ok || !slices.Contains(releaseFlags, name) {
			return fmt.Errorf("flag %q: want one of %s as -name=value", f, strings.Join(releaseFlags, " "))
		}
	}
	return nil
}

// start runs the demo API at st on tg's port and waits until it answers.
func (sv *supervisor) start(ctx context.Context, tg *supervised, st TargetState) error {
	logPath := filepath.Join(sv.cfg.Dir, "logs", "demo-"+tg.name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n==== release supervisor: %s starts version %s %v at %s ====\n", tg.name, st.Version, st.Flags, time.Now().Format(time.RFC3339Nano))
	args := append([]string{"-listen", hostPort(tg.port), "-version", st.Version, "-name", tg.name}, st.Flags...)
	cmd := exec.Command(sv.cfg.DemoBinary, args...)
	cmd.Env = append(os.Environ(), sv.cfg.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The instances die with the supervisor (which the stack stops by PID).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	tg.cmd, tg.done = cmd, done
	st.PID = cmd.Process.Pid
	tg.state = st
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		err := instanceVersion(ctx, tg.port, st.Version)
		if err == nil {
			break
		}
		select {
		case <-done:
			return fmt.Errorf("version %s exited at start; last lines of %s:\n%s", st.Version, logPath, tail(logPath, 10))
		case <-ctx.Done():
			return fmt.Errorf("version %s did not answer on port %d: %v", st.Version, tg.port, err)
		case <-time.After(30 * time.Millisecond):
		}
	}
	b, _ := json.MarshalIndent(TargetState{Target: st.Target, Version: st.Version, Flags: st.Flags, Key: st.Key}, "", "  ")
	return writeFileAtomic(sv.statePath(tg.name), b, 0o644)
}

// stop ends tg's instance gracefully (the demo API drains in-flight requests on SIGTERM).
func (tg *supervised) stop() {
	if tg.cmd == nil {
		return
	}
	select {
	case <-tg.done:
	default:
		_ = tg.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-tg.done:
		case <-time.After(10 * time.Second):
			_ = tg.cmd.Process.Kill()
			<-tg.done
		}
	}
	tg.cmd, tg.done = nil, nil
}

func (sv *supervisor) stopAll() {
	var wg sync.WaitGroup
	for _, tg := range sv.targets {
		wg.Go(func() {
			tg.mu.Lock()
			defer tg.mu.Unlock()
			tg.stop()
		})
	}
	wg.Wait()
}

// deploy replaces tg's instance with r. The same version with the same flags, running, is
// already there: nothing is restarted (a retried deploy, an idempotent key).
func (sv *supervisor) deploy(ctx context.Context, tg *supervised, r DeployRequest) (TargetState, error) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if tg.state.Version == r.Version && slices.Equal(tg.state.Flags, r.Flags) && tg.running() {
		return tg.state, nil
	}
	tg.stop()
	st := TargetState{Target: tg.name, Version: r.Version, Flags: r.Flags, Key: r.Key}
	if err := sv.start(ctx, tg, st); err != nil {
		return tg.state, err
	}
	return tg.state, nil
}

func (tg *supervised) running() bool {
	if tg.done == nil {
		return false
	}
	select {
	case <-tg.done:
		return false
	default:
		return true
	}
}

// health: the instance runs, answers /healthz with its version, and HAProxy has it UP.
func (sv *supervisor) health(ctx context.Context, tg *supervised) TargetState {
	tg.mu.Lock()
	st, running := tg.state, tg.running()
	tg.mu.Unlock()
	switch {
	case !running:
		st.Detail = "the instance is not running"
	default:
		if err := instanceVersion(ctx, tg.port, st.Version); err != nil {
			st.Detail = err.Error()
		} else if up, err := haproxyServerUp(sv.cfg.HAProxySocket, sv.cfg.Backend, tg.name); err != nil {
			st.Detail = "asking HAProxy: " + err.Error()
		} else if !up {
			st.Detail = fmt.Sprintf("HAProxy has %s/%s not UP yet (its health check)", sv.cfg.Backend, tg.name)
		} else {
			st.Healthy = true
		}
	}
	return st
}

// instanceVersion wants the instance on port to answer /healthz with version.
func instanceVersion(ctx context.Context, port int, version string) error {
	got, err := DemoVersion(ctx, "http://"+hostPort(port))
	if err != nil {
		return err
	}
	if got != version {
		return fmt.Errorf("/healthz on port %d reports %s, not %s", port, got, version)
	}
	return nil
}

// DemoVersion is the version a demo API instance at baseURL runs, from its
// /healthz. Tests and the benchmark deploy that version when they verify an
// instance they did not release, so that the example's PromQL checks (which
// judge only the series of the version being deployed) see its requests.
func DemoVersion(ctx context.Context, baseURL string) (string, error) {
	body, err := httpGet(ctx, baseURL+"/healthz")
	if err != nil {
		return "", err
	}
	var h struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(body, &h); err != nil {
		return "", fmt.Errorf("%s/healthz: %w", baseURL, err)
	}
	return h.Version, nil
}

// haproxyServerUp reads srv_op_state (2: running) of backend/server.
func haproxyServerUp(socket, backend, server string) (bool, error) {
	if socket == "" {
		return true, nil
	}
	rt, err := haproxy.New(socket)
	if err != nil {
		return false, err
	}
	servers, err := rt.Servers(context.Background(), backend)
	if err != nil {
		return false, err
	}
	s, ok := servers[server]
	if !ok {
		return false, fmt.Errorf("server %s not in backend %s", server, backend)
	}
	return s.Op == 2, nil
}

func (sv *supervisor) target(w http.ResponseWriter, r *http.Request) *supervised {
	tg := sv.targets[r.PathValue("target")]
	if tg == nil {
		names := make([]string, 0, len(sv.targets))
		for n := range sv.targets {
			names = append(names, n)
		}
		slices.Sort(names)
		writeSupervisorJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("unknown target %q (targets: %s)", r.PathValue("target"), strings.Join(names, ", "))})
	}
	return tg
}

func (sv *supervisor) handleGet(w http.ResponseWriter, r *http.Request) {
	if tg := sv.target(w, r); tg != nil {
		tg.mu.Lock()
		st := tg.state
		tg.mu.Unlock()
		writeSupervisorJSON(w, http.StatusOK, st)
	}
}

func (sv *supervisor) handleHealth(w http.ResponseWriter, r *http.Request) {
	if tg := sv.target(w, r); tg != nil {
		st := sv.health(r.Context(), tg)
		code := http.StatusOK
		if !st.Healthy {
			code = http.StatusServiceUnavailable
		}
		writeSupervisorJSON(w, code, st)
	}
}

func (sv *supervisor) handleDeploy(w http.ResponseWriter, r *http.Request) {
	tg := sv.target(w, r)
	if tg == nil {
		return
	}
	var req DeployRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeSupervisorJSON(w, http.StatusBadRequest, map[string]string{"error": "bad JSON: " + err.Error()})
		return
	}
	if err := checkDeploy(req); err != nil {
		writeSupervisorJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	// Not the request's context: a deploy the caller gave up on still finishes, so the
	// target never stays without an instance.
	st, err := sv.deploy(context.WithoutCancel(r.Context()), tg, req)
	if err != nil {
		writeSupervisorJSON(w, http.StatusInternalServerError, map[string]string{"error": fmt.Sprintf("deploying %s onto %s: %v", req.Version, tg.name, err)})
		return
	}
	writeSupervisorJSON(w, http.StatusOK, st)
}

func writeSupervisorJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// ReleaseClient talks to a stack's release supervisor.
type ReleaseClient struct {
	http *http.Client
}

// NewReleaseClient returns a client for the supervisor of the stack in dir.
func NewReleaseClient(dir string) *ReleaseClient {
	sock := filepath.Join(dir, SupervisorSocket)
	return &ReleaseClient{http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}}
}

// Current returns what target runs.
func (c *ReleaseClient) Current(ctx context.Context, target string) (TargetState, error) {
	var st TargetState
	_, err := c.do(ctx, http.MethodGet, "/targets/"+target, nil, &st)
	return st, err
}

// Health observes target once; an unhealthy target is a state with Healthy false.
func (c *ReleaseClient) Health(ctx context.Context, target string) (TargetState, error) {
	var st TargetState
	code, err := c.do(ctx, http.MethodGet, "/targets/"+target+"/health", nil, &st)
	if code == http.StatusServiceUnavailable {
		return st, nil
	}
	return st, err
}

// Deploy runs r on target and returns once the new instance answers.
func (c *ReleaseClient) Deploy(ctx context.Context, target string, r DeployRequest) (TargetState, error) {
	var st TargetState
	_, err := c.do(ctx, http.MethodPost, "/targets/"+target+"/deploy", r, &st)
	return st, err
}

func (c *ReleaseClient) do(ctx context.Context, method, path string, in, out any) (int, error) {
	if !runbook.ValidTargetName(strings.Split(strings.TrimPrefix(path, "/targets/"), "/")[0]) {
		return 0, fmt.Errorf("invalid target name in %q", path)
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://supervisor"+path, body)
	if err != nil {
		return 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("release supervisor (%s %s): %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusServiceUnavailable {
		return resp.StatusCode, json.Unmarshal(b, out)
	}
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	if e.Error == "" {
		e.Error = strings.TrimSpace(string(b))
	}
	return resp.StatusCode, fmt.Errorf("release supervisor (%s %s): %s: %s", method, path, resp.Status, e.Error)
}

// ReleaseFlagsFor returns the flags the versions table in env (EnvReleaseFlagsPrefix +
// version) gives version: none for a healthy version.
func ReleaseFlagsFor(env func(string) string, version string) []string {
	return strings.Fields(env(EnvReleaseFlagsPrefix + version))
}

// parseTargetSpec reads name=port:version (the supervisor's -target flag).
func parseTargetSpec(s string) (string, SupervisedTarget, error) {
	name, rest, ok := strings.Cut(s, "=")
	portS, version, ok2 := strings.Cut(rest, ":")
	port, err := strconv.Atoi(portS)
	if !ok || !ok2 || err != nil || port <= 0 || runbook.CheckVersion(version) != nil {
		return "", SupervisedTarget{}, fmt.Errorf("target %q: want name=port:version", s)
	}
	return name, SupervisedTarget{Port: port, Version: version}, nil
}

// ParseTargetSpecs reads the supervisor's -target flags.
func ParseTargetSpecs(specs []string) (map[string]SupervisedTarget, error) {
	m := map[string]SupervisedTarget{}
	for _, s := range specs {
		name, t, err := parseTargetSpec(s)
		if err != nil {
			return nil, err
		}
		m[name] = t
	}
	return m, nil
}
