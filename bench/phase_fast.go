package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rollbook/rollbook/activities/contract"
	"github.com/rollbook/rollbook/internal/haproxywatch"
	"github.com/rollbook/rollbook/internal/loadgen"
	"github.com/rollbook/rollbook/workflows"
)

// Phase 8 (issue 14): a canary that turns bad under 500 rps at 10 %, caught
// by rollbook's continuous router check (a long round interval, so that only
// the watch can be quick), by the seed's own loop (poll every second, flip
// the weights back), and by rollbook with HAProxy acting first (observe
// layer7 on the canary). Nothing is retried on these backends, so every
// request the bad canary answers is a client error that no retry could hide:
// the cost of an incident for unkeyed writes.

// activityWatch is the continuous check's activity.
const activityWatch = contract.ActivityWatch

// FastDetect is phase 8's report.
type FastDetect struct {
	CheckIntervalMs float64 `json:"check_interval_ms"`
	WindowMs        float64 `json:"window_ms"`
	CanaryPercent   int     `json:"canary_percent"`
	ErrorRate       float64 `json:"bad_error_rate"`
	// Rollbook: continuous router check, HAProxy's defaults (be_retry_off).
	Rollbook FastSide `json:"rollbook"`
	// SeedLoop: the seed's loop on the same backend, same load.
	SeedLoop FastSide `json:"seed_loop"`
	// RollbookObserve: the continuous check on be_observe, where HAProxy
	// marks the canary down after 5 errors in a row (the dev stack's setting).
	RollbookObserve FastSide `json:"rollbook_observe"`
	// SeedLoopObserve: the seed's loop on be_observe: what HAProxy acting
	// first buys when detection is slow.
	SeedLoopObserve FastSide `json:"seed_loop_observe"`
}

// FastSide is one detector on one backend, over its runs.
type FastSide struct {
	Detector   string  `json:"detector"`
	Backend    string  `json:"backend"`
	RPS        float64 `json:"rps"`
	Runs       int     `json:"runs"`
	Undetected int     `json:"undetected"`
	RestoredMs Dist    `json:"detect_to_restored_ms"`
	// ClientErrors: errors the clients got from the bad instant to the
	// restore (+300 ms for answers in flight), over all runs.
	ClientErrors            int64   `json:"client_errors"`
	ClientErrorsPerIncident float64 `json:"client_errors_per_incident"`
	// MarkedDown: runs where HAProxy had taken the canary out by itself
	// when the weights were restored.
	MarkedDown int                `json:"haproxy_marked_down"`
	Breakdown  map[string]float64 `json:"breakdown_p50_ms,omitempty"`
	Reasons    []string           `json:"reasons,omitempty"`
	restored   []float64
}

func (s *FastSide) add(restoredMs float64, errs int64) {
	s.Runs++
	s.restored = append(s.restored, restoredMs)
	s.ClientErrors += errs
}

func (s *FastSide) finish(rate float64) {
	s.RestoredMs = dist(s.restored)
	s.RPS = round1(rate)
	if s.Runs > 0 {
		s.ClientErrorsPerIncident = round1(float64(s.ClientErrors) / float64(s.Runs))
	}
}

// fastRun is what one run hands back to its side.
type fastRun struct {
	restored   time.Duration
	detected   bool
	markedDown bool
	errs       int64
	bd         map[string]float64
	reason     string
}

func (b *bench) fast(ctx context.Context) error {
	if err := b.resetEdge(); err != nil {
		return err
	}
	f := &b.res.Fast
	f.CheckIntervalMs, f.WindowMs = ms(b.cfg.FastInterval), ms(b.cfg.FastWindow)
	f.CanaryPercent, f.ErrorRate = b.cfg.BadCanaryPct, b.cfg.BadErrorRate
	f.SeedLoop = FastSide{Detector: "seed loop: show stat every 1 s, one runtime-API write", Backend: "be_retry_off"}
	f.Rollbook = FastSide{Detector: fmt.Sprintf("rollbook: continuous router check, window %s, round interval %s", b.cfg.FastWindow, b.cfg.FastInterval), Backend: "be_retry_off"}
	f.RollbookObserve = FastSide{Detector: f.Rollbook.Detector + " + HAProxy observe layer7 on the canary", Backend: "be_observe"}
	f.SeedLoopObserve = FastSide{Detector: f.SeedLoop.Detector + " + HAProxy observe layer7 on the canary", Backend: "be_observe"}
	sides := []struct {
		side *FastSide
		url  string
		once func(context.Context, int, *haproxywatch.Observer, *loadgen.Load) (fastRun, error)
	}{
		{&f.SeedLoop, b.bh.retryOffURL, b.seedOnce("be_retry_off")},
		{&f.Rollbook, b.bh.retryOffURL, b.fastRollbookOnce("be_retry_off")},
		{&f.RollbookObserve, b.bh.observeURL, b.fastRollbookOnce("be_observe")},
		{&f.SeedLoopObserve, b.bh.observeURL, b.seedOnce("be_observe")},
	}
	for _, sd := range sides {
		if err := b.fastSide(ctx, sd.side, sd.url, sd.once); err != nil {
			return fmt.Errorf("%s: %w", sd.side.Detector, err)
		}
	}
	r := b.res
	r.FastMs, r.SeedLoopMs = f.Rollbook.RestoredMs, f.SeedLoop.RestoredMs
	if r.SeedLoopMs.P50 > 0 {
		r.FastVsSeedLoopP50 = round2(r.FastMs.P50 / r.SeedLoopMs.P50)
	}
	bc := &r.BadCanary
	bc.UnkeyedClientErrorsPerIncident = f.RollbookObserve.ClientErrorsPerIncident
	bc.UnkeyedWithoutObserve = f.Rollbook.ClientErrorsPerIncident
	bc.UnkeyedSeedLoop = f.SeedLoop.ClientErrorsPerIncident
	bc.UnkeyedSeedLoopObserve = f.SeedLoopObserve.ClientErrorsPerIncident
	return nil
}

// fastSide runs one detector cfg.FastRuns times under its own load and
// observer.
func (b *bench) fastSide(ctx context.Context, side *FastSide, url string, once func(context.Context, int, *haproxywatch.Observer, *loadgen.Load) (fastRun, error)) error {
	obs, err := haproxywatch.Start(b.bh.socket, side.Backend, b.cfg.ObserveEvery)
	if err != nil {
		return err
	}
	defer obs.Stop()
	ld := loadgen.Start(url+"/api/payments", b.cfg.BadRPS, false)
	stopped := false
	defer func() {
		if !stopped {
			ld.Stop()
		}
	}()
	bds := breakdowns{}
	for i := 0; i < b.cfg.FastRuns; i++ {
		if err := b.bh.waitCanaryUp(ctx, side.Backend, 15*time.Second); err != nil {
			return err
		}
		r, err := once(ctx, i, obs, ld)
		if err2 := setCanary(b.st.DemoCanaryURL, 0); err == nil {
			err = err2
		}
		if err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
		if !r.detected {
			side.Undetected++
			continue
		}
		side.add(ms(r.restored), r.errs)
		if r.markedDown {
			side.MarkedDown++
		}
		if r.reason != "" && len(side.Reasons) < 3 {
			side.Reasons = append(side.Reasons, r.reason)
		}
		bds.add(r.bd)
	}
	c, elapsed, _ := ld.Stop()
	stopped = true
	side.finish(float64(c.Requests) / elapsed.Seconds())
	if len(bds) > 0 {
		side.Breakdown = bds.medians()
	}
	b.logf("  %s: restored p50 %.0f ms (n %d, undetected %d), client errors per incident %.1f",
		side.Detector, side.RestoredMs.P50, side.RestoredMs.N, side.Undetected, side.ClientErrorsPerIncident)
	return nil
}

// incident turns the canary bad at a random moment 400–1400 ms from now,
// waits for obs to see the weights restored, and counts the client errors in
// between (+300 ms for answers in flight). ok is false when nothing restored
// them within cfg.DetectTimeout.
func (b *bench) incident(ctx context.Context, obs *haproxywatch.Observer, ld *loadgen.Load) (tBad, tR time.Time, errs int64, ok bool, err error) {
	time.Sleep(jitter(400*time.Millisecond, time.Second))
	snap := ld.Snapshot()
	tBad = time.Now()
	if err := setCanary(b.st.DemoCanaryURL, b.cfg.BadErrorRate); err != nil {
		return tBad, tR, 0, false, err
	}
	tR, err = obs.WaitFor(ctx, tBad, b.cfg.DetectTimeout, haproxywatch.Weights.Restored)
	if err != nil {
		return tBad, tR, 0, false, nil
	}
	time.Sleep(300 * time.Millisecond)
	return tBad, tR, ld.Snapshot().Minus(snap).Errors, true, nil
}

// seedOnce: the seed's loop watches a 10 % canary of backend that turns bad.
func (b *bench) seedOnce(backend string) func(context.Context, int, *haproxywatch.Observer, *loadgen.Load) (fastRun, error) {
	return func(ctx context.Context, _ int, obs *haproxywatch.Observer, ld *loadgen.Load) (fastRun, error) {
		return b.seedRun(ctx, backend, obs, ld)
	}
}

func (b *bench) seedRun(ctx context.Context, backend string, obs *haproxywatch.Observer, ld *loadgen.Load) (fastRun, error) {
	pct := b.cfg.BadCanaryPct
	if _, err := b.bh.rt.Exec(ctx, fmt.Sprintf("set server %s/stable weight %d", backend, 100-pct), fmt.Sprintf("set server %s/canary weight %d", backend, pct)); err != nil {
		return fastRun{}, err
	}
	loop := seedLoop{rt: b.bh.rt, backend: backend, every: time.Second, maxErrorRate: 0.05, minRequests: 5, stableWeight: 100}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := loop.run(lctx); done <- err }()
	tBad, tR, errs, ok, err := b.incident(ctx, obs, ld)
	cancel()
	lerr := <-done
	if err != nil {
		return fastRun{}, err
	}
	if lerr != nil && !errors.Is(lerr, context.Canceled) {
		return fastRun{}, lerr
	}
	if !ok {
		_ = loop.rollback(ctx)
		return fastRun{}, nil
	}
	return fastRun{restored: tR.Sub(tBad), detected: true, errs: errs, markedDown: b.bh.canaryDown(ctx, backend)}, nil
}

// fastRollbookOnce: a deployment moves 10 % to the canary and watches it
// with a continuous router check; the canary turns bad.
func (b *bench) fastRollbookOnce(backend string) func(context.Context, int, *haproxywatch.Observer, *loadgen.Load) (fastRun, error) {
	return func(ctx context.Context, i int, obs *haproxywatch.Observer, ld *loadgen.Load) (fr fastRun, err error) {
		spec := runbookSpec{service: "bench-fast-" + strings.ReplaceAll(strings.TrimPrefix(backend, "be_"), "_", "-"), route: route{router: "bench", backend: backend},
			stages: []int{b.cfg.BadCanaryPct}, verify: true, interval: b.cfg.FastInterval, window: b.cfg.FastWindow}
		bun, err := b.dep.bundle(spec, fmt.Sprintf("v2.fast.%d", i))
		if err != nil {
			return fr, err
		}
		tStart := time.Now()
		run, err := b.dep.start(ctx, bun)
		if err != nil {
			return fr, err
		}
		defer b.abandon(ctx, run, &err)
		if _, err := obs.WaitFor(ctx, tStart, 20*time.Second, func(w haproxywatch.Weights) bool { return w.CanaryPct() == b.cfg.BadCanaryPct }); err != nil {
			return fr, err
		}
		tBad, tR, errs, ok, err := b.incident(ctx, obs, ld)
		if err != nil {
			return fr, err
		}
		if !ok {
			b.logf("  %s: not rolled back within %s; aborting it", spec.service, b.cfg.DetectTimeout)
			if err := abort(ctx, b.tc, spec.service, "benchmark: bad canary not detected"); err != nil {
				return fr, err
			}
			_, _ = result(ctx, run, 30*time.Second)
			return fr, nil
		}
		fr = fastRun{restored: tR.Sub(tBad), detected: true, errs: errs, markedDown: b.bh.canaryDown(ctx, backend)}
		res, err := result(ctx, run, 30*time.Second)
		if err != nil {
			return fr, err
		}
		if res.Outcome != workflows.OutcomeRolledBack {
			return fr, fmt.Errorf("%s: outcome %s (%s), want rolled-back", spec.service, res.Outcome, res.Reason)
		}
		fr.reason = res.Reason
		fr.bd, err = b.watchBreakdown(ctx, run.GetID(), run.GetRunID(), tBad, tR)
		return fr, err
	}
}

// watchBreakdown splits bad → restored along the history: the watch
// activity's completion (it tripped), the restore scheduled and started.
func (b *bench) watchBreakdown(ctx context.Context, id, runID string, tBad, tR time.Time) (map[string]float64, error) {
	evs, err := history(ctx, b.tc, id, runID)
	if err != nil {
		return nil, err
	}
	rs, ok := firstAfter(evs, 0, isActivity("RestoreWeights"))
	if !ok {
		return nil, fmt.Errorf("%s: no RestoreWeights in history", id)
	}
	var watch event
	for _, e := range evs {
		if e.id < rs.id && isActivity(activityWatch)(e) {
			watch = e
		}
	}
	if watch.id == 0 {
		return nil, fmt.Errorf("%s: no %s activity before the restore: is the check continuous?", id, activityWatch)
	}
	_, tripped := activityTimes(evs, watch)
	rStart, _ := activityTimes(evs, rs)
	return map[string]float64{
		"1_bad→watch tripped (recorded)": ms(tripped.Sub(tBad)),
		"2_tripped→restore scheduled":    ms(rs.at.Sub(tripped)),
		"3_scheduled→started":            ms(rStart.Sub(rs.at)),
		"4_started→observer sees 100 %":  ms(tR.Sub(rStart)),
	}, nil
}

// canaryDown says whether HAProxy has the backend's canary DOWN.
func (h *benchHAProxy) canaryDown(ctx context.Context, backend string) bool {
	rows, err := h.rt.Stats(ctx, backend)
	return err == nil && strings.HasPrefix(rows["canary"]["status"], "DOWN")
}

// waitCanaryUp waits until the canary of backend is not DOWN (on a backend
// without health checks its status is "no check").
func (h *benchHAProxy) waitCanaryUp(ctx context.Context, backend string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for h.canaryDown(ctx, backend) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/canary still DOWN after %s (its health check should bring it back)", backend, within)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}
