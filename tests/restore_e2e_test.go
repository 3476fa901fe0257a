package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/workflows"
)

// trafficRunbook moves the canary to canaryPct and verifies for a minute.
func (f *fixture) trafficRunbook(canaryPct int, rollback string) string {
	y := fmt.Sprintf(`apiVersion: rollbook/v1
service: %s
routes:
  - {name: api, router: edge, backend: payments_api, subsets: [stable, canary], stable: stable, canary: canary}
steps:
  - name: canary
    traffic: {route: api, weights: {stable: %d, canary: %d}}
  - name: watch
    verify:
      duration: 60s
      interval: 1s
      checks:
        - name: healthz
          http: {endpoint: edge, path: /healthz}
%s`, f.service, 100-canaryPct, canaryPct, rollback)
	p := filepath.Join(f.dir, f.service+".yaml")
	require.NoError(f.t, os.WriteFile(p, []byte(y), 0o644))
	return p
}

// weightLog records every distinct weight pair HAProxy reports, polled
// every few milliseconds independently of rollbook.
//
// rollbook writes a route's weights in one batch ("set server …/stable
// weight 50; set server …/canary weight 50"), but HAProxy runs the commands
// of a batch one after the other and serves other runtime API connections
// in between, so a reader can catch a batch half-applied for a few
// microseconds (stable already 50, canary still 100). Those pairs do not add
// up to 100 %: they are not stages, and the log leaves them out.
type weightLog struct {
	mu   sync.Mutex
	seen []map[string]int
	stop chan struct{}
	done chan struct{}
}

func watchWeights(t *testing.T) *weightLog {
	w := &weightLog{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			cur := weights(t)
			if cur["stable"]+cur["canary"] != 100 {
				continue
			}
			w.mu.Lock()
			if n := len(w.seen); n == 0 || fmt.Sprint(w.seen[n-1]) != fmt.Sprint(cur) {
				w.seen = append(w.seen, cur)
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(w.Stop)
	return w
}

func (w *weightLog) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
		<-w.done
	}
}

func TestE2EGradualRestore(t *testing.T) {
	f := newFixture(t, "e2e-gradual")
	rb := f.trafficRunbook(100, "rollback:\n  traffic: {steps: [50], interval: 2s}\n")
	d := startCLI(t, "deploy", rb, "--version", "v2", "--wait")
	waitPhase(t, f.service, workflows.PhaseVerifying, 30*time.Second)
	require.Equal(t, map[string]int{"stable": 0, "canary": 100}, weights(t))
	w := watchWeights(t)

	out, code := cli(t, "abort", f.service, "--reason", "gradual")
	require.Equal(t, 0, code, out)
	out, code = d.wait(t, 60*time.Second)
	require.Equal(t, 3, code, out)
	w.Stop()
	assert.Equal(t, []map[string]int{
		{"stable": 0, "canary": 100},
		{"stable": 50, "canary": 50},
		{"stable": 100, "canary": 0},
	}, w.seen, "the observer sees the intermediate stage")
}

func TestE2ECapacityCheckWaitsInsteadOfFlipping(t *testing.T) {
	f := newFixture(t, "e2e-capacity")
	rb := f.trafficRunbook(50, "")
	d := startCLI(t, "deploy", rb, "--version", "v2", "--wait")
	waitPhase(t, f.service, workflows.PhaseVerifying, 30*time.Second)

	_, err := stack.HAProxyCommand(fmt.Sprintf("set server %s/stable state maint", devstack.Backend))
	require.NoError(t, err)
	out, code := cli(t, "abort", f.service, "--reason", "capacity")
	require.Equal(t, 0, code, out)
	st := waitPhase(t, f.service, workflows.PhaseRollbackStuck, 30*time.Second)
	assert.Contains(t, st.Reason, "stable server payments_api/stable is MAINT")
	assert.Equal(t, map[string]int{"stable": 50, "canary": 50}, weights(t), "no traffic sent to a pool in maintenance")

	_, err = stack.HAProxyCommand(fmt.Sprintf("set server %s/stable state ready", devstack.Backend))
	require.NoError(t, err)
	time.Sleep(1500 * time.Millisecond) // let the health check see it up
	out, code = cli(t, "retry", f.service)
	require.Equal(t, 0, code, out)
	out, code = d.wait(t, 60*time.Second)
	assert.Equal(t, 3, code, out)
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t))
}
