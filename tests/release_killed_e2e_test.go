package tests

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/internal/faults"
	"github.com/rollbook/rollbook/internal/worker"
	"github.com/rollbook/rollbook/workflows"
)

const killedTaskQueue = "rollbook-e2e-killed"

// workerProcess is a rollbook worker run as its own OS process (./workers),
// so that it can be killed with SIGKILL at a crash point (internal/faults).
type workerProcess struct {
	cmd     *exec.Cmd
	reached chan string
	exited  chan struct{}
}

// startWorkerProcess builds ./workers and runs it with the dev worker's
// configuration on killedTaskQueue; with point set, it stops there
// (ROLLBOOK_CRASHPOINT) and announces it on stdout.
func startWorkerProcess(t *testing.T, dir, point string) *workerProcess {
	t.Helper()
	bin := filepath.Join(dir, "rollbook-worker")
	if _, err := os.Stat(bin); err != nil {
		build := exec.Command("go", "build", "-o", bin, "./workers")
		build.Dir = repoRoot
		out, err := build.CombinedOutput()
		require.NoError(t, err, "go build ./workers: %s", out)
	}
	cfgPath := filepath.Join(dir, "worker.yaml")
	if _, err := os.Stat(cfgPath); err != nil {
		cfg, err := worker.LoadConfig(filepath.Join(repoRoot, "examples", "dev-worker.yaml"))
		require.NoError(t, err)
		cfg.TaskQueue = killedTaskQueue
		cfg.Metrics.Listen = ""
		cfg.Log = worker.LogConfig{Level: "info", Format: "json"}
		b, err := yaml.Marshal(cfg)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(cfgPath, b, 0o644))
	}
	cmd := exec.Command(bin, "-config", cfgPath)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, faults.EnvPoint+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if point != "" {
		cmd.Env = append(cmd.Env, faults.EnvPoint+"="+point, faults.EnvWait+"=60s")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	logf, err := os.Create(filepath.Join(dir, "worker-"+strings.NewReplacer(":", "_", "@", "_").Replace(point)+".log"))
	require.NoError(t, err)
	cmd.Stderr = logf
	require.NoError(t, cmd.Start())
	w := &workerProcess{cmd: cmd, reached: make(chan string, 1), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), faults.Marker) {
				select {
				case w.reached <- sc.Text():
				default:
				}
			}
		}
		_ = cmd.Wait()
		logf.Close()
		close(w.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-w.exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-w.exited
		}
	})
	return w
}

// kill9 kills the worker (this PID only) and waits until it is gone.
func (w *workerProcess) kill9(t *testing.T) {
	t.Helper()
	require.NoError(t, w.cmd.Process.Signal(syscall.SIGKILL))
	select {
	case <-w.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("worker pid %d still runs 10 s after SIGKILL", w.cmd.Process.Pid)
	}
}

// A bad release is rolled back, and the worker running the release's
// compensation is killed with SIGKILL right after it put the captured
// version back, before its health wait. A new worker finishes the
// compensation: the canary runs the captured version (deployed once: the
// retry finds it there and only checks its health), the outcome is
// rolled-back.
func TestE2EReleaseRestoreAfterWorkerKilled(t *testing.T) {
	f := newFixture(t, "e2e-release-killed")
	releaseBaseline(t, "v1", "v1")
	dir := t.TempDir()
	w1 := startWorkerProcess(t, dir, "mid1:RestoreRelease@release-canary")

	rb := f.releaseRunbook()
	d := startCLI(t, "deploy", rb, "--version", "v3-bad", "--wait", "--json", "--task-queue", killedTaskQueue)
	l := startLoad(t, 60)
	var line string
	select {
	case line = <-w1.reached:
	case <-w1.exited:
		t.Fatal("the worker exited before its crash point")
	case <-time.After(90 * time.Second):
		t.Fatal("the crash point mid1:RestoreRelease@release-canary was not reached within 90 s")
	}
	t.Logf("crash point reached: %s", line)
	// The restore's deploy has run: the canary is back at v1, not yet health-checked.
	rc := devstack.NewReleaseClient(stack.Dir)
	atKill, err := rc.Current(context.Background(), devstack.CanaryServer)
	require.NoError(t, err)
	require.Equal(t, "v1", atKill.Version)
	w1.kill9(t)

	startWorkerProcess(t, dir, "")
	out, code := d.wait(t, 2*time.Minute)
	c, _, _ := l.Load.Stop()
	require.Equal(t, 2, code, out)
	assert.Contains(t, out, `"outcome":"rolled-back"`)
	assert.Equal(t, "v1 / v1", targetVersions(t))
	after, err := rc.Current(context.Background(), devstack.CanaryServer)
	require.NoError(t, err)
	assert.Equal(t, atKill.PID, after.PID, "the retried compensation found v1 there and did not deploy it again")
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t))
	assert.Zero(t, c.Errors, "clients saw nothing: %+v", c)

	st, err := status(f.service)
	require.NoError(t, err)
	var rel *workflows.Compensation
	for i := range st.Compensations {
		if st.Compensations[i].Step == "release-canary" {
			rel = &st.Compensations[i]
		}
	}
	require.NotNil(t, rel, "compensations: %+v", st.Compensations)
	assert.Equal(t, "already-restored", rel.State, "the new worker's retry found the captured version there, healthy")
	assert.Contains(t, rel.Detail, "already runs v1")
}
