package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// impostor listens on a port like another stack's server would: it answers every HTTP
// request with 200 and a body that also reads as a Consul leader, so a readiness check
// that only looks at answers takes it for the component.
type impostor struct {
	port int
	hits atomic.Int64
	srv  *http.Server
}

// occupy starts an impostor on port. It fails the test when the port cannot be bound.
func occupy(t *testing.T, port int) *impostor {
	t.Helper()
	l, err := net.Listen("tcp", hostPort(port))
	if err != nil {
		t.Errorf("occupying port %d: %v", port, err)
		return nil
	}
	im := &impostor{port: port}
	im.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		im.hits.Add(1)
		io.WriteString(w, `"127.0.0.1:8300"`)
	})}
	go im.srv.Serve(l)
	t.Cleanup(func() { im.srv.Close() })
	return im
}

// TestStartSurvivesTakenPorts takes one port of every component right after the stack has
// chosen it and before the component binds it — what another stack starting at the same
// time does by chance — and checks that the stack still comes up, every component on
// ports of its own, with the Stack's fields, the env file and the ports file all telling
// the new ports. The impostors answer HTTP with 200, so the demo API's and Consul's
// readiness checks alone would take them for the real thing.
func TestStartSurvivesTakenPorts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Which port of each component is taken: the frontend or first port, and for HAProxy
	// the stats port of the CI failure ("cannot bind socket ... [127.0.0.1:38025]").
	takes := map[string]func(pt stackPorts) int{
		ComponentTemporal: func(pt stackPorts) int { return pt.Temporal },
		ComponentConsul:   func(pt stackPorts) int { return pt.ConsulHTTP },
		ComponentPostgres: func(pt stackPorts) int { return pt.PG },
		componentDemo:     func(pt stackPorts) int { return pt.DemoStable },
		ComponentHAProxy:  func(pt stackPorts) int { return pt.HAProxyStats },
		// Prometheus and Alertmanager answer /-/ready: an impostor's 200 must not pass for them.
		ComponentAlertmanager: func(pt stackPorts) int { return pt.Alertmanager },
		ComponentPrometheus:   func(pt stackPorts) int { return pt.Prometheus },
	}
	var mu sync.Mutex
	attempts := map[string]int{}
	taken := map[string]*impostor{}
	var log strings.Builder
	opts := Options{Dir: t.TempDir(), RemoveOnStop: true, Timeout: 150 * time.Second, Log: io.MultiWriter(testLog{t}, &syncWriter{w: &log, mu: &mu})}
	opts.beforeStart = func(component string, pt stackPorts) {
		mu.Lock()
		defer mu.Unlock()
		attempts[component]++
		if attempts[component] == 1 {
			taken[component] = occupy(t, takes[component](pt))
		}
	}
	s, err := Start(ctx, opts)
	if s != nil {
		t.Cleanup(func() { _ = s.Stop() })
	}
	if err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	t.Logf("start attempts per component: %v", attempts)
	for name := range takes {
		if taken[name] == nil {
			t.Fatalf("%s: no port was taken", name)
		}
		if attempts[name] < 2 {
			t.Errorf("%s started %d time(s) with its port %d taken, want a second start on new ports", name, attempts[name], taken[name].port)
		}
		if !strings.Contains(log.String(), fmt.Sprintf("port %d is taken", taken[name].port)) {
			t.Errorf("the log does not say that %s lost port %d:\n%s", name, taken[name].port, log.String())
		}
	}
	mu.Unlock()

	// Nothing of the stack uses a taken port.
	pt := s.portsNow()
	for name, im := range taken {
		if slices.Contains(pt.all(), im.port) {
			t.Errorf("%s: the stack still lists the taken port %d: %+v", name, im.port, pt)
		}
		if state, err := listenerOf(os.Getpid(), im.port); err != nil || state != portOurs {
			t.Errorf("the impostor on %d no longer holds it: %v %v", im.port, state, err)
		}
	}
	for _, addr := range []string{s.TemporalAddress, s.ConsulHTTPAddr, s.PGDSN, s.DemoStableURL, s.HAProxyStatsURL, s.PrometheusURL, s.AlertmanagerURL} {
		for _, im := range taken {
			if strings.Contains(addr, fmt.Sprintf(":%d", im.port)) {
				t.Errorf("%s is on the taken port %d", addr, im.port)
			}
		}
	}
	// Each component's own process listens on every port the stack tells.
	for _, name := range startOrder {
		c := s.component(name)
		listener := listenerOf
		if c.childrenListen {
			listener = listenerOfTree
		}
		for proc, ports := range c.listeners(pt) {
			p := s.procOf(proc)
			for _, port := range ports {
				if state, err := listener(p.pid, port); err != nil || state != portOurs {
					t.Errorf("%s (pid %d) does not listen on %d alone: %v %v", proc, p.pid, port, state, err)
				}
			}
		}
	}

	// The env and ports files tell the ports the stack runs on.
	env, err := ReadEnv(filepath.Join(s.Dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range s.Env() {
		if env[k] != v {
			t.Errorf("env file %s=%q, Stack says %q", k, env[k], v)
		}
	}
	onDisk, err := readPorts(filepath.Join(s.Dir, "ports"))
	if err != nil || *onDisk != pt {
		t.Errorf("ports file %+v (%v), Stack has %+v", onDisk, err, pt)
	}
	if pids, err := readPids(filepath.Join(s.Dir, "pids")); err != nil || len(pids) != 7 || len(s.PIDs()) != 7 {
		t.Errorf("pids file: %d entries (%v), Stack: %v; want the 7 live processes only", len(pids), err, s.PIDs())
	}

	// And the real components answer there, not the impostors.
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := client.DialContext(ctx, client.Options{HostPort: s.TemporalAddress, Namespace: Namespace, Logger: silentSDKLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: Namespace}); err != nil {
		t.Fatal(err)
	}
	cc, err := consul.NewClient(&consul.Config{Address: s.ConsulHTTPAddr})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.KV().Put(&consul.KVPair{Key: "rollbook/ports", Value: []byte("real")}, nil); err != nil {
		t.Fatalf("consul KV: %v", err)
	}
	if v := getVersion(t, s.DemoStableURL+"/healthz", 200); v != "v1" {
		t.Errorf("demo stable answers as %q, want v1", v)
	}
	if v := getVersion(t, s.HAProxyURL+"/api/payments", 200); v != "v1" {
		t.Errorf("HAProxy's frontend answers from %q, want v1", v)
	}
	if body, err := httpGet(ctx, s.HAProxyStatsURL); err != nil || !strings.Contains(string(body), "Statistics Report") {
		t.Errorf("HAProxy stats page: %v %.200q", err, body)
	}
	for name, im := range taken {
		t.Logf("%s: impostor on %d answered %d request(s)", name, im.port, im.hits.Load())
	}
}

type syncWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// TestListenerOf checks the four answers of listenerOf with real sockets, and shows why
// the HAProxy configuration sets noreuseport: an HAProxy without it binds a port this
// process listens on with SO_REUSEPORT, without any error.
func TestListenerOf(t *testing.T) {
	reusePort := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1) })
		return errors.Join(err, serr)
	}}
	l, err := reusePort.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	free, err := freePorts(1, []int{port})
	if err != nil || free[0] == port {
		t.Fatalf("freePorts: %v %v", free, err)
	}

	if st, err := listenerOf(os.Getpid(), free[0]); err != nil || st != portFree {
		t.Errorf("free port: %v %v, want portFree", st, err)
	}
	if st, err := listenerOf(os.Getpid(), port); err != nil || st != portOurs {
		t.Errorf("own listener: %v %v, want portOurs", st, err)
	}

	haproxy := lookPath("haproxy", "/usr/sbin/haproxy")
	cfg := filepath.Join(t.TempDir(), "h.cfg")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(
		"defaults\n  mode http\n  timeout connect 1s\n  timeout client 1s\n  timeout server 1s\nfrontend f\n  bind %s\n", hostPort(port))), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(haproxy, "-db", "-f", cfg)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := listenerOf(cmd.Process.Pid, port)
		if err != nil {
			t.Fatal(err)
		}
		if st == portShared {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("HAProxy (pid %d) on a port this process listens on with SO_REUSEPORT: %v, want portShared; its output:\n%s", cmd.Process.Pid, st, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st, _ := listenerOf(os.Getpid(), port); st != portShared {
		t.Errorf("seen from this process: %v, want portShared", st)
	}
	if h := portHolder(port, os.Getpid()); !strings.Contains(h, fmt.Sprintf("pid %d (haproxy)", cmd.Process.Pid)) {
		t.Errorf("portHolder: %q, want HAProxy's pid", h)
	}
	l.Close()
	if st, err := listenerOf(os.Getpid(), port); err != nil || st != portForeign {
		t.Errorf("after closing ours: %v %v, want portForeign", st, err)
	}
}

// TestPortsAllListsEveryField guards stackPorts.all (movePorts keeps new ports clear of
// every port the stack uses): it must list every field.
func TestPortsAllListsEveryField(t *testing.T) {
	var pt stackPorts
	v := reflect.ValueOf(&pt).Elem()
	for i := range v.NumField() {
		v.Field(i).SetInt(int64(1000 + i))
	}
	all := pt.all()
	if len(all) != v.NumField() {
		t.Fatalf("all() has %d ports, stackPorts %d fields", len(all), v.NumField())
	}
	for i := range v.NumField() {
		if !slices.Contains(all, 1000+i) {
			t.Errorf("all() leaves out %s", v.Type().Field(i).Name)
		}
	}
}
