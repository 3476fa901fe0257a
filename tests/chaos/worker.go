package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/rollbook/rollbook/internal/faults"
	"github.com/rollbook/rollbook/internal/worker"
)

// workerProc is one rollbook worker process (./workers/rollbook-worker),
// started by the harness and stopped by it, by PID.
type workerProc struct {
	cmd   *exec.Cmd
	Pid   int
	point string

	started chan struct{} // the worker logged that it polls
	reached chan string   // the crash point's marker line
	exited  chan struct{}
	state   *os.ProcessState

	logMu sync.Mutex
	log   *os.File
}

// buildWorker compiles ./workers/rollbook-worker once for the campaign.
func buildWorker(root, dir string) (string, error) {
	bin := filepath.Join(dir, "rollbook-worker")
	cmd := exec.Command("go", "build", "-o", bin, "./workers/rollbook-worker")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./workers/rollbook-worker: %v\n%s", err, out)
	}
	return bin, nil
}

// writeWorkerConfig derives the campaign's worker configuration from
// examples/dev-worker.yaml: same databases, routers, prefixes and endpoints,
// but the campaign's own task queue (no other worker may pick its tasks) and
// no fixed metrics port (workers come and go quickly).
func writeWorkerConfig(root, dir, taskQueue string) (string, error) {
	cfg, err := worker.LoadConfig(filepath.Join(root, "examples", "dev-worker.yaml"))
	if err != nil {
		return "", err
	}
	cfg.TaskQueue = taskQueue
	cfg.Metrics.Listen = ""
	cfg.Log = worker.LogConfig{Level: "info", Format: "json"}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("encoding the worker config: %w", err)
	}
	p := filepath.Join(dir, "worker.yaml")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return "", err
	}
	if _, err := worker.LoadConfig(p); err != nil {
		return "", fmt.Errorf("the derived worker config does not load: %w", err)
	}
	return p, nil
}

// startWorker runs the worker binary with the stack's environment, and
// ROLLBOOK_CRASHPOINT=point when point is not empty. Its output goes to
// logPath; the marker line of the crash point is reported on reached.
func startWorker(bin, cfg string, env map[string]string, point, logPath string) (*workerProc, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-config", cfg)
	for _, kv := range os.Environ() {
		// Only the harness decides which worker carries a crash point.
		if !strings.HasPrefix(kv, faults.EnvPoint+"=") && !strings.HasPrefix(kv, faults.EnvWait+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if point != "" {
		cmd.Env = append(cmd.Env, faults.EnvPoint+"="+point, faults.EnvWait+"=60s")
	}
	setDeathSignal(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		lf.Close()
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		lf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("starting the worker: %w", err)
	}
	w := &workerProc{cmd: cmd, Pid: cmd.Process.Pid, point: point, log: lf,
		started: make(chan struct{}), reached: make(chan string, 1), exited: make(chan struct{})}
	fmt.Fprintf(lf, "---- harness: started worker pid %d, crash point %q, at %s\n", w.Pid, point, time.Now().Format(time.RFC3339Nano))
	var wg sync.WaitGroup
	wg.Add(2)
	var startOnce sync.Once
	go func() {
		defer wg.Done()
		w.scan(stdout, func(line string) {
			if strings.HasPrefix(line, faults.Marker) {
				select {
				case w.reached <- line:
				default:
				}
			}
		})
	}()
	go func() {
		defer wg.Done()
		w.scan(stderr, func(line string) {
			if strings.Contains(line, "rollbook worker started") {
				startOnce.Do(func() { close(w.started) })
			}
		})
	}()
	go func() {
		// Wait only after the pipes are drained (os/exec's rule).
		wg.Wait()
		_ = cmd.Wait()
		w.state = cmd.ProcessState
		w.logMu.Lock()
		fmt.Fprintf(lf, "---- harness: worker pid %d exited: %v\n", w.Pid, w.state)
		lf.Close()
		w.logMu.Unlock()
		close(w.exited)
	}()
	return w, nil
}

func (w *workerProc) scan(r io.Reader, on func(string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		on(line)
		w.logMu.Lock()
		fmt.Fprintln(w.log, line)
		w.logMu.Unlock()
	}
}

// waitStarted waits until the worker polls its task queue.
func (w *workerProc) waitStarted(timeout time.Duration) error {
	select {
	case <-w.started:
		return nil
	case <-w.exited:
		return fmt.Errorf("worker pid %d exited during start: %v", w.Pid, w.state)
	case <-time.After(timeout):
		return fmt.Errorf("worker pid %d did not start within %s", w.Pid, timeout)
	}
}

// kill sends SIGKILL to the worker (this PID only) and waits until it is
// gone; it returns how the process ended.
func (w *workerProc) kill() (string, error) {
	if err := w.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return "", fmt.Errorf("kill -9 %d: %w", w.Pid, err)
	}
	select {
	case <-w.exited:
	case <-time.After(10 * time.Second):
		return "", fmt.Errorf("worker pid %d still running 10 s after SIGKILL", w.Pid)
	}
	if ws, ok := w.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal().String(), nil
	}
	return w.state.String(), nil
}

// stop ends the worker gracefully (SIGTERM), or with SIGKILL when it does
// not exit in time.
func (w *workerProc) stop() {
	select {
	case <-w.exited:
		return
	default:
	}
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.exited:
	case <-time.After(25 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.exited
	}
}
