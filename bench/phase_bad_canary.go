package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/rollbook/rollbook/internal/haproxywatch"
	"github.com/rollbook/rollbook/internal/loadgen"
)

// Phase 5: blast radius of a bad canary.

// serverStot reads a server's cumulative request count (stot) from
// HAProxy: the requests the gateway sent it, retried ones included.
func (h *benchHAProxy) serverStot(ctx context.Context, backend, server string) (int64, error) {
	rows, err := h.rt.Stats(ctx, backend)
	if err != nil {
		return 0, err
	}
	row, ok := rows[server]
	if !ok {
		return 0, fmt.Errorf("server %s not in show stat", server)
	}
	return row.Int("stot")
}

// serverStat returns a few counters of a server for the evidence line.
func (h *benchHAProxy) serverStat(ctx context.Context, backend, server string) string {
	rows, err := h.rt.Stats(ctx, backend)
	if err != nil {
		return err.Error()
	}
	row, ok := rows[server]
	if !ok {
		return fmt.Sprintf("server %s not in show stat", server)
	}
	var parts []string
	for _, f := range []string{"stot", "hrsp_5xx", "eresp", "wretr", "wredis"} {
		v, err := row.Int(f)
		if err != nil {
			return err.Error()
		}
		parts = append(parts, fmt.Sprintf("%s=%d", f, v))
	}
	return strings.Join(parts, " ")
}

// badSide is one gateway configuration of phase 5 and where its numbers go.
type badSide struct {
	name, backend, url string
	probe              bool
	out                *BadSide
}

func (b *bench) badCanary(ctx context.Context) error {
	if err := b.resetEdge(); err != nil {
		return err
	}
	bc := &b.res.BadCanary
	bc.CanaryPercent, bc.ErrorRate = b.cfg.BadCanaryPct, b.cfg.BadErrorRate
	var restored []float64
	var rps []float64
	for _, side := range []badSide{
		{"on", "be_retry_on", b.bh.retryOnURL, false, &bc.RetryOn},
		{"off", "be_retry_off", b.bh.retryOffURL, false, &bc.RetryOff},
		{"on-probe", "be_retry_on", b.bh.retryOnURL, true, &bc.RetryOnProbe},
	} {
		r, rate, err := b.badCanarySide(ctx, side)
		if err != nil {
			return fmt.Errorf("bad canary (%s): %w", side.name, err)
		}
		restored, rps = append(restored, r...), append(rps, rate)
	}
	bc.summarise(restored, rps)
	return nil
}

// badCanarySide repeats the bad-canary run on one side under its own load
// and observer, and returns the detect → restored times (ms) and the load's
// request rate.
func (b *bench) badCanarySide(ctx context.Context, side badSide) (restored []float64, rate float64, err error) {
	spec := runbookSpec{service: "bench-bad-" + side.name, route: route{router: "bench", backend: side.backend},
		stages: []int{b.cfg.BadCanaryPct}, verify: true, probe: side.probe, interval: b.cfg.CheckInterval}
	side.out.Backend, side.out.Checks = side.backend, "router (canary 5xx rate)"
	if side.probe {
		side.out.Checks += " + http probe of the canary"
	}
	obs, err := haproxywatch.Start(b.bh.socket, side.backend, b.cfg.ObserveEvery)
	if err != nil {
		return nil, 0, err
	}
	ld := loadgen.Start(side.url+"/api/payments", b.cfg.BadRPS, false)
	var detectS float64
	for i := 0; i < b.cfg.BadRuns; i++ {
		s, err := b.badCanaryRun(ctx, side, spec, i, obs, ld)
		if err != nil {
			obs.Stop()
			ld.Stop()
			return nil, 0, fmt.Errorf("run %d: %w", i, err)
		}
		if !s.detected {
			side.out.Undetected++
			if side.out.Undetected >= 2 {
				b.logf("  retry %s: %d runs never detected; not repeating it", side.name, side.out.Undetected)
				break
			}
			continue
		}
		detectS += s.detect.Seconds()
		side.out.DetectMs = append(side.out.DetectMs, round1(ms(s.detect)))
		side.out.RestoredMs = append(side.out.RestoredMs, round1(ms(s.total)))
		restored = append(restored, ms(s.total))
	}
	c, elapsed, _ := ld.Stop()
	obs.Stop()
	rate = float64(c.Requests) / elapsed.Seconds()
	side.out.LeastPossible = round1(float64(b.cfg.BadCanaryPct) / 100 * detectS * rate)
	side.out.ClientErrors = c.Errors
	return restored, rate, nil
}

// badCanaryRun is one deployment whose canary turns bad, counted from the bad
// instant to the restore: requests sent, requests that reached the canary,
// answers the clients got from the bad version.
func (b *bench) badCanaryRun(ctx context.Context, side badSide, spec runbookSpec, i int, obs *haproxywatch.Observer, ld *loadgen.Load) (detectSample, error) {
	var before int64
	var snap loadgen.Counts
	s, err := b.detectOnce(ctx, spec, fmt.Sprintf("v2.bad-%s.%d", side.name, i), obs, b.st.DemoCanaryURL, func() error {
		var err error
		before, err = b.bh.serverStot(ctx, side.backend, "canary")
		snap = ld.Snapshot()
		return err
	})
	if err != nil {
		_ = setCanary(b.st.DemoCanaryURL, 0)
		return s, err
	}
	// Let the answers in flight arrive before counting.
	time.Sleep(300 * time.Millisecond)
	if !s.detected && side.out.Evidence == "" {
		side.out.Evidence = "HAProxy canary counters after an undetected run: " + b.bh.serverStat(ctx, side.backend, "canary")
	}
	if err := setCanary(b.st.DemoCanaryURL, 0); err != nil {
		return s, err
	}
	after, err := b.bh.serverStot(ctx, side.backend, "canary")
	if err != nil {
		return s, err
	}
	win := ld.Snapshot().Minus(snap)
	side.out.Runs++
	side.out.Requests += win.Requests
	side.out.ReachedBad += after - before
	side.out.ClientSawBad += win.ByVersion[b.canaryVersion]
	return s, nil
}

// summarise adds up the retry-on and retry-off sides (the probe side is
// reported on its own).
func (bc *BadCanary) summarise(restored, rps []float64) {
	for _, s := range []*BadSide{&bc.RetryOn, &bc.RetryOff} {
		bc.Runs += s.Runs
		bc.Requests += s.Requests
		bc.ReachedBad += s.ReachedBad
		bc.LeastPossibleReached += s.LeastPossible
		bc.UndetectedRuns += s.Undetected
	}
	bc.LeastPossibleReached = round1(bc.LeastPossibleReached)
	bc.ClientErrorsRetryOn, bc.ClientErrorsRetryOff = bc.RetryOn.ClientErrors, bc.RetryOff.ClientErrors
	if bc.LeastPossibleReached > 0 {
		bc.ReachedBadRatio = round2(float64(bc.ReachedBad) / bc.LeastPossibleReached)
	}
	bc.DetectToRestoredMs = dist(restored)
	if len(rps) > 0 {
		bc.RPS = round1(rps[0])
	}
}
