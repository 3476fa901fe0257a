package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/internal/haproxywatch"
	"github.com/rollbook/rollbook/workflows"
)

// TestE2EContinuousCheckDetectsBadCanary: under load through the real
// HAProxy, a canary at 50 % turns bad in the middle of a long verification
// whose router check is continuous. The watch sees the first bad requests
// and the rollback puts every request back on stable in well under a round
// interval (5 s here), measured by an independent observer of HAProxy's
// weights.
func TestE2EContinuousCheckDetectsBadCanary(t *testing.T) {
	f := newFixture(t, "e2e-watch")
	f.seed()
	rb := f.watchRunbook()

	obs, err := haproxywatch.Start(stack.HAProxySocket, devstack.Backend, 2*time.Millisecond)
	require.NoError(t, err)
	defer obs.Stop()
	l := startLoad(t, 100)
	d := startCLI(t, "deploy", rb, "--version", "v2", "--wait", "--json")
	waitPhase(t, f.service, workflows.PhaseVerifying, 60*time.Second)
	require.Equal(t, map[string]int{"stable": 50, "canary": 50}, weights(t))
	// A few healthy seconds first: the watch must not trip on a good canary.
	time.Sleep(3 * time.Second)
	st, err := status(f.service)
	require.NoError(t, err)
	require.Equal(t, workflows.PhaseVerifying, st.Phase, "a healthy canary passes its windows")

	badAt := time.Now()
	setCanaryBad(t, 1)
	defer setCanaryBad(t, 0)
	restoredAt, err := obs.WaitFor(context.Background(), badAt, 30*time.Second, func(w haproxywatch.Weights) bool { return w.Restored() })
	require.NoError(t, err, "traffic back on stable")
	out, code := d.wait(t, 60*time.Second)
	l.Stop()
	took := restoredAt.Sub(badAt)
	t.Logf("canary turned bad → traffic back on stable: %d ms (HAProxy observer polling every 2 ms; load 100 requests/s, 50 %% canary)", took.Milliseconds())

	require.Equal(t, 2, code, out)
	assert.Contains(t, out, `"outcome":"rolled-back"`)
	assert.Contains(t, out, "check canary-errors failed: error rate")
	assert.Contains(t, out, "over the last")
	assert.Less(t, took, 2*time.Second, "detected and restored within 2 s; a 5 s round could not")
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t), "weights restored exactly")
}

// watchRunbook: 50 % to the canary, then a minute of verification whose
// router check is continuous (1 s window) beside an http check in 5 s
// rounds.
func (f *fixture) watchRunbook() string {
	y := fmt.Sprintf(`apiVersion: rollbook/v1
service: %s
routes:
  - {name: api, router: edge, backend: payments_api, subsets: [stable, canary], stable: stable, canary: canary}
steps:
  - name: canary-50
    traffic: {route: api, weights: {stable: 50, canary: 50}}
  - name: verify-50
    verify:
      duration: 60s
      interval: 5s
      checks:
        - name: canary-errors
          continuous: true
          window: 1s
          router: {route: api, subset: canary, maxErrorRate: 0.05, minRequests: 5}
        - name: healthz
          http: {endpoint: edge, path: /healthz}
`, f.service)
	rb := filepath.Join(f.dir, f.service+".yaml")
	require.NoError(f.t, os.WriteFile(rb, []byte(y), 0o644))

	return rb
}
