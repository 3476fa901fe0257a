package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/workflows"
)

// Helpers shared by the phases: the edge route, the canary's bad mode,
// jittered sleeps, medians and abandoning a failed run.

var edgeRoute = route{router: "edge", backend: devstack.Backend}

func (b *bench) logf(format string, args ...any) {
	if b.cfg.Log != nil {
		fmt.Fprintf(b.cfg.Log, "bench: "+format+"\n", args...)
	}
}

// resetEdge puts the dev stack's route at stable 100 % and the canary in
// good health.
func (b *bench) resetEdge() error {
	if _, err := b.st.HAProxyCommand(fmt.Sprintf("set server %[1]s/stable weight 100; set server %[1]s/canary weight 0", devstack.Backend)); err != nil {
		return err
	}
	return setCanary(b.st.DemoCanaryURL, 0)
}

// setCanary switches the canary demo API's bad mode: every /api request
// fails with the given rate (0: healthy).
func setCanary(canaryURL string, errorRate float64) error {
	u := canaryURL + "/admin/good"
	if errorRate > 0 {
		u = fmt.Sprintf("%s/admin/bad?errorRate=%g", canaryURL, errorRate)
	}
	resp, err := http.Post(u, "application/json", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s", u, resp.Status)
	}
	return nil
}

// servedAPI reads how many /api/payments requests the demo API at base has
// answered (its own Prometheus counter, every status code).
func servedAPI(base string) (int64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var n int64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "demoapi_http_requests_total{") || !strings.Contains(line, `path="/api/payments"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("parsing %q: %w", line, err)
		}
		n += int64(v)
	}
	return n, sc.Err()
}

func jitter(base, spread time.Duration) time.Duration {
	return base + time.Duration(rand.Int64N(int64(spread)+1))
}

func medians(m map[string][]float64) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		out[k] = median(v)
	}
	return out
}

// abandon aborts a deployment that a failed run leaves behind, so that it
// does not keep the route (or a shared stack) busy.
func (b *bench) abandon(ctx context.Context, run client.WorkflowRun, err *error) {
	if *err == nil {
		return
	}
	_ = b.tc.SignalWorkflow(ctx, run.GetID(), run.GetRunID(), workflows.SignalAbort, workflows.AbortSignal{Reason: "benchmark run failed", By: "rollbook-bench"})
}
