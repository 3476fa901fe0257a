package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rollbook/rollbook/internal/haproxywatch"
	"github.com/rollbook/rollbook/internal/stats"
)

// Dist is a latency distribution in milliseconds (nearest-rank percentiles).
type Dist struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Min float64 `json:"min"`
	Max float64 `json:"max"`
	N   int     `json:"n"`
}

func dist(ms []float64) Dist {
	if len(ms) == 0 {
		return Dist{}
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	return Dist{P50: round1(pct(s, 50)), P99: round1(pct(s, 99)), Min: round1(s[0]), Max: round1(s[len(s)-1]), N: len(s)}
}

// pct is the nearest-rank percentile of sorted s.
func pct(s []float64, p float64) float64 {
	if len(s) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func median(s []float64) float64 {
	c := slices.Clone(s)
	slices.Sort(c)
	return round1(pct(c, 50))
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func round2(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }

// BadCanary is the blast radius of a failing canary. The top-level numbers
// add up the retry-on and retry-off runs, which use the same runbook as the
// detect runs (a router check on the canary's error rate).
type BadCanary struct {
	Runs                 int     `json:"runs"`
	CanaryPercent        int     `json:"canary_percent"`
	ErrorRate            float64 `json:"bad_error_rate"`
	RPS                  float64 `json:"rps"`
	Requests             int64   `json:"requests"`
	ReachedBad           int64   `json:"reached_bad"`
	LeastPossibleReached float64 `json:"least_possible_reached_bad"`
	ReachedBadRatio      float64 `json:"reached_bad_ratio"`
	ClientErrorsRetryOn  int64   `json:"client_errors_retry_on"`
	ClientErrorsRetryOff int64   `json:"client_errors_retry_off"`
	UndetectedRuns       int     `json:"undetected_runs"`
	DetectToRestoredMs   Dist    `json:"detect_to_restored_ms"`
	// Issue 14 (phase 8, fast_detect): client errors per incident that no
	// retry can hide (nothing retried: unkeyed writes, clients that do not
	// retry), 10 % canary failing every request, 500 rps. The headline is
	// rollbook's continuous check with HAProxy's observe layer7 on the
	// canary (the dev stack's gateway); then the same without observe, and
	// the seed's loop.
	UnkeyedClientErrorsPerIncident float64 `json:"unkeyed_client_errors_per_incident"`
	UnkeyedWithoutObserve          float64 `json:"unkeyed_client_errors_per_incident_without_observe"`
	UnkeyedSeedLoop                float64 `json:"unkeyed_client_errors_per_incident_seed_loop"`
	UnkeyedSeedLoopObserve         float64 `json:"unkeyed_client_errors_per_incident_seed_loop_observe"`
	RetryOn                        BadSide `json:"retry_on"`
	RetryOff                       BadSide `json:"retry_off"`
	// RetryOnProbe is retry-to-stable on with a runbook that also probes
	// the canary directly (an http check), which HAProxy's retries cannot
	// hide.
	RetryOnProbe BadSide `json:"retry_on_probe"`
}

// BadSide is one gateway configuration and runbook of the bad-canary runs.
// Requests and ReachedBad count from the bad instant to the restore (plus
// 300 ms for answers in flight); ClientErrors count the whole load.
type BadSide struct {
	Backend       string    `json:"backend"`
	Checks        string    `json:"checks"`
	Runs          int       `json:"runs"`
	Requests      int64     `json:"requests"`
	ReachedBad    int64     `json:"reached_bad"`
	ClientSawBad  int64     `json:"client_saw_bad_version"`
	LeastPossible float64   `json:"least_possible_reached_bad"`
	ClientErrors  int64     `json:"client_errors"`
	Undetected    int       `json:"undetected"`
	DetectMs      []float64 `json:"detect_ms"`
	RestoredMs    []float64 `json:"restored_ms"`
	Evidence      string    `json:"evidence,omitempty"`
}

// Concurrent is the many-deployments-at-once comparison.
type Concurrent struct {
	Deploys         int                  `json:"deploys"`
	Failed          int                  `json:"failed"`
	WallS           float64              `json:"wall_s"`
	BareWallS       float64              `json:"bare_wall_s"`
	Ratio           float64              `json:"ratio"`
	WorkerPeakRSSMB float64              `json:"worker_peak_rss_mb"`
	WorkerRSSEndMB  float64              `json:"worker_rss_end_mb"`
	BareFailed      int                  `json:"bare_failed"`
	ActivitiesEach  int                  `json:"activities_each"`
	FailureSamples  []string             `json:"failure_samples,omitempty"`
	Breakdown       map[string]TaskStats `json:"breakdown,omitempty"`
	// CPU seconds used during each half, by process.
	BareCPUS   map[string]float64 `json:"bare_cpu_s,omitempty"`
	DeployCPUS map[string]float64 `json:"deploy_cpu_s,omitempty"`
}

// Results is bench/results/latest.json.
type Results struct {
	FloorMs         Dist       `json:"floor_signal_activity_ms"`
	AbortMs         Dist       `json:"abort_to_restored_ms"`
	AbortRatioP50   float64    `json:"abort_ratio_p50"`
	CheckIntervalMs float64    `json:"check_interval_ms"`
	DetectMs        Dist       `json:"detect_to_restored_ms"`
	SwitchCycles    int        `json:"switch_cycles"`
	SwitchRequests  int64      `json:"switch_requests"`
	SwitchRPS       float64    `json:"switch_rps"`
	SwitchErrors    int64      `json:"switch_client_errors"`
	BadCanary       BadCanary  `json:"bad_canary"`
	Concurrent      Concurrent `json:"concurrent"`
	Writes          Writes     `json:"writes"`

	// Issue 14: continuous detection against the seed's loop, false
	// rollbacks of healthy canaries, the sequential test's simulation.
	FastMs            Dist            `json:"fast_detect_to_restored_ms"`
	SeedLoopMs        Dist            `json:"seed_loop_detect_to_restored_ms"`
	FastVsSeedLoopP50 float64         `json:"fast_vs_seed_loop_p50"`
	FalseRollbacks    FalseRollbacks  `json:"false_rollbacks"`
	Sequential        stats.SimReport `json:"sequential"`
	Fast              FastDetect      `json:"fast_detect"`

	// Supporting numbers: where the time goes, and how it was measured.
	FloorToActivityMs Dist               `json:"floor_signal_to_activity_ms"`
	FloorBreakdown    map[string]float64 `json:"floor_breakdown_p50_ms"`
	AbortBreakdown    map[string]float64 `json:"abort_breakdown_p50_ms"`
	AbortFirstTraffic string             `json:"abort_first_compensation_traffic"`
	AbortWFTs         string             `json:"abort_workflow_tasks_signal_to_restore"`
	DetectBreakdown   map[string]float64 `json:"detect_breakdown_p50_ms"`
	DetectRoundGapMs  Dist               `json:"detect_check_round_gap_ms"`
	SwitchLatencyP99  float64            `json:"switch_latency_p99_ms"`
	SwitchErrorSample []string           `json:"switch_error_samples,omitempty"`
	Observer          haproxywatch.Stats `json:"observer"`
	Targets           []Target           `json:"targets"`
	Run               RunInfo            `json:"run"`
}

// RunInfo describes the run and the machine.
type RunInfo struct {
	Mode        string  `json:"mode"`
	StartedAt   string  `json:"started_at"`
	DurationS   float64 `json:"duration_s"`
	CPUs        int     `json:"cpus"`
	LoadBefore  string  `json:"loadavg_before"`
	LoadAfter   string  `json:"loadavg_after"`
	GoVersion   string  `json:"go_version"`
	HAProxy     string  `json:"haproxy"`
	Stack       string  `json:"stack"`
	TaskQueue   string  `json:"task_queue"`
	BackgroundR int     `json:"background_rps"`
	Command     string  `json:"command"`
}

// Target is one of issue 4's targets, evaluated.
type Target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Met  bool   `json:"met"`
}

func (r *Results) evaluate() {
	t := func(name, want, got string, met bool) {
		r.Targets = append(r.Targets, Target{name, want, got, met})
	}
	t("switch_client_errors", "0 with ≥50 cycles, ≥100000 requests, ≥500 rps",
		fmt.Sprintf("%d errors, %d cycles, %d requests, %.0f rps", r.SwitchErrors, r.SwitchCycles, r.SwitchRequests, r.SwitchRPS),
		r.SwitchErrors == 0 && r.SwitchCycles >= 50 && r.SwitchRequests >= 100000 && r.SwitchRPS >= 500)
	t("abort_ratio_p50", "≤ 1.5", fmt.Sprintf("%.2f", r.AbortRatioP50), r.AbortRatioP50 > 0 && r.AbortRatioP50 <= 1.5)
	limit := r.CheckIntervalMs + 3*r.FloorMs.P50
	t("detect_to_restored_ms.p50", fmt.Sprintf("≤ check interval + 3 × floor p50 = %.0f", limit), fmt.Sprintf("%.0f", r.DetectMs.P50),
		r.DetectMs.N > 0 && r.DetectMs.P50 <= limit)
	b := r.BadCanary
	t("client_errors_retry_on", "0 (GET traffic)", fmt.Sprintf("%d (retry off: %d)", b.ClientErrorsRetryOn, b.ClientErrorsRetryOff), b.RetryOn.Runs > 0 && b.ClientErrorsRetryOn == 0)
	got := fmt.Sprintf("%d vs %.0f (%.2f×)", b.ReachedBad, b.LeastPossibleReached, b.ReachedBadRatio)
	if b.UndetectedRuns > 0 {
		got += fmt.Sprintf(", %d runs never detected", b.UndetectedRuns)
	}
	t("reached_bad", "≤ 2 × least possible", got, b.Runs > 0 && b.UndetectedRuns == 0 && float64(b.ReachedBad) <= 2*b.LeastPossibleReached)
	wr := r.Writes
	t("writes.lost", "0", fmt.Sprintf("%d of %d acknowledged", wr.Lost, wr.Acknowledged), wr.Runs > 0 && wr.Acknowledged > 0 && wr.Lost == 0)
	t("writes.duplicates", "0", fmt.Sprintf("%d", wr.Duplicates), wr.Runs > 0 && wr.Duplicates == 0)
	t("writes.keyed_client_errors", "0 (retried with the same key)", fmt.Sprintf("%d of %d (unkeyed: %d of %d)", wr.KeyedClientErrors, wr.KeyedWrites, wr.UnkeyedClientErrors, wr.UnkeyedWrites),
		wr.Runs > 0 && wr.KeyedClientErrors == 0)
	c := r.Concurrent
	t("concurrent.failed", "0", fmt.Sprintf("%d of %d", c.Failed, c.Deploys), c.Deploys > 0 && c.Failed == 0)
	t("concurrent.ratio", "≤ 1.5", fmt.Sprintf("%.2f", c.Ratio), c.Ratio > 0 && c.Ratio <= 1.5)
	t("worker_peak_rss_mb", "≤ 150", fmt.Sprintf("%.1f", c.WorkerPeakRSSMB), c.WorkerPeakRSSMB > 0 && c.WorkerPeakRSSMB <= 150)
	r.evaluateDetection(t)
}

// evaluateDetection adds issue 14's targets.
func (r *Results) evaluateDetection(t func(name, want, got string, met bool)) {
	t("fast_detect_to_restored_ms.p50", fmt.Sprintf("≤ 150 (continuous check, round interval %.0f ms)", r.Fast.CheckIntervalMs),
		fmt.Sprintf("%.0f (n %d, undetected %d)", r.FastMs.P50, r.FastMs.N, r.Fast.Rollbook.Undetected), r.FastMs.N > 0 && r.Fast.Rollbook.Undetected == 0 && r.FastMs.P50 <= 150)
	t("fast_vs_seed_loop_p50", "≤ 0.3", fmt.Sprintf("%.2f (%.0f vs %.0f ms)", r.FastVsSeedLoopP50, r.FastMs.P50, r.SeedLoopMs.P50),
		r.SeedLoopMs.N > 0 && r.FastVsSeedLoopP50 > 0 && r.FastVsSeedLoopP50 <= 0.3)
	b := r.BadCanary
	t("unkeyed_client_errors_per_incident", "≤ 10 (500 rps, 10 % canary failing 100 %)",
		fmt.Sprintf("%.1f (without observe %.1f; seed loop %.1f, with observe %.1f)", b.UnkeyedClientErrorsPerIncident, b.UnkeyedWithoutObserve, b.UnkeyedSeedLoop, b.UnkeyedSeedLoopObserve),
		r.Fast.RollbookObserve.Runs > 0 && r.Fast.RollbookObserve.Undetected == 0 && b.UnkeyedClientErrorsPerIncident <= 10)
	f := r.FalseRollbacks
	t("false_rollbacks", "0 in ≥ 20 healthy runs", fmt.Sprintf("%d in %d", f.Rollbacks, f.HealthyRuns), f.HealthyRuns >= 20 && f.Rollbacks == 0)
	sq := r.Sequential
	t("sequential.false_rate", "≤ significance", fmt.Sprintf("%.3f ≤ %.2f (repeated Fisher: %.3f)", sq.FalseRate, sq.Significance, sq.FisherFalseRate),
		sq.Significance > 0 && sq.FalseRate <= sq.Significance)
}

// table prints the results the way the README shows them.
func (r *Results) table(w io.Writer) {
	row := func(k, v string) { fmt.Fprintf(w, "  %-44s %s\n", k, v) }
	d := func(x Dist) string { return fmt.Sprintf("p50 %6.1f   p99 %6.1f   n %d", x.P50, x.P99, x.N) }
	fmt.Fprintf(w, "\nrollbook benchmark — %s mode, %s, %d CPUs, load avg before %s / after %s, %.0f s\n\n",
		r.Run.Mode, r.Run.StartedAt, r.Run.CPUs, r.Run.LoadBefore, r.Run.LoadAfter, r.Run.DurationS)
	row("floor_signal_activity_ms", d(r.FloorMs))
	row("  (signal → activity started)", d(r.FloorToActivityMs))
	row("abort_to_restored_ms", d(r.AbortMs))
	row("abort_ratio_p50", fmt.Sprintf("%.2f", r.AbortRatioP50))
	row("check_interval_ms", fmt.Sprintf("%.0f", r.CheckIntervalMs))
	row("detect_to_restored_ms", d(r.DetectMs))
	row("switch_cycles", fmt.Sprintf("%d", r.SwitchCycles))
	row("switch_requests", fmt.Sprintf("%d", r.SwitchRequests))
	row("switch_rps", fmt.Sprintf("%.0f", r.SwitchRPS))
	row("switch_client_errors", fmt.Sprintf("%d", r.SwitchErrors))
	b := r.BadCanary
	row("bad_canary.requests", fmt.Sprintf("%d", b.Requests))
	row("bad_canary.reached_bad", fmt.Sprintf("%d", b.ReachedBad))
	row("bad_canary.least_possible_reached_bad", fmt.Sprintf("%.0f  (ratio %.2f)", b.LeastPossibleReached, b.ReachedBadRatio))
	row("bad_canary.client_errors_retry_on", fmt.Sprintf("%d", b.ClientErrorsRetryOn))
	row("bad_canary.client_errors_retry_off", fmt.Sprintf("%d", b.ClientErrorsRetryOff))
	for _, side := range []struct {
		name string
		s    BadSide
	}{{"retry on", b.RetryOn}, {"retry off", b.RetryOff}, {"retry on + canary probe", b.RetryOnProbe}} {
		if side.s.Runs == 0 {
			continue
		}
		row("  "+side.name, fmt.Sprintf("runs %d, undetected %d, reached bad %d (least %.0f), client errors %d, detect ms %v",
			side.s.Runs, side.s.Undetected, side.s.ReachedBad, side.s.LeastPossible, side.s.ClientErrors, side.s.DetectMs))
	}
	wr := r.Writes
	row("writes.acknowledged", fmt.Sprintf("%d  (lost %d, duplicates %d, found only in the archive %d)", wr.Acknowledged, wr.Lost, wr.Duplicates, wr.FoundInArchive))
	row("writes.keyed_client_errors", fmt.Sprintf("%d of %d", wr.KeyedClientErrors, wr.KeyedWrites))
	row("writes.unkeyed_client_errors", fmt.Sprintf("%d of %d", wr.UnkeyedClientErrors, wr.UnkeyedWrites))
	row("writes.read_client_errors", fmt.Sprintf("%d of %d", wr.ReadClientErrors, wr.Reads))
	row("writes.archived_rows", fmt.Sprintf("%d", wr.ArchivedRows))
	for _, a := range wr.Archives {
		row("  archived", a)
	}
	r.detectionTable(row, d)
	c := r.Concurrent
	row("concurrent.deploys", fmt.Sprintf("%d", c.Deploys))
	row("concurrent.failed", fmt.Sprintf("%d", c.Failed))
	row("concurrent.wall_s", fmt.Sprintf("%.2f", c.WallS))
	row("concurrent.bare_wall_s", fmt.Sprintf("%.2f", c.BareWallS))
	row("concurrent.ratio", fmt.Sprintf("%.2f", c.Ratio))
	row("concurrent.worker_peak_rss_mb", fmt.Sprintf("%.1f", c.WorkerPeakRSSMB))

	fmt.Fprintf(w, "\nwhere the time goes (p50, ms; from Temporal history event times and the observer):\n")
	breakdown(w, "floor", r.FloorBreakdown)
	breakdown(w, "abort", r.AbortBreakdown)
	fmt.Fprintf(w, "  abort: first compensation is traffic in %s runs; workflow tasks from signal to restore scheduled: %s\n", r.AbortFirstTraffic, r.AbortWFTs)
	breakdown(w, "detect", r.DetectBreakdown)
	breakdown(w, "fast detect", r.Fast.Rollbook.Breakdown)
	fmt.Fprintf(w, "  detect: gap between check rounds p50 %.0f ms, p99 %.0f ms\n", r.DetectRoundGapMs.P50, r.DetectRoundGapMs.P99)
	if bb, ok := r.Concurrent.Breakdown["bare"]; ok {
		db := r.Concurrent.Breakdown["deploy"]
		fmt.Fprintf(w, "  concurrent (bare | deploy): workflow tasks each %.1f | %.1f, activities each %.1f | %.1f\n", bb.WorkflowTasksEach, db.WorkflowTasksEach, bb.ActivitiesEach, db.ActivitiesEach)
		fmt.Fprintf(w, "    workflow task queued p50/p99 %.0f/%.0f | %.0f/%.0f, ran %.0f/%.0f | %.0f/%.0f; activity queued %.0f/%.0f | %.0f/%.0f, ran %.0f/%.0f | %.0f/%.0f\n",
			bb.WFTQueue.P50, bb.WFTQueue.P99, db.WFTQueue.P50, db.WFTQueue.P99, bb.WFTRun.P50, bb.WFTRun.P99, db.WFTRun.P50, db.WFTRun.P99,
			bb.ActQueue.P50, bb.ActQueue.P99, db.ActQueue.P50, db.ActQueue.P99, bb.ActRun.P50, bb.ActRun.P99, db.ActRun.P50, db.ActRun.P99)
		fmt.Fprintf(w, "    CPU s: temporal server %.1f | %.1f, rollbook worker – | %.1f, bench process (bare worker) %.1f | %.1f\n",
			r.Concurrent.BareCPUS["temporal server"], r.Concurrent.DeployCPUS["temporal server"], r.Concurrent.DeployCPUS["worker"],
			r.Concurrent.BareCPUS["bench (bare worker)"], r.Concurrent.DeployCPUS["bench (bare worker)"])
	}
	fmt.Fprintf(w, "  observer: polls HAProxy every %.0f ms (mean period %.2f ms, %d polls)\n", r.Observer.PollEveryMs, r.Observer.MeanPeriodMs, r.Observer.Polls)

	if r.Run.Mode == "smoke" {
		fmt.Fprintf(w, "\ntargets (issue 4; a smoke run is too small for some of them):\n")
	} else {
		fmt.Fprintf(w, "\ntargets (issue 4):\n")
	}
	for _, t := range r.Targets {
		mark := "met   "
		if !t.Met {
			mark = "MISSED"
		}
		fmt.Fprintf(w, "  %s  %-28s want %-48s got %s\n", mark, t.Name, t.Want, t.Got)
	}
}

// detectionTable prints issue 14's rows.
func (r *Results) detectionTable(row func(k, v string), d func(Dist) string) {
	f := r.Fast
	row("fast_detect_to_restored_ms", d(r.FastMs)+fmt.Sprintf("   (continuous check, rounds every %.0f ms)", f.CheckIntervalMs))
	row("seed_loop_detect_to_restored_ms", d(r.SeedLoopMs))
	row("fast_vs_seed_loop_p50", fmt.Sprintf("%.2f", r.FastVsSeedLoopP50))
	b := r.BadCanary
	row("bad_canary.unkeyed_client_errors_per_incident", fmt.Sprintf("%.1f  (without observe %.1f; seed loop %.1f, with observe %.1f)",
		b.UnkeyedClientErrorsPerIncident, b.UnkeyedWithoutObserve, b.UnkeyedSeedLoop, b.UnkeyedSeedLoopObserve))
	for _, s := range []FastSide{f.Rollbook, f.RollbookObserve, f.SeedLoop, f.SeedLoopObserve} {
		if s.Runs == 0 {
			continue
		}
		row("  "+s.Backend, fmt.Sprintf("%s: %s, errors/incident %.1f, HAProxy marked down in %d", s.Detector, d(s.RestoredMs), s.ClientErrorsPerIncident, s.MarkedDown))
	}
	row("false_rollbacks", fmt.Sprintf("%d in %d healthy runs", r.FalseRollbacks.Rollbacks, r.FalseRollbacks.HealthyRuns))
	sq := r.Sequential
	row("sequential", fmt.Sprintf("false rate %.3f (significance %.2f; repeated Fisher %.3f), median requests to detect %.0f (Fisher %.0f)",
		sq.FalseRate, sq.Significance, sq.FisherFalseRate, sq.MedianRequestsToDetect, sq.FisherMedianRequestsToDetect))
}

func breakdown(w io.Writer, name string, m map[string]float64) {
	if len(m) == 0 {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // keys carry a numeric prefix that orders them along the path
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.1f", strings.SplitN(k, "_", 2)[1], m[k]))
	}
	fmt.Fprintf(w, "  %s: %s\n", name, strings.Join(parts, " | "))
}

// write stores latest.json and a copy named by the run's start time.
func (r *Results) write(dir string, started time.Time) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	data = append(data, '\n')
	latest := filepath.Join(dir, "latest.json")
	dated := filepath.Join(dir, started.UTC().Format("2006-01-02T150405Z")+".json")
	for _, p := range []string{latest, dated} {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return nil, err
		}
	}
	return []string{latest, dated}, nil
}
