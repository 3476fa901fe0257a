package tests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/internal/worker"
	"github.com/rollbook/rollbook/workflows"
)

const killedTaskQueue = "rollbook-e2e-killed"

// startDevWorker builds ./workers/rollbook-worker and runs it with the dev worker's
// configuration on killedTaskQueue; with point set, it stops there
// (ROLLBOOK_CRASHPOINT) and announces it.
func startDevWorker(t *testing.T, dir, point string) *workerProcess {
	t.Helper()
	bin := filepath.Join(dir, "rollbook-worker")
	if _, err := os.Stat(bin); err != nil {
		build := exec.Command("go", "build", "-o", bin, "./workers/rollbook-worker")
		build.Dir = repoRoot
		out, err := build.CombinedOutput()
		require.NoError(t, err, "go build ./workers/rollbook-worker: %s", out)
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
	return startWorkerProcess(t, bin, cfgPath, point)
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
	w1 := startDevWorker(t, dir, "mid1:RestoreRelease@release-canary")

	rb := f.releaseRunbook()
	d := startCLI(t, "deploy", rb, "--version", "v3-bad", "--wait", "--json", "--task-queue", killedTaskQueue)
	l := startLoad(t, 60)
	var line string
	select {
	case line = <-w1.reached:
	case <-w1.done:
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

	startDevWorker(t, dir, "")
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
	assert.Equal(t, workflows.CompAlreadyRestored, rel.State, "the new worker's retry found the captured version there, healthy")
	assert.Contains(t, rel.Detail, "already runs v1")
}
