package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/internal/loadgen"
	"github.com/rollbook/rollbook/workflows"
)

// Helpers shared by the phases: the edge route, the canary's bad mode,
// jittered sleeps, breakdowns and abandoning a failed run.

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
	if errorRate > 0 {
		return setCanaryMode(canaryURL, fmt.Sprintf("errorRate=%g", errorRate))
	}
	return postCanaryAdmin(canaryURL + "/admin/good")
}

// setCanaryMode puts the canary demo API in a bad mode given as /admin/bad
// query parameters.
func setCanaryMode(canaryURL, query string) error {
	return postCanaryAdmin(canaryURL + "/admin/bad?" + query)
}

func postCanaryAdmin(u string) error {
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

// edgeUnderLoad resets the edge route and starts client load through it.
func (b *bench) edgeUnderLoad(rps int, keepLatencies bool) (*loadgen.Load, error) {
	if err := b.resetEdge(); err != nil {
		return nil, err
	}
	return loadgen.Start(b.st.HAProxyURL+"/api/payments", rps, keepLatencies), nil
}

func jitter(base, spread time.Duration) time.Duration {
	return base + time.Duration(rand.Int64N(int64(spread)+1))
}

// breakdowns collects the runs' "where the time went" maps, part by part.
type breakdowns map[string][]float64

func (bs breakdowns) add(bd map[string]float64) {
	for k, v := range bd {
		bs[k] = append(bs[k], v)
	}
}

// medians is each part's median over the runs.
func (bs breakdowns) medians() map[string]float64 {
	out := make(map[string]float64, len(bs))
	for k, v := range bs {
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
