package main

import (
	"context"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/rollbook/rollbook/internal/haproxywatch"
	"github.com/rollbook/rollbook/workflows"
)

// Phase 1 + 2: floor and abort → restored, interleaved.

func (b *bench) floorOnce(ctx context.Context, i int) (total, toActivity time.Duration, bd map[string]float64, err error) {
	id := fmt.Sprintf("bench-floor-%s-%d", b.runID, i)
	run, err := b.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: b.bareTQ}, bareFloorWorkflow)
	if err != nil {
		return 0, 0, nil, err
	}
	// Wait until the workflow is idle, waiting for its signal.
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs, err := history(ctx, b.tc, id, run.GetRunID())
		if err != nil {
			return 0, 0, nil, err
		}
		if _, ok := firstAfter(evs, 0, isType(enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)); ok {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, nil, fmt.Errorf("floor workflow %s never ran its first task", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(jitter(50*time.Millisecond, 100*time.Millisecond))
	t0 := time.Now()
	if err := b.tc.SignalWorkflow(ctx, id, run.GetRunID(), bareSignal, nil); err != nil {
		return 0, 0, nil, err
	}
	gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = run.Get(gctx, nil)
	cancel()
	t1 := time.Now()
	if err != nil {
		return 0, 0, nil, fmt.Errorf("floor workflow %s: %w", id, err)
	}
	v, ok := activityStarts.LoadAndDelete(id)
	if !ok {
		return 0, 0, nil, fmt.Errorf("floor workflow %s: activity start not recorded", id)
	}
	evs, err := history(ctx, b.tc, id, run.GetRunID())
	if err != nil {
		return 0, 0, nil, err
	}
	sig, _ := firstAfter(evs, 0, isType(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED))
	sched, _ := firstAfter(evs, sig.id, isActivity(bareActivity))
	started, completed := activityTimes(evs, sched)
	done, _ := firstAfter(evs, sched.id, isType(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED))
	bd = map[string]float64{
		"1_client→signal event":            ms(sig.at.Sub(t0)),
		"2_signal→activity scheduled":      ms(sched.at.Sub(sig.at)),
		"3_scheduled→started":              ms(started.Sub(sched.at)),
		"4_activity ran":                   ms(completed.Sub(started)),
		"5_completed→workflow completed":   ms(done.at.Sub(completed)),
		"6_workflow completed→client sees": ms(t1.Sub(done.at)),
	}
	return t1.Sub(t0), v.(time.Time).Sub(t0), bd, nil
}

// abortSpec: a Consul step, then traffic 50/50, then verification at the
// check interval; the abort arrives while it verifies.
func (b *bench) abortSpec(service string) runbookSpec {
	return runbookSpec{service: service, route: edgeRoute, flag: true, stages: []int{50}, verify: true, interval: b.cfg.CheckInterval}
}

type abortSample struct {
	total        time.Duration
	bd           map[string]float64
	firstTraffic bool
	wfts         int
}

func (b *bench) abortOnce(ctx context.Context, i int) (s abortSample, err error) {
	spec := b.abortSpec("bench-abort")
	bun, err := b.dep.bundle(spec, fmt.Sprintf("v2.abort.%d", i))
	if err != nil {
		return s, err
	}
	tStart := time.Now()
	run, err := b.dep.start(ctx, bun)
	if err != nil {
		return s, err
	}
	defer b.abandon(ctx, run, &err)
	if _, err := b.edgeObs.WaitFor(ctx, tStart, 20*time.Second, func(w haproxywatch.Weights) bool { return w.CanaryPct() == 50 }); err != nil {
		return s, err
	}
	// Land anywhere in a verification round: during a measurement or
	// during the wait between two.
	time.Sleep(jitter(150*time.Millisecond, b.cfg.CheckInterval+200*time.Millisecond))
	t0 := time.Now()
	if err := abort(ctx, b.tc, spec.service, "benchmark abort"); err != nil {
		return s, err
	}
	tR, err := b.edgeObs.WaitFor(ctx, t0, 20*time.Second, haproxywatch.Weights.Restored)
	if err != nil {
		return s, err
	}
	s.total = tR.Sub(t0)
	r, err := result(ctx, run, 30*time.Second)
	if err != nil {
		return s, err
	}
	if r.Outcome != workflows.OutcomeAborted {
		return s, fmt.Errorf("abort run %d: outcome %s (%s), want aborted", i, r.Outcome, r.Reason)
	}
	evs, err := history(ctx, b.tc, run.GetID(), run.GetRunID())
	if err != nil {
		return s, err
	}
	sig, ok := firstAfter(evs, 0, func(e event) bool {
		return e.typ == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED && e.signal == workflows.SignalAbort
	})
	if !ok {
		return s, fmt.Errorf("abort run %d: no abort signal in history", i)
	}
	// Only compensations count: a verification round whose timer fired in
	// the same workflow task as the signal schedules its Measure first,
	// and the abort cancels it in that same task.
	first, _ := firstAfter(evs, sig.id, func(e event) bool {
		return e.typ == enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED &&
			(e.activity == "RestoreWeights" || e.activity == "RestoreKV" || e.activity == "MigrateDown")
	})
	s.firstTraffic = first.activity == "RestoreWeights"
	rs, ok := firstAfter(evs, sig.id, isActivity("RestoreWeights"))
	if !ok {
		return s, fmt.Errorf("abort run %d: no RestoreWeights after the signal", i)
	}
	for _, e := range evs {
		if e.id > sig.id && e.id < rs.id && e.typ == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
			s.wfts++
		}
	}
	started, _ := activityTimes(evs, rs)
	s.bd = map[string]float64{
		"1_client→signal event":         ms(sig.at.Sub(t0)),
		"2_signal→restore scheduled":    ms(rs.at.Sub(sig.at)),
		"3_scheduled→started":           ms(started.Sub(rs.at)),
		"4_started→observer sees 100 %": ms(tR.Sub(started)),
	}
	return s, nil
}

func (b *bench) floorAndAbort(ctx context.Context) error {
	ld, err := b.edgeUnderLoad(b.cfg.BackgroundRPS, false)
	if err != nil {
		return err
	}
	defer ld.Stop()
	var floor, toAct, aborts []float64
	floorBD, abortBD := breakdowns{}, breakdowns{}
	firstTraffic, wftsOne := 0, 0
	n := max(b.cfg.FloorN, b.cfg.AbortN)
	for i := 0; i < n; i++ {
		if i < b.cfg.FloorN {
			total, act, bd, err := b.floorOnce(ctx, i)
			if err != nil {
				return fmt.Errorf("floor run %d: %w", i, err)
			}
			floor, toAct = append(floor, ms(total)), append(toAct, ms(act))
			floorBD.add(bd)
		}
		if i < b.cfg.AbortN {
			s, err := b.abortOnce(ctx, i)
			if err != nil {
				return fmt.Errorf("abort run %d: %w", i, err)
			}
			aborts = append(aborts, ms(s.total))
			abortBD.add(s.bd)
			if s.firstTraffic {
				firstTraffic++
			}
			if s.wfts == 1 {
				wftsOne++
			}
		}
		if (i+1)%10 == 0 {
			b.logf("  %d/%d floor + abort runs", i+1, n)
		}
	}
	b.res.FloorMs, b.res.FloorToActivityMs, b.res.AbortMs = dist(floor), dist(toAct), dist(aborts)
	b.res.FloorBreakdown, b.res.AbortBreakdown = floorBD.medians(), abortBD.medians()
	if b.res.FloorMs.P50 > 0 {
		b.res.AbortRatioP50 = round2(b.res.AbortMs.P50 / b.res.FloorMs.P50)
	}
	b.res.AbortFirstTraffic = fmt.Sprintf("%d/%d", firstTraffic, len(aborts))
	b.res.AbortWFTs = fmt.Sprintf("1 in %d/%d", wftsOne, len(aborts))
	c, _, _ := ld.Stop()
	if c.Errors > 0 {
		b.logf("  note: %d client errors during the floor/abort runs (healthy canary)", c.Errors)
	}
	return nil
}
