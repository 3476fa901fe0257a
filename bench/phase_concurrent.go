package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/rollbook/rollbook/runbook"
	"github.com/rollbook/rollbook/workflows"
)

// Phase 6: many deployments at once.

func (b *bench) concurrent(ctx context.Context) error {
	n := b.cfg.Concurrent
	const activitiesEach = 4 // CaptureKV, ApplyKV, CaptureWeights, SetWeights
	c := &b.res.Concurrent
	c.Deploys, c.ActivitiesEach = n, activitiesEach

	// Bare first: the same number of workflows with the same number of
	// activities, Temporal alone.
	bareIDs := make([]string, n)
	for i := range bareIDs {
		bareIDs[i] = fmt.Sprintf("bench-bare-%s-%03d", b.runID, i)
	}
	cpu0 := b.cpu()
	wall, failed, _ := runAll(ctx, n, func(ctx context.Context, i int, started func()) error {
		run, err := b.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: bareIDs[i], TaskQueue: b.bareTQ}, bareSeqWorkflow, activitiesEach)
		started()
		if err != nil {
			return err
		}
		return run.Get(ctx, nil)
	})
	c.BareWallS, c.BareFailed = round2(wall.Seconds()), failed
	c.BareCPUS = cpuDelta(cpu0, b.cpu())
	b.logf("  %d bare workflows: %.2f s, %d failed", n, wall.Seconds(), failed)

	bundles := make([]*runbook.Bundle, n)
	for i := range bundles {
		spec := runbookSpec{service: fmt.Sprintf("bench-c-%03d", i), route: route{router: "bench", backend: b.bh.concurrentBack[i]}, flag: true, stages: []int{50}}
		bun, err := b.dep.bundle(spec, "v2")
		if err != nil {
			return err
		}
		bundles[i] = bun
	}
	cpu0 = b.cpu()
	wall, failed, samples := runAll(ctx, n, func(ctx context.Context, i int, started func()) error {
		run, err := b.dep.start(ctx, bundles[i])
		started()
		if err != nil {
			return err
		}
		var r workflows.Result
		if err := run.Get(ctx, &r); err != nil {
			return err
		}
		if r.Outcome != workflows.OutcomeSucceeded {
			return fmt.Errorf("%s: %s (%s)", bundles[i].Runbook.Service, r.Outcome, r.Reason)
		}
		return nil
	})
	c.WallS, c.Failed, c.FailureSamples = round2(wall.Seconds()), failed, samples
	c.DeployCPUS = cpuDelta(cpu0, b.cpu())
	b.logf("  %d deployments: %.2f s, %d failed", n, wall.Seconds(), failed)
	for _, m := range samples {
		b.logf("    failure: %s", m)
	}
	depIDs := make([]string, n)
	for i := range depIDs {
		depIDs[i] = workflows.WorkflowID(bundles[i].Runbook.Service)
	}
	c.Breakdown = map[string]TaskStats{}
	for name, ids := range map[string][]string{"bare": bareIDs, "deploy": depIDs} {
		st, err := b.taskStats(ctx, ids)
		if err != nil {
			return err
		}
		c.Breakdown[name] = st
	}
	if c.BareWallS > 0 {
		c.Ratio = round2(c.WallS / c.BareWallS)
	}
	return nil
}

// runAll runs f for 0..n-1 at once and returns the wall time from the first
// start to the last end, the failures and a few of their messages. At most
// 20 start requests are in flight at a time (f calls started() once its
// start request returned); the workflows themselves all run concurrently.
func runAll(ctx context.Context, n int, f func(ctx context.Context, i int, started func()) error) (time.Duration, int, []string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		failed  int
		samples []string
	)
	starting := make(chan struct{}, 20)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		starting <- struct{}{}
		wg.Go(func() {
			var once sync.Once
			release := func() { once.Do(func() { <-starting }) }
			defer release()
			if err := f(ctx, i, release); err != nil {
				mu.Lock()
				failed++
				if len(samples) < 5 {
					samples = append(samples, err.Error())
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return time.Since(t0), failed, samples
}

// cpu reads the CPU seconds used so far by the processes that do the work of
// phase 6: the Temporal server, the rollbook worker and this process (which
// hosts the bare workflows' worker).
func (b *bench) cpu() map[string]float64 {
	m := map[string]float64{"worker": cpuSeconds(b.worker.pid()), "bench (bare worker)": cpuSeconds(os.Getpid())}
	if pid, ok := b.st.PIDs()["temporal"]; ok {
		m["temporal server"] = cpuSeconds(pid)
	}
	return m
}

func cpuDelta(a, b map[string]float64) map[string]float64 {
	d := map[string]float64{}
	for k, v := range b {
		d[k] = round2(v - a[k])
	}
	return d
}

// TaskStats summarises where the time of many workflows went (ms).
type TaskStats struct {
	WorkflowTasksEach float64 `json:"workflow_tasks_each"`
	ActivitiesEach    float64 `json:"activities_each"`
	WFTQueue          Dist    `json:"workflow_task_schedule_to_start_ms"`
	WFTRun            Dist    `json:"workflow_task_start_to_complete_ms"`
	ActQueue          Dist    `json:"activity_schedule_to_start_ms"`
	ActRun            Dist    `json:"activity_start_to_complete_ms"`
	WorkflowTotal     Dist    `json:"workflow_first_to_last_event_ms"`
}

func (b *bench) taskStats(ctx context.Context, ids []string) (TaskStats, error) {
	var all taskTimes
	var totals []float64
	found := 0
	for _, id := range ids {
		evs, err := history(ctx, b.tc, id, "")
		if err != nil {
			// A deployment that failed to start has no history; it is
			// counted as failed already.
			continue
		}
		found++
		t := splitTasks(evs)
		all.wftQueue = append(all.wftQueue, t.wftQueue...)
		all.wftRun = append(all.wftRun, t.wftRun...)
		all.actQueue = append(all.actQueue, t.actQueue...)
		all.actRun = append(all.actRun, t.actRun...)
		all.wfts += t.wfts
		all.acts += t.acts
		totals = append(totals, t.total)
	}
	n := float64(max(found, 1))
	return TaskStats{
		WorkflowTasksEach: round1(float64(all.wfts) / n), ActivitiesEach: round1(float64(all.acts) / n),
		WFTQueue: dist(all.wftQueue), WFTRun: dist(all.wftRun), ActQueue: dist(all.actQueue), ActRun: dist(all.actRun),
		WorkflowTotal: dist(totals),
	}, nil
}
