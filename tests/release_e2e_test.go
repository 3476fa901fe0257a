package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/rollbook/rollbook/internal/release/deployertest"
	"github.com/rollbook/rollbook/internal/worker"
)

const releaseTaskQueue = "rollbook-e2e-release"

// releaseScript is the operator's release command for these tests: a tiny
// "platform" that keeps each target's version in a file and logs every
// deploy. The worker runs it through the exec driver, without a shell
// between them (the script itself is a shell script, as operators' are).
// A version named v*-broken fails half-way; v*-hang never finishes; v*-sick
// deploys but never gets healthy.
const releaseScript = `#!/bin/sh
set -eu
state="$STATE_DIR/$2.version"
case "$1" in
current)
  cat "$state" ;;
deploy)
  echo "$2 $3 $4" >> "$STATE_DIR/deploys.log"
  case "$3" in
  *-broken)
    echo "stopping $2 instances"
    echo "$3-half" > "$state"
    echo "image $3 not found in registry" >&2
    exit 3 ;;
  *-hang)
    echo "rolling out $3: waiting for the scheduler"
    sleep 60 ;;
  esac
  echo "$3" > "$state" ;;
health)
  v=$(cat "$state")
  case "$v" in
  *-half) echo "$2 runs a half-deployed $v"; exit 1 ;;
  *-sick) echo "$2: $v answers 503 on /healthz: database pool exhausted"; exit 1 ;;
  esac ;;
esac
`

// releasePlatform is one test's state directory and worker.
type releasePlatform struct {
	t   *testing.T
	dir string
}

// startReleaseWorker writes the release script, seeds the targets'
// versions and starts a real worker whose configuration has an exec release
// driver and two targets, on its own task queue.
func startReleaseWorker(t *testing.T, versions map[string]string) *releasePlatform {
	t.Helper()
	p := &releasePlatform{t: t, dir: t.TempDir()}
	require.NoError(t, os.WriteFile(filepath.Join(p.dir, "release.sh"), []byte(releaseScript), 0o755))
	for target, v := range versions {
		require.NoError(t, os.WriteFile(filepath.Join(p.dir, target+".version"), []byte(v+"\n"), 0o644))
	}
	cfg, err := worker.ParseConfig("release.yaml", []byte(fmt.Sprintf(`
taskQueue: %[1]s
databases:
  payments: {dialect: postgres, dsnEnv: ROLLBOOK_PG_DSN}
routers:
  edge: {driver: haproxy, addressEnv: ROLLBOOK_HAPROXY_SOCKET, allowedBackends: [payments_api]}
consul:
  allowedPrefixes: [rollbook-e2e/]
endpoints:
  edge: {urlEnv: ROLLBOOK_HAPROXY_URL}
releaseDrivers:
  platform:
    driver: exec
    exec:
      dir: %[2]s
      env: {STATE_DIR: %[2]s}
      current: {argv: [./release.sh, current, "{target}"], timeout: 5s}
      deploy:  {argv: [./release.sh, deploy, "{target}", "{version}", "{key}"], timeout: 3s}
      health:  {argv: [./release.sh, health, "{target}"], timeout: 5s}
    wait: {timeout: 2s, interval: 200ms}
targets:
  canary: {driver: platform}
  stable: {driver: platform}
`, releaseTaskQueue, p.dir)))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := worker.Start(ctx, cfg, zap.NewNop(), worker.Options{})
	require.NoError(t, err)
	t.Cleanup(r.Stop)
	return p
}

func (p *releasePlatform) version(target string) string {
	b, err := os.ReadFile(filepath.Join(p.dir, target+".version"))
	require.NoError(p.t, err)
	return strings.TrimSpace(string(b))
}

// deploys returns "target version key" per deploy the script saw.
func (p *releasePlatform) deploys() []string {
	b, err := os.ReadFile(filepath.Join(p.dir, "deploys.log"))
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(p.t, err)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// releaseRunbook releases the deployment's version onto the canary
// target, sends it half the traffic and verifies its error rate.
func (f *fixture) releaseRunbook() string {
	y := fmt.Sprintf(`apiVersion: rollbook/v1
service: %s
routes:
  - {name: api, router: edge, backend: payments_api, subsets: [stable, canary], stable: stable, canary: canary}
steps:
  - name: release-canary
    release: {target: canary}
  - name: canary-50
    traffic: {route: api, weights: {stable: 50, canary: 50}}
  - name: verify-50
    verify:
      duration: 4s
      interval: 1s
      checks:
        - name: canary-errors
          router: {route: api, subset: canary, maxErrorRate: 0.05, minRequests: 3}
`, f.service)
	p := filepath.Join(f.dir, f.service+".yaml")
	require.NoError(f.t, os.WriteFile(p, []byte(y), 0o644))
	return p
}

// The release step puts v2 on the canary target through the exec driver;
// verification fails, and the rollback puts the captured v1 back (after
// restoring the weights), with its own idempotency key.
func TestE2EReleaseRolledBackAfterVerifyFails(t *testing.T) {
	p := startReleaseWorker(t, map[string]string{"canary": "v1", "stable": "v1"})
	f := newFixture(t, "e2e-release")
	setCanaryBad(t, 1)
	defer setCanaryBad(t, 0)
	l := startLoad(t, 60)
	out, code := cli(t, "deploy", f.releaseRunbook(), "--version", "v2", "--wait", "--json", "--task-queue", releaseTaskQueue)
	l.Stop()
	require.Equal(t, 2, code, out)
	assert.Contains(t, out, `"outcome":"rolled-back"`)
	assert.Contains(t, out, "canary-errors")

	assert.Equal(t, "v1", p.version("canary"), "the captured version is back")
	assert.Equal(t, "v1", p.version("stable"), "the other target was not touched")
	d := p.deploys()
	require.Len(t, d, 2, "one deploy forward, one back: %v", d)
	assert.Regexp(t, `^canary v2 rollbook-e2e-release/[0-9a-f-]+/release-canary/apply$`, d[0])
	assert.Regexp(t, `^canary v1 rollbook-e2e-release/[0-9a-f-]+/release-canary/restore/1$`, d[1])
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t), "weights restored")

	st, err := status(f.service)
	require.NoError(t, err)
	require.NotEmpty(t, st.Compensations)
	rel := st.Compensations[0]
	assert.Equal(t, "release-canary", rel.Step)
	assert.Equal(t, "done", string(rel.State))
	require.NotNil(t, rel.Release)
	assert.Equal(t, "v1", rel.Release.Captured.Version)
	require.NotNil(t, st.Steps[0].Captured.Release)
	assert.Equal(t, "v1", st.Steps[0].Captured.Release.Version)
}

// A deploy command that fails half-way fails the step at once, quoting its
// output; the step's own compensation puts the captured version back.
func TestE2EReleaseDeployFailsHalfWay(t *testing.T) {
	p := startReleaseWorker(t, map[string]string{"canary": "v1"})
	f := newFixture(t, "e2e-release-broken")
	out, code := cli(t, "deploy", f.releaseRunbook(), "--version", "v3-broken", "--wait", "--json", "--task-queue", releaseTaskQueue)
	require.Equal(t, 2, code, out)
	assert.Contains(t, out, `"outcome":"rolled-back"`)
	assert.Contains(t, out, "image v3-broken not found in registry", "the output tail is in the reason")
	assert.Contains(t, out, "exit status 3")
	assert.Equal(t, "v1", p.version("canary"))
	d := p.deploys()
	require.Len(t, d, 2, "one failed deploy (not retried), one restore: %v", d)
	assert.Contains(t, d[0], "canary v3-broken ")
	assert.Contains(t, d[1], "canary v1 ")
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t), "no traffic moved")
}

// A deploy command that hangs is killed at its timeout; its output tail
// is in the error, and the rollback puts the captured version back.
func TestE2EReleaseHangKilledAtTimeout(t *testing.T) {
	p := startReleaseWorker(t, map[string]string{"canary": "v1"})
	f := newFixture(t, "e2e-release-hang")
	start := time.Now()
	out, code := cli(t, "deploy", f.releaseRunbook(), "--version", "v4-hang", "--wait", "--json", "--task-queue", releaseTaskQueue)
	require.Equal(t, 2, code, out)
	assert.Less(t, time.Since(start), 40*time.Second)
	assert.Contains(t, out, "did not finish within 3s and was killed with its process group")
	assert.Contains(t, out, "rolling out v4-hang: waiting for the scheduler")
	assert.Equal(t, "v1", p.version("canary"))
}

// A version that deploys but never gets healthy: the health wait gives up at
// its timeout (wait.timeout 2s), the reason quotes the last health output,
// and the rollback puts the captured version back and waits until it is
// healthy again. No traffic ever moved to the sick canary.
func TestE2EReleaseHealthWaitTimesOut(t *testing.T) {
	p := startReleaseWorker(t, map[string]string{"canary": "v1"})
	f := newFixture(t, "e2e-release-sick")
	start := time.Now()
	out, code := cli(t, "deploy", f.releaseRunbook(), "--version", "v5-sick", "--wait", "--json", "--task-queue", releaseTaskQueue)
	require.Equal(t, 2, code, out)
	assert.Less(t, time.Since(start), 40*time.Second)
	assert.Contains(t, out, `"outcome":"rolled-back"`)
	assert.Contains(t, out, `"failedStep":"release-canary"`)
	assert.Contains(t, out, "database pool exhausted", "the health command's output is in the reason")
	assert.Equal(t, "v1", p.version("canary"), "the captured version is back")
	d := p.deploys()
	require.Len(t, d, 2, "one deploy, not retried after the health wait gave up, and one restore: %v", d)
	assert.Contains(t, d[0], "canary v5-sick ")
	assert.Contains(t, d[1], "canary v1 ")
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t), "no traffic moved")
}

// A runbook that names a target the worker does not know is refused by the
// preflight before anything changes (exit 1, outcome refused).
func TestE2EReleaseUnknownTarget(t *testing.T) {
	p := startReleaseWorker(t, map[string]string{"canary": "v1"})
	f := newFixture(t, "e2e-release-unknown")
	rb := f.releaseRunbook()
	b, err := os.ReadFile(rb)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(rb, []byte(strings.Replace(string(b), "target: canary", "target: blue", 1)), 0o644))
	out, code := cli(t, "deploy", rb, "--version", "v2", "--wait", "--json", "--task-queue", releaseTaskQueue)
	require.Equal(t, 1, code, out)
	assert.Contains(t, out, `"outcome":"refused"`)
	assert.Contains(t, out, `steps[0].release.target: unknown release target \"blue\" (this worker knows: canary, stable)`)
	assert.Empty(t, p.deploys())
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t))
}

const releaseHTTPTaskQueue = "rollbook-e2e-release-http"

// The http driver against a deployer that starts the deploy and loses its
// answer once (502): Temporal retries the apply activity, the retry sends
// the same Idempotency-Key, and the deployer answers with the deployment it
// already started — one deploy, not two. Verification then fails and the
// compensation deploys the captured version with its own key.
func TestE2EReleaseHTTPDeployerFailsOnce(t *testing.T) {
	d := deployertest.New(map[string]string{"payments-canary": "v1"})
	defer d.Close()
	d.Token = "e2e-deployer-token"
	d.SetPollsToFinish(2)
	d.FailNextPOSTs(1)
	t.Setenv("ROLLBOOK_E2E_DEPLOYER_URL", d.URL)
	t.Setenv("ROLLBOOK_E2E_DEPLOYER_TOKEN", d.Token)
	cfg, err := worker.ParseConfig("release-http.yaml", []byte(`
taskQueue: `+releaseHTTPTaskQueue+`
databases:
  payments: {dialect: postgres, dsnEnv: ROLLBOOK_PG_DSN}
routers:
  edge: {driver: haproxy, addressEnv: ROLLBOOK_HAPROXY_SOCKET, allowedBackends: [payments_api]}
consul:
  allowedPrefixes: [rollbook-e2e/]
releaseDrivers:
  paas:
    driver: http
    http: {urlEnv: ROLLBOOK_E2E_DEPLOYER_URL, tokenEnv: ROLLBOOK_E2E_DEPLOYER_TOKEN, pollInterval: 100ms, deployTimeout: 10s}
    wait: {timeout: 5s, interval: 100ms}
targets:
  canary: {driver: paas, name: payments-canary}
`))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := worker.Start(ctx, cfg, zap.NewNop(), worker.Options{})
	require.NoError(t, err)
	defer r.Stop()

	f := newFixture(t, "e2e-release-http")
	setCanaryBad(t, 1)
	defer setCanaryBad(t, 0)
	l := startLoad(t, 60)
	out, code := cli(t, "deploy", f.releaseRunbook(), "--version", "v2", "--wait", "--json", "--task-queue", releaseHTTPTaskQueue)
	l.Stop()
	require.Equal(t, 2, code, out)
	assert.Contains(t, out, `"outcome":"rolled-back"`)
	assert.Contains(t, out, "canary-errors", "it failed in verification, after the release")
	assert.NotContains(t, out, d.Token)

	assert.Equal(t, 2, d.Deploys("payments-canary"), "v2 once despite the lost answer, then v1 back")
	assert.Equal(t, "v1", d.Version("payments-canary"))
	var posts []string
	for _, req := range d.Requests() {
		if strings.HasPrefix(req, "POST ") {
			posts = append(posts, req)
		}
	}
	assert.Equal(t, []string{"POST /targets/payments-canary/deploy", "POST /targets/payments-canary/deploy", "POST /targets/payments-canary/deploy"}, posts,
		"the lost answer, its retry with the same key, the compensation")
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t))
}
