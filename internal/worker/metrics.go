package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.uber.org/zap"
)

// DurationBuckets are the histogram buckets, in seconds, of every Temporal
// timer: the SDK's latencies (milliseconds to seconds) and rollbook's step
// and rollback durations (seconds to an hour).
var DurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

// Metrics feeds the Temporal SDK's metrics — and, through
// workflow.GetMetricsHandler, the workflow's own — into a Prometheus
// registry. Names follow Prometheus conventions (OpenTelemetry's
// "underscore escaping with suffixes"):
//
//   - a counter gets "_total" unless its name already ends in it:
//     temporal_workflow_completed → temporal_workflow_completed_total,
//     rollbook_deployments_total stays rollbook_deployments_total;
//   - a timer is a histogram in seconds and gets "_seconds" unless its name
//     already contains it: temporal_activity_execution_latency →
//     temporal_activity_execution_latency_seconds{_bucket,_sum,_count},
//     rollbook_step_duration_seconds stays as it is;
//   - a gauge keeps its name.
//
// No prefix is added and no scope labels; tags become labels as they are.
type Metrics struct {
	// Registry holds the Temporal metrics plus the Go runtime and process
	// collectors.
	Registry *prometheus.Registry
	// Handler goes into client.Options.MetricsHandler.
	Handler  client.MetricsHandler
	provider *sdkmetric.MeterProvider
}

// NewMetrics builds a registry of its own (two workers in one process, as in
// the tests, do not collide). log receives metric errors, which never panic.
func NewMetrics(log *zap.Logger) (*Metrics, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, err
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	exporter, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
		otelprom.WithoutScopeInfo(),
	)
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	provider := sdkmetric.NewMeterProvider(
		sdkmetric.WithReader(exporter),
		sdkmetric.WithResource(resource.NewSchemaless(attribute.String("service.name", "rollbook-worker"))),
		// The SDK's timers are histograms with unit "s"; OpenTelemetry's
		// default buckets are meant for milliseconds.
		sdkmetric.WithView(sdkmetric.NewView(
			sdkmetric.Instrument{Kind: sdkmetric.InstrumentKindHistogram, Unit: "s"},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: DurationBuckets}},
		)),
	)
	handler := temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
		Meter: provider.Meter("rollbook"),
		// Counters must be monotonic to be Prometheus counters (with
		// _total); the default up-down counters would be gauges.
		UseMonotonicCounters: true,
		OnError: func(err error) {
			log.Warn("metric not recorded", zap.Error(err))
		},
	})
	return &Metrics{Registry: reg, Handler: handler, provider: provider}, nil
}

// HTTPHandler serves the registry in the Prometheus text format.
func (m *Metrics) HTTPHandler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Shutdown stops the meter provider.
func (m *Metrics) Shutdown(ctx context.Context) error { return m.provider.Shutdown(ctx) }

// serveMetrics serves /metrics and /healthz on ln until the server is
// closed.
func serveMetrics(ln net.Listener, m *Metrics, log *zap.Logger) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.HTTPHandler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", zap.Error(err))
		}
	}()
	log.Info("serving metrics", zap.String("url", "http://"+ln.Addr().String()+"/metrics"))
	return srv
}

// phaseGauge is the one gauge rollbook cannot record from the workflow: how
// many deployments are in each running phase right now. A counter of
// entries into rollback-stuck says one got stuck; only the current count
// says one still is, which is what an alert must page on until someone
// retries or skips. The count comes from Temporal's visibility store (the
// RollbookPhase search attribute the workflow keeps up to date), so every
// worker of a namespace reports the same numbers: alert on max().
const phaseGauge = "rollbook_deployments_in_phase"

// runningPhases are the RollbookPhase values of a running deployment
// (workflows.Phase*; the worker package does not import workflows).
var runningPhases = []string{"deploying", "verifying", "paused", "rolling-back", "rollback-stuck"}

// phaseCountTTL bounds the visibility queries: one count per phase at most
// this often, however often Prometheus scrapes.
const phaseCountTTL = 10 * time.Second

// workflowCounter is the part of the Temporal client the phase gauge uses.
type workflowCounter interface {
	CountWorkflow(ctx context.Context, req *workflowservice.CountWorkflowExecutionsRequest) (*workflowservice.CountWorkflowExecutionsResponse, error)
}

type phaseCollector struct {
	temporal  workflowCounter
	namespace string
	log       *zap.Logger
	desc      *prometheus.Desc

	mu         sync.Mutex
	tried      time.Time        // when the last count started
	refreshing bool             // a count is under way
	countedAt  time.Time        // when counts were counted
	counts     map[string]int64 // nil: the last count failed
	lastErr    string
}

// WatchPhases adds rollbook_deployments_in_phase{phase} to the registry,
// counted in namespace through c at scrape time.
func (m *Metrics) WatchPhases(c workflowCounter, namespace string, log *zap.Logger) error {
	_, err := m.watchPhases(c, namespace, log)
	return err
}

func (m *Metrics) watchPhases(c workflowCounter, namespace string, log *zap.Logger) (*phaseCollector, error) {
	pc := &phaseCollector{
		temporal: c, namespace: namespace, log: log,
		desc: prometheus.NewDesc(phaseGauge, "Running rollbook deployments in the namespace, by RollbookPhase (from Temporal's visibility store, at most "+phaseCountTTL.String()+" old).", []string{"phase"}, nil),
	}
	if err := m.Registry.Register(pc); err != nil {
		return nil, fmt.Errorf("registering %s: %w", phaseGauge, err)
	}
	return pc, nil
}

func (p *phaseCollector) Describe(ch chan<- *prometheus.Desc) { ch <- p.desc }

func (p *phaseCollector) Collect(ch chan<- prometheus.Metric) {
	for phase, n := range p.current() {
		ch <- prometheus.MustNewConstMetric(p.desc, prometheus.GaugeValue, float64(n), phase)
	}
}

// current returns the last counts and starts counting again in the
// background when they are older than phaseCountTTL: a scrape never waits
// for Temporal (the dev stack's Prometheus gives a scrape 1 s). When
// Temporal does not answer, the gauge is absent: no value is better than a
// stale zero that hides a stuck rollback.
func (p *phaseCollector) current() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.refreshing && time.Since(p.tried) >= phaseCountTTL {
		p.refreshing, p.tried = true, time.Now()
		go p.refresh()
	}
	if p.counts == nil || time.Since(p.countedAt) > 3*phaseCountTTL {
		return nil
	}
	return p.counts
}

func (p *phaseCollector) refresh() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := p.count(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshing = false
	if err != nil {
		if msg := err.Error(); msg != p.lastErr {
			p.lastErr = msg
			p.log.Warn("counting deployments by phase failed: "+phaseGauge+" is absent until it works", zap.Error(err))
		}
		p.counts = nil
		return
	}
	p.lastErr = ""
	p.counts, p.countedAt = counts, time.Now()
}

func (p *phaseCollector) count(ctx context.Context) (map[string]int64, error) {
	counts := make(map[string]int64, len(runningPhases))
	for _, phase := range runningPhases {
		q := fmt.Sprintf(`ExecutionStatus = "Running" AND RollbookPhase = %q`, phase)
		resp, err := p.temporal.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: p.namespace, Query: q})
		if err != nil {
			return nil, fmt.Errorf("counting deployments in namespace %s with %s: %w", p.namespace, q, err)
		}
		counts[phase] = resp.GetCount()
	}
	return counts, nil
}
