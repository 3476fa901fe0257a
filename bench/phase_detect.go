package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/rollbook/rollbook/internal/haproxywatch"
	"github.com/rollbook/rollbook/workflows"
)

// Phase 3: detect → restored.

type detectSample struct {
	total    time.Duration
	detect   time.Duration // bad → the failing measurement started
	detected bool
	bd       map[string]float64
	gaps     []float64
}

// detectOnce deploys spec, turns the canary bad at a known instant once the
// verification has its baseline, and times the restore seen by obs.
func (b *bench) detectOnce(ctx context.Context, spec runbookSpec, version string, obs *haproxywatch.Observer, canaryURL string, beforeBad func() error) (s detectSample, err error) {
	bun, err := b.dep.bundle(spec, version)
	if err != nil {
		return s, err
	}
	tStart := time.Now()
	run, err := b.dep.start(ctx, bun)
	if err != nil {
		return s, err
	}
	defer b.abandon(ctx, run, &err)
	want := spec.stages[len(spec.stages)-1]
	if _, err := obs.WaitFor(ctx, tStart, 20*time.Second, func(w haproxywatch.Weights) bool { return w.CanaryPct() == want }); err != nil {
		return s, err
	}
	// The first measurement is the counters' baseline; turn bad after it,
	// anywhere in a round.
	time.Sleep(jitter(400*time.Millisecond, b.cfg.CheckInterval))
	if beforeBad != nil {
		if err := beforeBad(); err != nil {
			return s, err
		}
	}
	tBad := time.Now()
	if err := setCanary(canaryURL, b.cfg.BadErrorRate); err != nil {
		return s, err
	}
	tR, err := obs.WaitFor(ctx, tBad, b.cfg.DetectTimeout, haproxywatch.Weights.Restored)
	if err != nil {
		// Not detected: end it by hand so the next run can start.
		b.logf("  %s: not rolled back within %s; aborting it", spec.service, b.cfg.DetectTimeout)
		if aerr := abort(ctx, b.tc, spec.service, "benchmark: bad canary not detected"); aerr != nil {
			return s, errors.Join(err, aerr)
		}
		if _, werr := obs.WaitFor(ctx, tBad, 20*time.Second, haproxywatch.Weights.Restored); werr != nil {
			return s, errors.Join(err, werr)
		}
		_, _ = result(ctx, run, 30*time.Second)
		s.total = -1
		return s, nil
	}
	s.total, s.detected = tR.Sub(tBad), true
	r, err := result(ctx, run, 30*time.Second)
	if err != nil {
		return s, err
	}
	if r.Outcome != workflows.OutcomeRolledBack {
		return s, fmt.Errorf("%s: outcome %s (%s), want rolled-back", spec.service, r.Outcome, r.Reason)
	}
	evs, err := history(ctx, b.tc, run.GetID(), run.GetRunID())
	if err != nil {
		return s, err
	}
	rs, ok := firstAfter(evs, 0, isActivity("RestoreWeights"))
	if !ok {
		return s, fmt.Errorf("%s: no RestoreWeights in history", spec.service)
	}
	var failing event
	var prev time.Time
	for _, e := range evs {
		if e.id < rs.id && e.typ == enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED && e.activity == "Measure" {
			failing = e
			if !prev.IsZero() {
				s.gaps = append(s.gaps, ms(e.at.Sub(prev)))
			}
			prev = e.at
		}
	}
	mStart, mDone := activityTimes(evs, failing)
	rStart, _ := activityTimes(evs, rs)
	s.detect = max(0, mStart.Sub(tBad))
	s.bd = map[string]float64{
		"1_bad→failing measurement started": ms(mStart.Sub(tBad)),
		"2_measurement ran":                 ms(mDone.Sub(mStart)),
		"3_measured→restore scheduled":      ms(rs.at.Sub(mDone)),
		"4_scheduled→started":               ms(rStart.Sub(rs.at)),
		"5_started→observer sees 100 %":     ms(tR.Sub(rStart)),
	}
	return s, nil
}

func (b *bench) detect(ctx context.Context) error {
	ld, err := b.edgeUnderLoad(b.cfg.BackgroundRPS, false)
	if err != nil {
		return err
	}
	defer ld.Stop()
	var totals, gaps []float64
	bds := breakdowns{}
	for i := 0; i < b.cfg.DetectN; i++ {
		s, err := b.detectOnce(ctx, b.abortSpec("bench-detect"), fmt.Sprintf("v2.detect.%d", i), b.edgeObs, b.st.DemoCanaryURL, nil)
		if err2 := setCanary(b.st.DemoCanaryURL, 0); err == nil {
			err = err2
		}
		if err != nil {
			return fmt.Errorf("detect run %d: %w", i, err)
		}
		if !s.detected {
			return fmt.Errorf("detect run %d: the bad canary was not rolled back within %s", i, b.cfg.DetectTimeout)
		}
		totals = append(totals, ms(s.total))
		gaps = append(gaps, s.gaps...)
		bds.add(s.bd)
		if (i+1)%5 == 0 {
			b.logf("  %d/%d detect runs", i+1, b.cfg.DetectN)
		}
	}
	b.res.CheckIntervalMs = ms(b.cfg.CheckInterval)
	b.res.DetectMs = dist(totals)
	b.res.DetectBreakdown = bds.medians()
	b.res.DetectRoundGapMs = dist(gaps)
	return nil
}
