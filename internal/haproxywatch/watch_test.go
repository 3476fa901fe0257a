package haproxywatch

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollbook/rollbook/internal/router/haproxy"
)

// startHAProxy runs a real HAProxy with one backend "be" of servers stable
// (weight 100) and canary (weight 0), no health checks, and returns its
// runtime API socket.
func startHAProxy(t testing.TB) string {
	t.Helper()
	exe, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy not installed")
	}
	dir, err := os.MkdirTemp("", "hw-") // short: a unix socket path is limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "admin.sock")
	cfg := fmt.Sprintf(`global
    stats socket %s mode 600 level admin
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
backend be
    server stable 127.0.0.1:1 weight 100
    server canary 127.0.0.1:2 weight 0
`, sock)
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-db", "-f", cfgPath)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	rt, err := haproxy.New(sock)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := rt.Servers(context.Background(), "be"); err == nil {
			return sock
		} else if time.Now().After(deadline) {
			t.Fatalf("haproxy did not answer: %v; its output: %s", err, out.String())
		}
	}
}

func TestObserverSeesEveryWeightChange(t *testing.T) {
	sock := startHAProxy(t)
	rt, _ := haproxy.New(sock)
	o, err := Start(sock, "be", 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if got := o.Current(); got != (Weights{100, 0}) {
		t.Fatalf("first read = %s, want 100/0", got)
	}
	t0 := time.Now()
	for _, w := range []Weights{{50, 50}, {0, 100}, {100, 0}} {
		if _, err := rt.Exec(context.Background(), fmt.Sprintf("set server be/stable weight %d", w.Stable), fmt.Sprintf("set server be/canary weight %d", w.Canary)); err != nil {
			t.Fatal(err)
		}
		if _, err := o.WaitFor(context.Background(), t0, 5*time.Second, func(got Weights) bool { return got == w }); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	for _, s := range o.ChangesSince(t0) {
		seen = append(seen, s.W.String())
	}
	if strings.Join(seen, " ") != "50/50 0/100 100/0" {
		t.Errorf("changes seen = %v, want 50/50 0/100 100/0", seen)
	}
	st := o.Stop()
	if st.Polls < 2 || st.PollEveryMs != 5 {
		t.Errorf("stats = %+v", st)
	}
	if _, err := Start(sock, "no_such_backend", 5*time.Millisecond); err == nil {
		t.Error("an unknown backend starts an observer")
	}
}

// BenchmarkRead is one poll of the observer against a real HAProxy: it
// must stay far below the 5 ms polling period.
func BenchmarkRead(b *testing.B) {
	rt, _ := haproxy.New(startHAProxy(b))
	for b.Loop() {
		if _, err := Read(context.Background(), rt, "be"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetWeight is what the observer sent before it shared the
// driver's reader ("get weight" for each server), for comparison.
func BenchmarkGetWeight(b *testing.B) {
	rt, _ := haproxy.New(startHAProxy(b))
	for b.Loop() {
		if _, err := rt.Exec(context.Background(), "get weight be/stable", "get weight be/canary"); err != nil {
			b.Fatal(err)
		}
	}
}
