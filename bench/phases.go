package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/internal/haproxywatch"
	"github.com/rollbook/rollbook/internal/loadgen"
	"github.com/rollbook/rollbook/runbook"
	"github.com/rollbook/rollbook/workflows"
)

var edgeRoute = route{router: "edge", backend: devstack.Backend}

func (b *bench) logf(format string, args ...any) {
	if b.cfg.Log != nil {
		fmt.Fprintf(b.cfg.Log, "bench: "+format+"\n", args...)
	}
}

// resetEdge puts the dev stack's route at stable 100 % and the canary in
// good health.
func (b *bench) resetEdge() error {
	if _, err := haproxywatch.Command(b.st.HAProxySocket, fmt.Sprintf("set server %[1]s/stable weight 100; set server %[1]s/canary weight 0", devstack.Backend)); err != nil {
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

// ---- 1 + 2: floor and abort → restored, interleaved ----

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
	if err := b.resetEdge(); err != nil {
		return err
	}
	ld := loadgen.Start(b.st.HAProxyURL+"/api/payments", b.cfg.BackgroundRPS, false)
	defer ld.Stop()
	var floor, toAct, aborts []float64
	floorBD, abortBD := map[string][]float64{}, map[string][]float64{}
	firstTraffic, wftsOne := 0, 0
	n := max(b.cfg.FloorN, b.cfg.AbortN)
	for i := 0; i < n; i++ {
		if i < b.cfg.FloorN {
			total, act, bd, err := b.floorOnce(ctx, i)
			if err != nil {
				return fmt.Errorf("floor run %d: %w", i, err)
			}
			floor, toAct = append(floor, ms(total)), append(toAct, ms(act))
			for k, v := range bd {
				floorBD[k] = append(floorBD[k], v)
			}
		}
		if i < b.cfg.AbortN {
			s, err := b.abortOnce(ctx, i)
			if err != nil {
				return fmt.Errorf("abort run %d: %w", i, err)
			}
			aborts = append(aborts, ms(s.total))
			for k, v := range s.bd {
				abortBD[k] = append(abortBD[k], v)
			}
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
	b.res.FloorBreakdown, b.res.AbortBreakdown = medians(floorBD), medians(abortBD)
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

// ---- 3: detect → restored ----

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
	if err := b.resetEdge(); err != nil {
		return err
	}
	ld := loadgen.Start(b.st.HAProxyURL+"/api/payments", b.cfg.BackgroundRPS, false)
	defer ld.Stop()
	var totals, gaps []float64
	bds := map[string][]float64{}
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
		for k, v := range s.bd {
			bds[k] = append(bds[k], v)
		}
		if (i+1)%5 == 0 {
			b.logf("  %d/%d detect runs", i+1, b.cfg.DetectN)
		}
	}
	b.res.CheckIntervalMs = ms(b.cfg.CheckInterval)
	b.res.DetectMs = dist(totals)
	b.res.DetectBreakdown = medians(bds)
	b.res.DetectRoundGapMs = dist(gaps)
	return nil
}

// ---- 4: switching is invisible ----

func (b *bench) switching(ctx context.Context) error {
	if err := b.resetEdge(); err != nil {
		return err
	}
	spec := runbookSpec{service: "bench-switch", route: edgeRoute, stages: []int{10, 50, 100}, hold: true}
	ld := loadgen.Start(b.st.HAProxyURL+"/api/payments", b.cfg.SwitchRPS, true)
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

// ---- 5: blast radius of a bad canary ----

// serverStot reads a server's cumulative request count (stot) from
// HAProxy: the requests the gateway sent it, retried ones included.
func serverStot(socket, backend, server string) (int64, error) {
	out, err := haproxywatch.Command(socket, "show stat "+backend+" 4 -1")
	if err != nil {
		return 0, err
	}
	return statField(out, server, "stot")
}

// serverStat returns a few counters of a server for the evidence line.
func serverStat(socket, backend, server string) string {
	out, err := haproxywatch.Command(socket, "show stat "+backend+" 4 -1")
	if err != nil {
		return err.Error()
	}
	var parts []string
	for _, f := range []string{"stot", "hrsp_5xx", "eresp", "wretr", "wredis"} {
		v, err := statField(out, server, f)
		if err != nil {
			return err.Error()
		}
		parts = append(parts, fmt.Sprintf("%s=%d", f, v))
	}
	return strings.Join(parts, " ")
}

func statField(csv, server, field string) (int64, error) {
	lines := strings.Split(csv, "\n")
	if len(lines) < 2 {
		return 0, fmt.Errorf("unexpected show stat answer %q", csv)
	}
	cols := strings.Split(strings.TrimPrefix(lines[0], "# "), ",")
	idx := -1
	for i, c := range cols {
		if c == field {
			idx = i
		}
	}
	if idx < 0 {
		return 0, fmt.Errorf("show stat has no %s column", field)
	}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if len(f) > idx && len(f) > 1 && f[1] == server {
			if f[idx] == "" {
				return 0, nil
			}
			return strconv.ParseInt(f[idx], 10, 64)
		}
	}
	return 0, fmt.Errorf("server %s not in show stat", server)
}

func (b *bench) badCanary(ctx context.Context) error {
	if err := b.resetEdge(); err != nil {
		return err
	}
	bc := &b.res.BadCanary
	bc.CanaryPercent, bc.ErrorRate = b.cfg.BadCanaryPct, b.cfg.BadErrorRate
	var restored []float64
	var rps []float64
	for _, side := range []struct {
		name, backend, url string
		probe              bool
		out                *BadSide
	}{
		{"on", "be_retry_on", b.bh.retryOnURL, false, &bc.RetryOn},
		{"off", "be_retry_off", b.bh.retryOffURL, false, &bc.RetryOff},
		{"on-probe", "be_retry_on", b.bh.retryOnURL, true, &bc.RetryOnProbe},
	} {
		spec := runbookSpec{service: "bench-bad-" + side.name, route: route{router: "bench", backend: side.backend},
			stages: []int{b.cfg.BadCanaryPct}, verify: true, probe: side.probe, interval: b.cfg.CheckInterval}
		side.out.Backend, side.out.Checks = side.backend, "router (canary 5xx rate)"
		if side.probe {
			side.out.Checks += " + http probe of the canary"
		}
		obs, err := haproxywatch.Start(b.bh.socket, side.backend, b.cfg.ObserveEvery)
		if err != nil {
			return err
		}
		ld := loadgen.Start(side.url+"/api/payments", b.cfg.BadRPS, false)
		fail := func(err error) error {
			obs.Stop()
			ld.Stop()
			return fmt.Errorf("bad canary (%s): %w", side.name, err)
		}
		var detectS float64
		for i := 0; i < b.cfg.BadRuns; i++ {
			var before int64
			var snap loadgen.Counts
			s, err := b.detectOnce(ctx, spec, fmt.Sprintf("v2.bad-%s.%d", side.name, i), obs, b.st.DemoCanaryURL, func() error {
				var err error
				before, err = serverStot(b.bh.socket, side.backend, "canary")
				snap = ld.Snapshot()
				return err
			})
			if err != nil {
				_ = setCanary(b.st.DemoCanaryURL, 0)
				return fail(fmt.Errorf("run %d: %w", i, err))
			}
			// Let the answers in flight arrive before counting.
			time.Sleep(300 * time.Millisecond)
			if !s.detected && side.out.Evidence == "" {
				side.out.Evidence = "HAProxy canary counters after an undetected run: " + serverStat(b.bh.socket, side.backend, "canary")
			}
			if err := setCanary(b.st.DemoCanaryURL, 0); err != nil {
				return fail(err)
			}
			after, err := serverStot(b.bh.socket, side.backend, "canary")
			if err != nil {
				return fail(err)
			}
			win := ld.Snapshot().Minus(snap)
			side.out.Runs++
			side.out.Requests += win.Requests
			side.out.ReachedBad += after - before
			side.out.ClientSawBad += win.ByVersion[b.canaryVersion]
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
		rate := float64(c.Requests) / elapsed.Seconds()
		rps = append(rps, rate)
		side.out.LeastPossible = round1(float64(b.cfg.BadCanaryPct) / 100 * detectS * rate)
		side.out.ClientErrors = c.Errors
	}
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
	return nil
}

// ---- 6: many deployments at once ----

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
