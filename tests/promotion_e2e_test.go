package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/workflows"
)

// These tests release real versions of the demo API onto the dev stack's two
// targets (stable and canary, behind HAProxy) through the exec driver of
// examples/dev-worker.yaml: bin/demo-release asks the stack's release
// supervisor to replace an instance. Versions are chosen at release time;
// the worker's versions table makes v3-bad fail every /api request.

// releaseBaseline puts the targets at "stable runs stable, canary idle at
// the same version" and, when the test ends, back to what they ran before
// it (other tests expect the stack's canary version).
func releaseBaseline(t *testing.T, stable, canary string) {
	t.Helper()
	rc := devstack.NewReleaseClient(stack.Dir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before := map[string]devstack.TargetState{}
	for _, target := range []string{devstack.StableServer, devstack.CanaryServer} {
		st, err := rc.Current(ctx, target)
		require.NoError(t, err)
		before[target] = st
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for target, st := range before {
			if _, err := rc.Deploy(ctx, target, devstack.DeployRequest{Version: st.Version, Flags: st.Flags}); err != nil {
				t.Errorf("putting %s back at %s: %v", target, st.Version, err)
			}
		}
		waitTargetsHealthy(t, rc)
	})
	for target, v := range map[string]string{devstack.StableServer: stable, devstack.CanaryServer: canary} {
		_, err := rc.Deploy(ctx, target, devstack.DeployRequest{Version: v})
		require.NoError(t, err)
	}
	waitTargetsHealthy(t, rc)
}

// waitTargetsHealthy waits until HAProxy has both servers UP again (a
// replaced instance may have missed a health check).
func waitTargetsHealthy(t *testing.T, rc *devstack.ReleaseClient) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for _, target := range []string{devstack.StableServer, devstack.CanaryServer} {
		for {
			st, err := rc.Health(context.Background(), target)
			if err == nil && st.Healthy {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("target %s not healthy: %+v, %v", target, st, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// serverVersion is what a server's /healthz reports.
func serverVersion(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return resp.Header.Get("X-Rollbook-Version")
}

// targetVersions reports "stable / canary" as the servers themselves answer.
func targetVersions(t *testing.T) string {
	t.Helper()
	return serverVersion(t, stack.DemoStableURL) + " / " + serverVersion(t, stack.DemoCanaryURL)
}

// frontendVersions sends reads through HAProxy and lists who answered.
func frontendVersions(t *testing.T, n int) []string {
	t.Helper()
	seen := map[string]bool{}
	var out []string
	for range n {
		resp, err := http.Get(stack.HAProxyURL + "/api/payments?limit=1")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		if v := resp.Header.Get("X-Rollbook-Version"); !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// promotionRunbook: expand, a flag, the new version onto the idle canary,
// 50 → 100 %, promotion (the new version onto stable, traffic back to
// stable, the canary left idle), a last verification.
func (f *fixture) promotionRunbook() string {
	y := fmt.Sprintf(`apiVersion: rollbook/v1
service: %[1]s
routes:
  - {name: api, router: edge, backend: payments_api, subsets: [stable, canary], stable: stable, canary: canary}
steps:
  - name: expand-schema
    migrate: {database: payments, dir: migrations}
  - name: flags
    consul:
      set:
        %[2]sconfig/version: "2"
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
  - name: canary-100
    traffic: {route: api, weights: {stable: 0, canary: 100}}
  - name: promote-stable
    release: {target: stable}
  - name: stable-100
    traffic: {route: api, weights: {stable: 100, canary: 0}}
  - name: verify-stable
    verify:
      duration: 2s
      interval: 1s
      checks:
        - name: edge
          http: {endpoint: edge, path: /api/payments}
`, f.service, f.prefix)
	p := filepath.Join(f.dir, f.service+".yaml")
	require.NoError(f.t, os.WriteFile(p, []byte(y), 0o644))
	return p
}

// deployResult runs a deployment with --wait --json and decodes its result.
func deployResult(t *testing.T, rb, version string, extra ...string) (workflows.Result, int, string) {
	t.Helper()
	out, code := cli(t, append([]string{"deploy", rb, "--version", version, "--wait", "--json"}, extra...)...)
	// --json prints JSON lines; the result is the one with "event":"result".
	for _, line := range strings.Split(out, "\n") {
		var ev struct {
			Event  string           `json:"event"`
			Result workflows.Result `json:"result"`
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Event == "result" {
			return ev.Result, code, out
		}
	}
	t.Fatalf("no result line in the output:\n%s", out)
	return workflows.Result{}, code, out
}

// v5 is released onto the canary, verified, promoted onto stable: both
// servers run v5 and HAProxy sends everything to stable. A bad v3 released
// on top of it is rolled back to the promoted v5 on every server, with the
// schema, keys and weights v5 left, and no client error.
func TestE2EPromotionThenChainedRollback(t *testing.T) {
	f := newFixture(t, "e2e-promote")
	releaseBaseline(t, "v1", "v1")
	putKV(t, f.prefix+"config/version", "1")
	rb := f.promotionRunbook()

	l := startLoad(t, 60)
	res, code, out := deployResult(t, rb, "v5")
	c1, _, _ := l.Load.Stop()
	require.Equal(t, 0, code, out)
	assert.Equal(t, workflows.OutcomeSucceeded, res.Outcome)
	assert.Equal(t, "v5 / v5", targetVersions(t), "promoted: stable runs v5, the canary idles at v5")
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t), "traffic back on stable")
	assert.Equal(t, []string{"v5"}, frontendVersions(t, 10))
	assert.EqualValues(t, 3, schemaVersion(t))
	assert.Zero(t, c1.Errors, "no client error during the deployment and its promotion: %+v", c1)
	require.NoError(t, tclient.GetWorkflow(context.Background(), workflows.WorkflowID(f.service), "").Get(context.Background(), nil))

	// The captured versions are in the result, for revert: canary and stable ran v1.
	captured := map[string]string{}
	for _, s := range res.Steps {
		if s.Captured != nil && s.Captured.Release != nil {
			captured[s.Name] = s.Captured.Release.Version + " → " + s.Captured.ReleaseApplied
		}
	}
	assert.Equal(t, map[string]string{"release-canary": "v1 → v5", "promote-stable": "v1 → v5"}, captured)

	// The next deployment starts from there, with nothing reset.
	v, _ := kv(t, f.prefix+"config/version")
	require.Equal(t, "2", v)
	l = startLoad(t, 60)
	res, code, out = deployResult(t, rb, "v3-bad")
	c2, _, _ := l.Load.Stop()
	require.Equal(t, 2, code, out)
	assert.Equal(t, workflows.OutcomeRolledBack, res.Outcome)
	assert.Contains(t, out, "canary-errors")
	assert.Equal(t, "v5 / v5", targetVersions(t), "both servers run the promoted v5 again")
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t))
	assert.Equal(t, []string{"v5"}, frontendVersions(t, 10))
	assert.EqualValues(t, 3, schemaVersion(t), "the schema v5 left")
	v, _ = kv(t, f.prefix+"config/version")
	assert.Equal(t, "2", v, "the keys v5 left")
	assert.Zero(t, c2.Errors, "HAProxy retried the bad canary's failures: %+v", c2)

	byStep := map[string]workflows.Compensation{}
	for _, c := range res.Compensations {
		byStep[c.Step] = c
	}
	rel, ok := byStep["release-canary"]
	require.True(t, ok, "compensations: %+v", res.Compensations)
	assert.Equal(t, workflows.CompDone, rel.State)
	require.NotNil(t, rel.Release)
	assert.Equal(t, "v5", rel.Release.Captured.Version, "the canary's captured version is the promoted one")
}

// rollbook revert undoes a promoted deployment: traffic back onto the
// canary, the stable target back to its old version, traffic off the
// canary, the canary back to its old version, then flags and schema.
func TestE2ERevertPromotedDeployment(t *testing.T) {
	f := newFixture(t, "e2e-revert-promoted")
	releaseBaseline(t, "v1", "v1")
	putKV(t, f.prefix+"config/version", "1")
	l := startLoad(t, 60) // the canary's router check needs requests
	_, code, out := deployResult(t, f.promotionRunbook(), "v5")
	l.Stop()
	require.Equal(t, 0, code, out)
	require.Equal(t, "v5 / v5", targetVersions(t))

	out, code = cli(t, "revert", f.service, "--dry-run")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "v1")
	assert.Equal(t, "v5 / v5", targetVersions(t), "a dry run changes nothing")

	l = startLoad(t, 60)
	out, code = cli(t, "revert", f.service, "--wait", "--reason", "e2e: revert a promotion")
	c, _, _ := l.Load.Stop()
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "outcome: reverted")
	assert.Equal(t, "v1 / v1", targetVersions(t), "each target runs the version it ran before the deployment")
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t))
	assert.Equal(t, []string{"v1"}, frontendVersions(t, 10))
	assert.EqualValues(t, 0, schemaVersion(t))
	v, _ := kv(t, f.prefix+"config/version")
	assert.Equal(t, "1", v)
	assert.Zero(t, c.Errors, "no client error during the revert: %+v", c)
}
