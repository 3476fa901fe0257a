package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
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
