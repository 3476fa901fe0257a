package main

import (
	"context"
	"fmt"
	"time"

	"github.com/rollbook/rollbook/internal/haproxywatch"
	"github.com/rollbook/rollbook/workflows"
)

// Phase 4: switching is invisible.

func (b *bench) switching(ctx context.Context) error {
	spec := runbookSpec{service: "bench-switch", route: edgeRoute, stages: []int{10, 50, 100}, hold: true}
	ld, err := b.edgeUnderLoad(b.cfg.SwitchRPS, true)
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			ld.Stop()
		}
	}()
	deadline := time.Now().Add(b.cfg.SwitchMaxTime)
	cycles, incomplete := 0, 0
	for cycles < b.cfg.SwitchCycles || ld.Snapshot().Requests < b.cfg.SwitchMinRequests {
		if time.Now().After(deadline) {
			return fmt.Errorf("switching: only %d cycles and %d requests after %s", cycles, ld.Snapshot().Requests, b.cfg.SwitchMaxTime)
		}
		bun, err := b.dep.bundle(spec, fmt.Sprintf("v2.switch.%d", cycles))
		if err != nil {
			return err
		}
		tStart := time.Now()
		run, err := b.dep.start(ctx, bun)
		if err != nil {
			return err
		}
		if _, err := b.edgeObs.WaitFor(ctx, tStart, 20*time.Second, func(w haproxywatch.Weights) bool { return w.CanaryPct() == 100 }); err != nil {
			return fmt.Errorf("switching cycle %d: %w", cycles, err)
		}
		t0 := time.Now()
		if err := abort(ctx, b.tc, spec.service, "benchmark: roll back a healthy canary"); err != nil {
			return err
		}
		if _, err := b.edgeObs.WaitFor(ctx, t0, 20*time.Second, haproxywatch.Weights.Restored); err != nil {
			return fmt.Errorf("switching cycle %d: %w", cycles, err)
		}
		r, err := result(ctx, run, 30*time.Second)
		if err != nil {
			return err
		}
		if r.Outcome != workflows.OutcomeAborted {
			return fmt.Errorf("switching cycle %d: outcome %s (%s), want aborted", cycles, r.Outcome, r.Reason)
		}
		// Every stage really reached the gateway.
		seen := map[int]bool{}
		for _, s := range b.edgeObs.ChangesSince(tStart) {
			seen[s.W.CanaryPct()] = true
		}
		if !seen[10] || !seen[50] || !seen[100] || !seen[0] {
			incomplete++
		}
		cycles++
		if cycles%10 == 0 {
			b.logf("  %d cycles, %d requests", cycles, ld.Snapshot().Requests)
		}
	}
	c, elapsed, samples := ld.Stop()
	stopped = true
	if incomplete > 0 {
		b.logf("  note: in %d cycles the observer missed a stage", incomplete)
	}
	b.res.SwitchCycles = cycles
	b.res.SwitchRequests = c.Requests
	b.res.SwitchRPS = round1(float64(c.Requests) / elapsed.Seconds())
	b.res.SwitchErrors = c.Errors
	b.res.SwitchErrorSample = samples
	lat := make([]float64, len(c.Latencies))
	for i, l := range c.Latencies {
		lat[i] = ms(l)
	}
	b.res.SwitchLatencyP99 = dist(lat).P99
	return nil
}
