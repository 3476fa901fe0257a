package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBenchSmoke runs the whole benchmark in smoke mode (a few cycles of
// each measurement) against a private stack, so that it cannot rot: every
// phase must run, latest.json must carry issue 4's fields, and the
// properties that do not depend on machine load must hold (no client error
// while switching, traffic restored first on abort, no failed concurrent
// deployment). Timing targets are not asserted here: `make bench` measures
// them on a quiet machine.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev stack; skipped with -short")
	}
	cfg := smokeConfig()
	cfg.OutDir = t.TempDir()
	cfg.Log = &testLog{t: t}
	cfg.Command = "go test ./bench -run TestBenchSmoke"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	res, files, err := run(ctx, cfg)
	if err != nil {
		t.Fatalf("benchmark (smoke) failed after %s: %v", time.Since(start).Round(time.Second), err)
	}
	var table bytes.Buffer
	res.table(&table)
	t.Logf("smoke run in %s:\n%s", time.Since(start).Round(time.Second), table.String())

	if res.FloorMs.N != cfg.FloorN || res.AbortMs.N != cfg.AbortN || res.DetectMs.N != cfg.DetectN {
		t.Errorf("samples: floor %d abort %d detect %d, want %d %d %d", res.FloorMs.N, res.AbortMs.N, res.DetectMs.N, cfg.FloorN, cfg.AbortN, cfg.DetectN)
	}
	if res.FloorMs.P50 <= 0 || res.AbortMs.P50 <= 0 || res.DetectMs.P50 <= 0 {
		t.Errorf("latencies must be positive: floor %v abort %v detect %v", res.FloorMs, res.AbortMs, res.DetectMs)
	}
	if want := fmt.Sprintf("%d/%d", cfg.AbortN, cfg.AbortN); res.AbortFirstTraffic != want {
		t.Errorf("the first compensation after an abort was traffic in %s runs, want %s", res.AbortFirstTraffic, want)
	}
	if res.SwitchCycles < cfg.SwitchCycles || res.SwitchRequests < cfg.SwitchMinRequests {
		t.Errorf("switching: %d cycles, %d requests", res.SwitchCycles, res.SwitchRequests)
	}
	if res.SwitchErrors != 0 {
		t.Errorf("switching a healthy canary: %d client errors (%v), want 0", res.SwitchErrors, res.SwitchErrorSample)
	}
	bc := res.BadCanary
	if bc.RetryOff.Runs == 0 || bc.RetryOff.Undetected != 0 || bc.RetryOff.ReachedBad == 0 || bc.ClientErrorsRetryOff == 0 {
		t.Errorf("bad canary, retry off: %+v", bc.RetryOff)
	}
	if bc.RetryOnProbe.Runs == 0 || bc.RetryOnProbe.Undetected != 0 || bc.RetryOnProbe.ClientErrors != 0 {
		t.Errorf("bad canary, retry on with a canary probe: %+v", bc.RetryOnProbe)
	}
	if bc.RetryOn.Runs == 0 || bc.ClientErrorsRetryOn != 0 {
		t.Errorf("bad canary, retry on: %+v", bc.RetryOn)
	}
	// Every acknowledged write survives the rollback of the migrations (found live or in
	// rollbook's archive), none twice, and keyed writes never fail for the client.
	wr := res.Writes
	if wr.Runs != 1 || wr.Acknowledged == 0 || wr.KeyedWrites == 0 || wr.UnkeyedWrites == 0 || wr.Reads == 0 {
		t.Errorf("writes: nothing measured: %+v", wr)
	}
	if wr.Lost != 0 || wr.Duplicates != 0 {
		t.Errorf("writes: %d of %d acknowledged writes lost, %d duplicated: %v", wr.Lost, wr.Acknowledged, wr.Duplicates, wr.Samples)
	}
	if wr.KeyedClientErrors != 0 || wr.ReadClientErrors != 0 {
		t.Errorf("writes: client errors: keyed %d, reads %d, want 0 (%v)", wr.KeyedClientErrors, wr.ReadClientErrors, wr.Samples)
	}
	checkDetection(t, cfg, res)
	c := res.Concurrent
	if c.Deploys != cfg.Concurrent || c.Failed != 0 || c.BareFailed != 0 || c.WallS <= 0 || c.BareWallS <= 0 || c.WorkerPeakRSSMB <= 0 {
		t.Errorf("concurrent: %+v", c)
	}

	if len(files) != 2 {
		t.Fatalf("files written: %v", files)
	}
	if filepath.Base(files[0]) != "latest.json" {
		t.Errorf("first file is %s, want latest.json", files[0])
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("latest.json: %v", err)
	}
	for _, path := range []string{
		"floor_signal_activity_ms.p50", "floor_signal_activity_ms.p99", "floor_signal_activity_ms.n",
		"abort_to_restored_ms.p50", "abort_to_restored_ms.p99", "abort_to_restored_ms.n", "abort_ratio_p50",
		"check_interval_ms", "detect_to_restored_ms.p50", "detect_to_restored_ms.p99", "detect_to_restored_ms.n",
		"switch_cycles", "switch_requests", "switch_rps", "switch_client_errors",
		"bad_canary.requests", "bad_canary.reached_bad", "bad_canary.least_possible_reached_bad",
		"bad_canary.client_errors_retry_on", "bad_canary.client_errors_retry_off",
		"writes.acknowledged", "writes.lost", "writes.duplicates", "writes.keyed_client_errors", "writes.unkeyed_client_errors", "writes.archived_rows",
		"concurrent.deploys", "concurrent.failed", "concurrent.wall_s", "concurrent.bare_wall_s", "concurrent.ratio", "concurrent.worker_peak_rss_mb",
		"fast_detect_to_restored_ms.p50", "fast_detect_to_restored_ms.p99", "fast_detect_to_restored_ms.n",
		"seed_loop_detect_to_restored_ms.p50", "seed_loop_detect_to_restored_ms.p99", "seed_loop_detect_to_restored_ms.n",
		"fast_vs_seed_loop_p50", "bad_canary.unkeyed_client_errors_per_incident",
		"false_rollbacks.healthy_runs", "false_rollbacks.rollbacks",
		"sequential.false_rate", "sequential.significance", "sequential.median_requests_to_detect", "sequential.fisher_median_requests_to_detect",
	} {
		var v any = doc
		for _, k := range strings.Split(path, ".") {
			m, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = m[k]
		}
		if _, ok := v.(float64); !ok {
			t.Errorf("latest.json: %s is %v, want a number", path, v)
		}
	}
}

// checkDetection asserts what issue 14's phases must show whatever the load:
// every detector caught every bad canary (the continuous check through its
// watch activity), HAProxy's observe layer7 took the canary out in some run,
// no healthy canary was rolled back, and the simulation holds its level.
func checkDetection(t *testing.T, cfg Config, res *Results) {
	t.Helper()
	f := res.Fast
	for _, s := range []FastSide{f.SeedLoop, f.Rollbook, f.RollbookObserve, f.SeedLoopObserve} {
		if s.Runs != cfg.FastRuns || s.Undetected != 0 || s.RestoredMs.N != cfg.FastRuns || s.RestoredMs.P50 <= 0 {
			t.Errorf("fast detection, %s: %+v", s.Detector, s)
		}
	}
	for _, s := range []FastSide{f.Rollbook, f.RollbookObserve} {
		if len(s.Breakdown) != 4 {
			t.Errorf("%s: no breakdown through the watch activity: %v", s.Detector, s.Breakdown)
		}
	}
	// The seed's loop takes about a second: HAProxy must have acted first,
	// within its error-limit (5) per time the health check lets the canary
	// back (at most once before the loop's next look).
	if so := f.SeedLoopObserve; so.MarkedDown == 0 || so.ClientErrorsPerIncident > 10 {
		t.Errorf("observe layer7 with the seed's loop: marked down in %d of %d runs, %.1f client errors per incident (error-limit 5)", so.MarkedDown, so.Runs, so.ClientErrorsPerIncident)
	}
	if res.FastMs.N == 0 || res.SeedLoopMs.N == 0 || res.FastVsSeedLoopP50 <= 0 {
		t.Errorf("fast %v, seed loop %v, ratio %v", res.FastMs, res.SeedLoopMs, res.FastVsSeedLoopP50)
	}
	fr := res.FalseRollbacks
	if fr.HealthyRuns != cfg.HealthyRuns || fr.Rollbacks != 0 {
		t.Errorf("false rollbacks: %d of %d healthy runs rolled back: %v", fr.Rollbacks, fr.HealthyRuns, fr.Reasons)
	}
	if sq := res.Sequential; sq.Significance <= 0 || sq.FalseRate > sq.Significance || sq.MedianRequestsToDetect <= 0 {
		t.Errorf("sequential simulation: %+v", sq)
	}
}

// testLog sends the benchmark's progress lines to t.Log.
type testLog struct {
	t  *testing.T
	mu sync.Mutex
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
