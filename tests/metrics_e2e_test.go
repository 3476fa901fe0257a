package tests

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/rollbook/rollbook/internal/worker"
)

// metricsTaskQueue keeps this test's deployment on the worker it scrapes.
const metricsTaskQueue = "rollbook-e2e-metrics"

// startWorkerWithMetrics starts a real rollbook worker (examples/dev-worker.yaml,
// through worker.Start like the binary) on taskQueue, with /metrics on a free
// port. It is stopped when the test ends.
func startWorkerWithMetrics(t *testing.T, taskQueue string) *worker.Running {
	t.Helper()
	cfg, err := worker.LoadConfig(filepath.Join(repoRoot, "examples", "dev-worker.yaml"))
	require.NoError(t, err)
	cfg.TaskQueue = taskQueue
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := worker.Start(ctx, cfg, zap.NewNop(), worker.Options{MetricsListener: ln})
	require.NoError(t, err)
	t.Cleanup(r.Stop)
	return r
}

// scrape is one /metrics page, parsed.
type scrape map[string]*dto.MetricFamily

func scrapeMetrics(t *testing.T, url string) scrape {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	require.NoError(t, err, "/metrics is valid Prometheus text")
	return fams
}

// value sums the samples of a counter, gauge or histogram (its count) whose
// labels include all of labels. ok is false when the family is absent.
func (s scrape) value(name string, labels map[string]string) (sum float64, ok bool) {
	f, ok := s[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range labels {
			match = match && have[k] == v
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum, true
}

// moved returns how much a metric grew between two scrapes.
func moved(before, after scrape, name string, labels map[string]string) float64 {
	b, _ := before.value(name, labels)
	a, _ := after.value(name, labels)
	return a - b
}

// TestE2EMetrics runs one deployment on a worker of its own and checks
// that its /metrics moved: the Temporal SDK's counters and histograms,
// including those recorded inside the workflow (temporal_workflow_completed
// goes through the workflow's metrics handler, as rollbook's own counters
// do).
func TestE2EMetrics(t *testing.T) {
	r := startWorkerWithMetrics(t, metricsTaskQueue)
	require.NotEmpty(t, r.MetricsURL)
	before := scrapeMetrics(t, r.MetricsURL)

	f := newFixture(t, "e2e-metrics")
	f.seed()
	l := startLoad(t, 60) // the router check needs requests to judge
	out, code := cli(t, "deploy", f.runbook(runbookOpts{}), "--version", "v2", "--wait", "--task-queue", metricsTaskQueue)
	l.Stop()
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "outcome: succeeded")

	// Completion is recorded when the last workflow task completes; give
	// the worker a moment after the CLI saw the result.
	var after scrape
	deploy := map[string]string{"workflow_type": "Deploy", "task_queue": metricsTaskQueue}
	require.Eventually(t, func() bool {
		after = scrapeMetrics(t, r.MetricsURL)
		return moved(before, after, "temporal_workflow_completed_total", deploy) >= 1
	}, 10*time.Second, 200*time.Millisecond, "temporal_workflow_completed_total{workflow_type=Deploy,task_queue=%s} did not move", metricsTaskQueue)

	queue := map[string]string{"task_queue": metricsTaskQueue}
	for _, m := range []struct {
		name string
		min  float64
	}{
		// capture + apply of the migrate, consul and both traffic steps,
		// plus verification rounds: well over ten activities.
		{"temporal_activity_execution_latency_seconds", 10},
		{"temporal_activity_schedule_to_start_latency_seconds", 10},
		{"temporal_activity_succeed_endtoend_latency_seconds", 10},
		{"temporal_workflow_task_execution_latency_seconds", 5},
		{"temporal_workflow_endtoend_latency_seconds", 1},
		{"temporal_workflow_task_queue_poll_succeed_total", 5},
	} {
		assert.GreaterOrEqual(t, moved(before, after, m.name, queue), m.min, "%s{task_queue=%s}", m.name, metricsTaskQueue)
	}
	// The activities are labelled by type, so a dashboard can tell the
	// traffic apply from a verification round.
	types := map[string]bool{}
	for _, m := range after["temporal_activity_execution_latency_seconds"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "activity_type" {
				types[l.GetValue()] = true
			}
		}
	}
	assert.GreaterOrEqual(t, len(types), 4, "activity types seen: %v", types)
	assert.Zero(t, moved(before, after, "temporal_workflow_failed_total", deploy))
	// The process collectors are on the same page.
	_, ok := after.value("go_goroutines", nil)
	assert.True(t, ok)

	// rollbook's own metrics, recorded by the workflow.
	assertRollbookMetrics(t, before, after, "succeeded", 6)
}

// assertRollbookMetrics checks rollbook's own metrics after one deployment
// with the given outcome and number of steps, as the Deploy workflow records
// them through workflow.GetMetricsHandler(ctx). Names as /metrics shows them
// (the handler adds _total to counters and _seconds to timers only when the
// name lacks them; no prefix):
//
//	rollbook_deployments_total{outcome}           counter
//	rollbook_step_duration_seconds                histogram (timer)
//	rollbook_rollback_duration_seconds            histogram (timer), rollbacks only
//	rollbook_compensation_retries_total           counter
//	rollbook_rollback_stuck_total                 counter
func assertRollbookMetrics(t *testing.T, before, after scrape, outcome string, steps int) {
	t.Helper()
	assert.Equal(t, 1.0, moved(before, after, "rollbook_deployments_total", map[string]string{"outcome": outcome}),
		"rollbook_deployments_total{outcome=%q}", outcome)
	assert.GreaterOrEqual(t, moved(before, after, "rollbook_step_duration_seconds", nil), float64(steps),
		"one rollbook_step_duration_seconds observation per step")
	if outcome != "succeeded" {
		assert.GreaterOrEqual(t, moved(before, after, "rollbook_rollback_duration_seconds", nil), 1.0)
	}
}
