package worker

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestMetricNames pins the names the Prometheus handler gives to metrics
// recorded through a Temporal MetricsHandler — the SDK's and rollbook's
// (the workflow records through workflow.GetMetricsHandler, which wraps
// this same handler).
func TestMetricNames(t *testing.T) {
	m, err := NewMetrics(zap.NewNop())
	require.NoError(t, err)
	defer m.Shutdown(t.Context())

	h := m.Handler
	h.WithTags(map[string]string{"outcome": "succeeded", "service": "payments-api"}).Counter("rollbook_deployments_total").Inc(1)
	h.WithTags(map[string]string{"outcome": "rolled-back", "service": "payments-api"}).Counter("rollbook_deployments_total").Inc(2)
	h.WithTags(map[string]string{"kind": "traffic"}).Timer("rollbook_step_duration_seconds").Record(1500 * time.Millisecond)
	h.Timer("rollbook_rollback_duration_seconds").Record(250 * time.Millisecond)
	h.Counter("rollbook_compensation_retries_total").Inc(3)
	h.Counter("rollbook_rollback_stuck_total").Inc(1)
	// SDK-style names, without suffixes.
	h.WithTags(map[string]string{"task_queue": "q"}).Counter("temporal_workflow_completed").Inc(1)
	h.Timer("temporal_activity_execution_latency").Record(20 * time.Millisecond)
	h.Gauge("temporal_num_pollers").Update(2)

	srv := httptest.NewServer(m.HTTPHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	text := string(body)

	for _, line := range []string{
		`rollbook_deployments_total{outcome="succeeded",service="payments-api"} 1`,
		`rollbook_deployments_total{outcome="rolled-back",service="payments-api"} 2`,
		`rollbook_step_duration_seconds_bucket{kind="traffic",le="2.5"} 1`,
		`rollbook_step_duration_seconds_bucket{kind="traffic",le="1"} 0`,
		`rollbook_step_duration_seconds_sum{kind="traffic"} 1.5`,
		`rollbook_step_duration_seconds_count{kind="traffic"} 1`,
		`rollbook_rollback_duration_seconds_count 1`,
		`rollbook_compensation_retries_total 3`,
		`rollbook_rollback_stuck_total 1`,
		`temporal_workflow_completed_total{task_queue="q"} 1`,
		`temporal_activity_execution_latency_seconds_count 1`,
		`temporal_num_pollers 2`,
		"# TYPE rollbook_deployments_total counter",
		"# TYPE rollbook_step_duration_seconds histogram",
	} {
		assert.Contains(t, text, line+"\n")
	}
	// Nothing doubled, nothing prefixed, no scope labels.
	for _, bad := range []string{"_total_total", "_seconds_seconds", "otel_scope", "rollbook_rollbook"} {
		assert.NotContains(t, text, bad)
	}
	// The registry also has the Go runtime, and the whole page parses.
	assert.Contains(t, text, "go_goroutines ")
	parser := expfmt.NewTextParser(model.LegacyValidation)
	_, err = parser.TextToMetricFamilies(strings.NewReader(text))
	require.NoError(t, err)
}

func TestMetricsRegistriesAreSeparate(t *testing.T) {
	a, err := NewMetrics(zap.NewNop())
	require.NoError(t, err)
	b, err := NewMetrics(zap.NewNop())
	require.NoError(t, err)
	a.Handler.Counter("rollbook_only_in_a_total").Inc(1)
	fa, err := a.Registry.Gather()
	require.NoError(t, err)
	fb, err := b.Registry.Gather()
	require.NoError(t, err)
	has := func(fams []*dto.MetricFamily, name string) bool {
		for _, f := range fams {
			if f.GetName() == name {
				return true
			}
		}
		return false
	}
	assert.True(t, has(fa, "rollbook_only_in_a_total"))
	assert.False(t, has(fb, "rollbook_only_in_a_total"))
}

// countingTemporal answers CountWorkflow from a phase → count table and
// records the queries.
type countingTemporal struct {
	mu      sync.Mutex
	counts  map[string]int64
	err     error
	queries []string
}

func (c *countingTemporal) CountWorkflow(_ context.Context, req *workflowservice.CountWorkflowExecutionsRequest) (*workflowservice.CountWorkflowExecutionsResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queries = append(c.queries, req.GetNamespace()+": "+req.GetQuery())
	if c.err != nil {
		return nil, c.err
	}
	for phase, n := range c.counts {
		if strings.HasSuffix(req.GetQuery(), `RollbookPhase = "`+phase+`"`) {
			return &workflowservice.CountWorkflowExecutionsResponse{Count: n}, nil
		}
	}
	return &workflowservice.CountWorkflowExecutionsResponse{}, nil
}

func (c *countingTemporal) setErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
}

func (c *countingTemporal) asked() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.queries...)
}

func scrapeText(t *testing.T, m *Metrics) string {
	t.Helper()
	rr := httptest.NewRecorder()
	m.HTTPHandler().ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rr.Code)
	return rr.Body.String()
}

// recount makes the next scrape count again and waits for that count.
func (p *phaseCollector) recount(t *testing.T, m *Metrics) {
	t.Helper()
	p.mu.Lock()
	p.tried = time.Time{}
	p.mu.Unlock()
	scrapeText(t, m)
	require.Eventually(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return !p.refreshing
	}, 5*time.Second, 5*time.Millisecond)
}

func TestPhaseGauge(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	m, err := NewMetrics(zap.NewNop())
	require.NoError(t, err)
	defer m.Shutdown(t.Context())
	ct := &countingTemporal{counts: map[string]int64{"rollback-stuck": 2, "verifying": 1}}
	pc, err := m.watchPhases(ct, "payments", zap.New(core))
	require.NoError(t, err)

	// The first scrape starts counting and does not wait for it.
	assert.NotContains(t, scrapeText(t, m), "rollbook_deployments_in_phase{")
	var text string
	require.Eventually(t, func() bool {
		text = scrapeText(t, m)
		return strings.Contains(text, "rollbook_deployments_in_phase{")
	}, 5*time.Second, 10*time.Millisecond)
	for _, line := range []string{
		`rollbook_deployments_in_phase{phase="rollback-stuck"} 2`,
		`rollbook_deployments_in_phase{phase="verifying"} 1`,
		`rollbook_deployments_in_phase{phase="deploying"} 0`,
		`rollbook_deployments_in_phase{phase="paused"} 0`,
		`rollbook_deployments_in_phase{phase="rolling-back"} 0`,
		"# TYPE rollbook_deployments_in_phase gauge",
	} {
		assert.Contains(t, text, line+"\n")
	}
	require.Len(t, ct.asked(), 5)
	assert.Contains(t, ct.asked(), `payments: ExecutionStatus = "Running" AND RollbookPhase = "rollback-stuck"`)

	// Scrapes within the TTL do not query Temporal again.
	scrapeText(t, m)
	scrapeText(t, m)
	assert.Len(t, ct.asked(), 5)

	// Temporal down: the gauge is absent rather than a stale or zero count,
	// and the failure is logged once, not on every count.
	ct.setErr(errors.New("connection refused"))
	for range 3 {
		pc.recount(t, m)
		assert.NotContains(t, scrapeText(t, m), "rollbook_deployments_in_phase{")
	}
	assert.Equal(t, 1, logs.FilterMessageSnippet("counting deployments by phase failed").Len())
	ct.setErr(nil)
	pc.recount(t, m)
	assert.Contains(t, scrapeText(t, m), `rollbook_deployments_in_phase{phase="rollback-stuck"} 2`)
}
