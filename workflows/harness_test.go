package workflows

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/rollbook/rollbook/activities"
	"github.com/rollbook/rollbook/runbook"
)

const testMigration = `-- +goose Up
CREATE TABLE t (id INT);
-- +goose Down
DROP TABLE t;
`

// testRunbook is a small canary runbook that uses every step kind.
func testRunbook() runbook.Runbook {
	return runbook.Runbook{
		APIVersion: runbook.APIVersion,
		Service:    "pay",
		Routes: []runbook.Route{{Name: "api", Router: "edge", Backend: "be", Subsets: []string{"stable", "canary"},
			Stable: "stable", Canary: "canary"}},
		Steps: []runbook.Step{
			{Name: "schema", Migrate: &runbook.MigrateStep{Database: "db", Dir: "m"}},
			{Name: "flags", Consul: &runbook.ConsulStep{Set: map[string]string{"app/flag": "on"}, Delete: []string{"app/old"}}},
			{Name: "canary-10", Traffic: &runbook.TrafficStep{Route: "api", Weights: map[string]int{"stable": 90, "canary": 10}}},
			{Name: "verify-10", Verify: &runbook.VerifyStep{Duration: runbook.Duration(30 * time.Second), Interval: runbook.Duration(10 * time.Second),
				Checks: []runbook.Check{{Name: "health", HTTP: &runbook.HTTPCheck{URL: "http://x/healthz"}}}}},
			{Name: "approval", Pause: &runbook.PauseStep{Approval: true}},
			{Name: "canary-100", Traffic: &runbook.TrafficStep{Route: "api", Weights: map[string]int{"stable": 0, "canary": 100}}},
			{Name: "verify-100", Verify: &runbook.VerifyStep{Duration: runbook.Duration(20 * time.Second), Interval: runbook.Duration(10 * time.Second),
				Checks: []runbook.Check{{Name: "health", HTTP: &runbook.HTTPCheck{URL: "http://x/healthz"}}}}},
		},
	}
}

func bundleOf(t *testing.T, rb runbook.Runbook) Input {
	t.Helper()
	b := runbook.Bundle{Runbook: rb, Version: "v2", Source: "test.yaml",
		Files:     []runbook.File{{Path: "m/00001_t.sql", Content: testMigration}, {Path: "m/00002_u.sql", Content: strings.ReplaceAll(testMigration, " t", " u")}},
		StartedBy: runbook.Origin{User: "tester"}}
	h, err := b.ContentHash()
	require.NoError(t, err)
	b.Hash = h
	require.NoError(t, b.Check())
	return Input{Bundle: b}
}

// harness runs Deploy in the test environment with mocked activities and
// records every activity attempt as "Type:step" in order.
type harness struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment
	mu  sync.Mutex
	log []string

	measure        func(activities.MeasureInput) (activities.MeasureResult, error)
	migrateUp      func(activities.MigrateUpInput) (activities.MigrateResult, error)
	migrateDown    func(activities.MigrateDownInput) (activities.RestoreResult, error)
	applyKV        func(activities.KVApplyInput) (activities.KVState, error)
	restoreKV      func(activities.KVRestoreInput) (activities.RestoreResult, error)
	setWeights     func(activities.SetWeightsInput) (activities.WeightState, error)
	restoreWeights func(activities.RestoreWeightsInput) (activities.RestoreResult, error)
	captureWeights func(activities.TrafficInput) (activities.WeightState, error)
	preflight      func(activities.PreflightInput) (activities.PreflightResult, error)
	captureKV      func(activities.KVInput) (activities.KVState, error)
	live           map[string]int // the weights the mocked router holds
	// watch answers a WatchRouter call once watchAfter(step) of workflow
	// time passed since it started (registered per step by mockWatch).
	watch      func(activities.WatchInput) (activities.WatchResult, error)
	watchAfter func(step string) time.Duration
	watches    []activities.WatchInput
	cancelled  []string // "Type:step" of every cancelled activity

	phases   []Phase
	notified []activities.NotifyInput
	// notifyDelay, when set, makes the mocked webhook slow for some phases.
	notifyDelay func(activities.NotifyInput) time.Duration
}

func newHarness(t *testing.T) *harness {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(quietLogger{})
	h := &harness{t: t, env: s.NewTestWorkflowEnvironment()}
	h.env.SetTestTimeout(30 * time.Second)
	h.env.RegisterWorkflowWithOptions(Deploy, workflowRegisterOptions())
	h.env.RegisterWorkflowWithOptions(Revert, RevertRegisterOptions())
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) { return healthy(in), nil }
	h.migrateUp = func(in activities.MigrateUpInput) (activities.MigrateResult, error) {
		return activities.MigrateResult{From: 1, To: 2, Applied: []int64{2}}, nil
	}
	h.migrateDown = func(activities.MigrateDownInput) (activities.RestoreResult, error) {
		return activities.RestoreResult{}, nil
	}
	h.applyKV = func(in activities.KVApplyInput) (activities.KVState, error) {
		return activities.KVState{Entries: []activities.KVEntry{{Key: "app/flag", Exists: true, Value: []byte("on"), ModifyIndex: 11}, {Key: "app/old"}}}, nil
	}
	h.restoreKV = func(activities.KVRestoreInput) (activities.RestoreResult, error) {
		return activities.RestoreResult{}, nil
	}
	// The router remembers what the last successful SetWeights wrote, as a
	// real one does: the next traffic step captures it.
	h.live = map[string]int{"stable": 100, "canary": 0}
	h.captureWeights = func(activities.TrafficInput) (activities.WeightState, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		return activities.WeightState{Weights: maps.Clone(h.live)}, nil
	}
	h.setWeights = func(in activities.SetWeightsInput) (activities.WeightState, error) {
		return activities.WeightState{Weights: in.Weights}, nil
	}
	h.restoreWeights = func(activities.RestoreWeightsInput) (activities.RestoreResult, error) {
		return activities.RestoreResult{}, nil
	}
	h.preflight = func(activities.PreflightInput) (activities.PreflightResult, error) {
		return activities.PreflightResult{}, nil
	}
	h.captureKV = func(activities.KVInput) (activities.KVState, error) {
		return activities.KVState{Entries: []activities.KVEntry{
			{Key: "app/flag", Exists: true, Value: []byte("off"), ModifyIndex: 5}, {Key: "app/old", Exists: true, Value: []byte("x"), ModifyIndex: 6}}}, nil
	}

	var m *activities.Migrations
	var k *activities.KV
	var tr *activities.Traffic
	var c *activities.Checks
	var n *activities.Notifier
	env := h.env
	env.RegisterActivity(n)
	env.OnActivity(n.Notify, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.NotifyInput) error {
		if h.notifyDelay != nil {
			time.Sleep(h.notifyDelay(in))
		}
		h.mu.Lock()
		h.notified = append(h.notified, in)
		h.mu.Unlock()
		return nil
	})
	env.RegisterActivity(m)
	env.RegisterActivity(k)
	env.RegisterActivity(tr)
	env.RegisterActivity(c)
	env.OnActivity(m.CaptureSchema, mock.Anything, mock.Anything).Return(activities.SchemaState{Database: "db", Version: 1}, nil)
	env.OnActivity(m.MigrateUp, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.MigrateUpInput) (activities.MigrateResult, error) {
		return h.migrateUp(in)
	})
	env.OnActivity(m.MigrateDown, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.MigrateDownInput) (activities.RestoreResult, error) {
		return h.migrateDown(in)
	})
	env.OnActivity(k.CaptureKV, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.KVInput) (activities.KVState, error) {
		return h.captureKV(in)
	})
	var pf *activities.Preflight
	env.RegisterActivity(pf)
	env.OnActivity(pf.Preflight, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.PreflightInput) (activities.PreflightResult, error) {
		return h.preflight(in)
	})
	env.OnActivity(k.ApplyKV, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.KVApplyInput) (activities.KVState, error) {
		return h.applyKV(in)
	})
	env.OnActivity(k.RestoreKV, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.KVRestoreInput) (activities.RestoreResult, error) {
		return h.restoreKV(in)
	})
	env.OnActivity(tr.CaptureWeights, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.TrafficInput) (activities.WeightState, error) {
		return h.captureWeights(in)
	})
	env.OnActivity(tr.SetWeights, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.SetWeightsInput) (activities.WeightState, error) {
		res, err := h.setWeights(in)
		if err == nil {
			h.mu.Lock()
			h.live = maps.Clone(in.Weights)
			h.mu.Unlock()
		}
		return res, err
	})
	env.OnActivity(tr.RestoreWeights, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.RestoreWeightsInput) (activities.RestoreResult, error) {
		return h.restoreWeights(in)
	})
	env.OnActivity(c.Measure, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.MeasureInput) (activities.MeasureResult, error) {
		return h.measure(in)
	})
	h.watch = func(in activities.WatchInput) (activities.WatchResult, error) {
		// Time up, every check judged and none tripped.
		var judged []string
		for _, c := range in.Checks {
			judged = append(judged, c.Name)
		}
		return activities.WatchResult{Judged: judged}, nil
	}
	env.SetOnActivityCanceledListener(func(info *activity.Info) {
		h.mu.Lock()
		defer h.mu.Unlock()
		// The info has no input; the step is in the summary-less ID, so
		// record the type and the activity ID.
		h.cancelled = append(h.cancelled, info.ActivityType.Name)
	})
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		var ref struct {
			Step string `json:"step"`
		}
		_ = args.Get(&ref)
		h.mu.Lock()
		h.log = append(h.log, info.ActivityType.Name+":"+ref.Step)
		h.mu.Unlock()
	})
	return h
}

func healthy(in activities.MeasureInput) activities.MeasureResult {
	var r activities.MeasureResult
	for _, c := range in.Checks {
		r.Measurements = append(r.Measurements, activities.Measurement{Check: c.Name, Kind: c.Kind(), Status: 200, LatencyMs: 5})
	}
	return r
}

func failing(in activities.MeasureInput) activities.MeasureResult {
	var r activities.MeasureResult
	for _, c := range in.Checks {
		r.Measurements = append(r.Measurements, activities.Measurement{Check: c.Name, Kind: c.Kind(), Status: 500, LatencyMs: 5})
	}
	return r
}

// at schedules fn after d of workflow time.
func (h *harness) at(d time.Duration, fn func()) { h.env.RegisterDelayedCallback(fn, d) }

func (h *harness) signal(name string, payload any) { h.env.SignalWorkflow(name, payload) }

// query returns the status query's answer now.
func (h *harness) query() Status {
	v, err := h.env.QueryWorkflow(QueryStatus)
	require.NoError(h.t, err)
	var s Status
	require.NoError(h.t, v.Get(&s))
	return s
}

// phaseAt records the phase (from the status query) at d.
func (h *harness) phaseAt(d time.Duration) {
	h.at(d, func() { h.phases = append(h.phases, h.query().Phase) })
}

// mockWatch registers the WatchRouter mock for every verify step and the
// analysis of rb that have continuous checks: the call blocks for
// watchAfter(step) of workflow time (default: the verify step's duration;
// the analysis: a day, that is, it never trips), then answers h.watch.
func (h *harness) mockWatch(rb runbook.Runbook) {
	var c *activities.Checks
	durations := map[string]time.Duration{"analysis": 24 * time.Hour}
	for _, s := range rb.Steps {
		if s.Verify != nil {
			durations[s.Name] = s.Verify.Duration.D()
		}
	}
	for step, d := range durations {
		h.env.OnActivity(c.WatchRouter, mock.Anything, mock.MatchedBy(func(in activities.WatchInput) bool { return in.Step == step })).
			AfterFn(func() time.Duration {
				if h.watchAfter != nil {
					return h.watchAfter(step)
				}
				return d
			}).
			Return(func(_ context.Context, in activities.WatchInput) (activities.WatchResult, error) {
				h.mu.Lock()
				h.watches = append(h.watches, in)
				h.mu.Unlock()
				return h.watch(in)
			})
	}
}

func (h *harness) run(rb runbook.Runbook) Result {
	h.t.Helper()
	h.mockWatch(rb)
	h.env.ExecuteWorkflow(Deploy, bundleOf(h.t, rb))
	require.True(h.t, h.env.IsWorkflowCompleted())
	require.NoError(h.t, h.env.GetWorkflowError())
	var r Result
	require.NoError(h.t, h.env.GetWorkflowResult(&r))
	return r
}

// calls returns the recorded activity attempts, without Measure rounds
// unless withMeasure.
func (h *harness) calls(withMeasure bool) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, c := range h.log {
		// The preflight has its own tests (preflight_test.go).
		if strings.HasPrefix(c, "Preflight:") || !withMeasure && strings.HasPrefix(c, "Measure:") {
			continue
		}
		out = append(out, c)
	}
	return out
}

func compStates(r Result) string {
	var s []string
	for _, c := range r.Compensations {
		s = append(s, c.Step+"="+string(c.State))
	}
	return strings.Join(s, " ")
}

var forwardAll = []string{
	"CaptureSchema:schema", "MigrateUp:schema",
	"CaptureKV:flags", "ApplyKV:flags",
	"CaptureWeights:canary-10", "SetWeights:canary-10",
	"CaptureWeights:canary-100", "SetWeights:canary-100",
}

func conflict(what string) error {
	return temporal.NewNonRetryableApplicationError(what, activities.ErrConflict, nil)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

var _ = fmt.Sprintf

// quietLogger keeps test output readable: warnings and errors only.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
