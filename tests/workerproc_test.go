package tests

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/internal/faults"
)

// workerProcess is a rollbook worker binary (./workers/rollbook-worker) run by a test as its
// own OS process, so that it can be killed with SIGKILL (by PID) at a crash
// point (internal/faults): the worker announces the point on its output.
type workerProcess struct {
	cmd     *exec.Cmd
	reached chan string
	started chan struct{}
	done    chan struct{}
}

func startWorkerProcess(t *testing.T, bin, cfg, point string) *workerProcess {
	t.Helper()
	cmd := exec.Command(bin, "-config", cfg)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, faults.EnvPoint+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if point != "" {
		cmd.Env = append(cmd.Env, faults.EnvPoint+"="+point, faults.EnvWait+"=90s")
	}
	// Never outlive the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	w := &workerProcess{cmd: cmd, reached: make(chan string, 1), started: make(chan struct{}), done: make(chan struct{})}
	var once sync.Once
	scan := func(r io.Reader, name string) {
		s := bufio.NewScanner(r)
		s.Buffer(make([]byte, 1<<20), 1<<20)
		for s.Scan() {
			line := s.Text()
			if strings.HasPrefix(line, faults.Marker) {
				select {
				case w.reached <- line:
				default:
				}
			}
			if strings.Contains(line, "rollbook worker started") {
				once.Do(func() { close(w.started) })
			}
			if os.Getenv("ROLLBOOK_E2E_VERBOSE") != "" {
				t.Logf("worker %d %s: %s", cmd.Process.Pid, name, line)
			}
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); scan(stdout, "stdout") }()
	go func() { defer wg.Done(); scan(stderr, "stderr") }()
	go func() { wg.Wait(); _ = cmd.Wait(); close(w.done) }()
	t.Cleanup(w.kill)
	select {
	case <-w.started:
	case <-w.done:
		t.Fatalf("worker %v exited at start", cmd.Args)
	case <-time.After(60 * time.Second):
		t.Fatalf("worker did not start within 60 s")
	}
	return w
}

func (w *workerProcess) kill() {
	select {
	case <-w.done:
		return
	default:
	}
	_ = w.cmd.Process.Kill() // SIGKILL, by PID
	<-w.done
}

// kill9 is kill for a test that needs the worker gone now: it fails the
// test if the process is still there 10 s after SIGKILL.
func (w *workerProcess) kill9(t *testing.T) {
	t.Helper()
	killed := make(chan struct{})
	go func() { w.kill(); close(killed) }()
	select {
	case <-killed:
	case <-time.After(10 * time.Second):
		t.Fatalf("worker pid %d still runs 10 s after SIGKILL", w.cmd.Process.Pid)
	}
}
