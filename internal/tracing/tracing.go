// Package tracing turns on OpenTelemetry tracing for the rollbook CLI and
// worker from the standard OTEL_* environment variables, and gives the
// Temporal client the SDK's tracing interceptor so that one trace covers a
// CLI's deploy, the Deploy workflow and its activities.
//
// With no OTEL_* variable set, tracing is off: no provider is installed, no
// exporter dials anything and the Temporal client gets no interceptor.
package tracing

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
)

// The variables this package reads itself. The OTLP exporters read
// OTEL_EXPORTER_OTLP_* (endpoint, headers, timeout, compression,
// certificates), the resource reads OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES, and the SDK reads OTEL_TRACES_SAMPLER(_ARG),
// OTEL_BSP_* and the span limits.
const (
	EnvSDKDisabled   = "OTEL_SDK_DISABLED"
	EnvExporter      = "OTEL_TRACES_EXPORTER"
	EnvProtocol      = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvTraceProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	EnvEndpoint      = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTraceEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvSampler       = "OTEL_TRACES_SAMPLER"
	EnvSamplerArg    = "OTEL_TRACES_SAMPLER_ARG"
)

// Config is what the environment asks for.
type Config struct {
	// Exporters is empty when tracing is off; otherwise "otlp" and/or
	// "console".
	Exporters []string
	// Protocol is the OTLP transport: "http/protobuf" (the specification's
	// default) or "grpc".
	Protocol string
}

// On reports whether the configuration turns tracing on.
func (c Config) On() bool { return len(c.Exporters) > 0 }

// ConfigFromEnv reads the OTEL_* variables. Tracing is on when
// OTEL_TRACES_EXPORTER names an exporter, or when it is unset and an OTLP
// endpoint is given; OTEL_SDK_DISABLED=true turns it off whatever else is
// set. Values that are not understood are errors naming the variable: a
// typo must not silently lose every trace.
func ConfigFromEnv() (Config, error) {
	if v := strings.TrimSpace(os.Getenv(EnvSDKDisabled)); v != "" {
		off, err := strconv.ParseBool(v)
		if err != nil {
			return Config{}, fmt.Errorf("%s=%q: want true or false", EnvSDKDisabled, v)
		}
		if off {
			return Config{}, nil
		}
	}
	c := Config{}
	raw := strings.TrimSpace(os.Getenv(EnvExporter))
	if raw == "" && (os.Getenv(EnvEndpoint) != "" || os.Getenv(EnvTraceEndpoint) != "") {
		raw = "otlp"
	}
	none := false
	for _, e := range strings.Split(raw, ",") {
		switch e = strings.ToLower(strings.TrimSpace(e)); e {
		case "":
		case "none":
			none = true
		case "otlp", "console":
			if !slices.Contains(c.Exporters, e) {
				c.Exporters = append(c.Exporters, e)
			}
		case "jaeger", "zipkin":
			return Config{}, fmt.Errorf("%s=%q: exporter %q is not built in; use otlp (Jaeger and the OpenTelemetry Collector accept OTLP)", EnvExporter, raw, e)
		default:
			return Config{}, fmt.Errorf("%s=%q: unknown exporter %q (want otlp, console or none)", EnvExporter, raw, e)
		}
	}
	if none && c.On() {
		return Config{}, fmt.Errorf("%s=%q: none cannot be combined with other exporters", EnvExporter, raw)
	}
	if !c.On() {
		return c, nil
	}
	if err := checkSampler(); err != nil {
		return Config{}, err
	}
	if !slices.Contains(c.Exporters, "otlp") {
		return c, nil
	}
	c.Protocol = "http/protobuf"
	for _, k := range []string{EnvProtocol, EnvTraceProtocol} { // the specific one wins
		if v := strings.TrimSpace(os.Getenv(k)); v != "" {
			switch v {
			case "grpc", "http/protobuf":
				c.Protocol = v
			default:
				return Config{}, fmt.Errorf("%s=%q: want grpc or http/protobuf", k, v)
			}
		}
	}
	return c, nil
}

// checkSampler refuses the sampler settings the SDK would only log about
// and replace by its default.
func checkSampler() error {
	s := strings.ToLower(strings.TrimSpace(os.Getenv(EnvSampler)))
	switch s {
	case "", "always_on", "always_off", "parentbased_always_on", "parentbased_always_off":
		return nil
	case "traceidratio", "parentbased_traceidratio":
		arg := strings.TrimSpace(os.Getenv(EnvSamplerArg))
		if arg == "" {
			return nil
		}
		if r, err := strconv.ParseFloat(arg, 64); err != nil || r < 0 || r > 1 {
			return fmt.Errorf("%s=%q: want a ratio between 0 and 1 for sampler %s", EnvSamplerArg, arg, s)
		}
		return nil
	default:
		return fmt.Errorf("%s=%q: unknown sampler (want always_on, always_off, traceidratio or their parentbased_ forms)", EnvSampler, s)
	}
}

// Options tune Setup.
type Options struct {
	// ServiceName is service.name when OTEL_SERVICE_NAME (or
	// service.name in OTEL_RESOURCE_ATTRIBUTES) does not say otherwise.
	ServiceName string
	// Console receives the console exporter's spans; default os.Stderr,
	// so that the CLI's --json output on stdout stays parseable.
	Console io.Writer
}

// Setup reads the environment and, when tracing is on, installs a tracer
// provider with the exporters asked for. The returned shutdown flushes the
// spans still buffered and stops the exporters; call it before the process
// exits. With tracing off it installs nothing and shutdown does nothing.
func Setup(ctx context.Context, o Options) (shutdown func(context.Context) error, err error) {
	none := func(context.Context) error { return nil }
	cfg, err := ConfigFromEnv()
	if err != nil || !cfg.On() {
		return none, err
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", o.ServiceName)),
		resource.WithFromEnv(), // later detectors win: OTEL_* overrides the default name
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithProcessPID(),
	)
	if err != nil {
		return none, fmt.Errorf("tracing resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES): %w", err)
	}
	popts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	for _, name := range cfg.Exporters {
		exp, err := newExporter(ctx, name, cfg.Protocol, o.Console)
		if err != nil {
			return none, err
		}
		popts = append(popts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(popts...)
	restore := Install(tp)
	return func(ctx context.Context) error {
		defer restore()
		if err := tp.Shutdown(ctx); err != nil {
			return fmt.Errorf("flushing spans (%s): %w", strings.Join(cfg.Exporters, ","), err)
		}
		return nil
	}, nil
}

func newExporter(ctx context.Context, name, protocol string, console io.Writer) (sdktrace.SpanExporter, error) {
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch {
	case name == "console":
		if console == nil {
			console = os.Stderr
		}
		exp, err = stdouttrace.New(stdouttrace.WithWriter(console))
	case protocol == "grpc":
		// Reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, HEADERS, TIMEOUT,
		// COMPRESSION, CERTIFICATE, INSECURE itself; connects lazily.
		exp, err = otlptracegrpc.New(ctx)
	default:
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing exporter %s %s (OTEL_EXPORTER_OTLP_* variables): %w", name, protocol, err)
	}
	return exp, nil
}

var (
	mu        sync.Mutex
	installed trace.TracerProvider
)

// Install makes tp the provider rollbook's spans and the Temporal
// interceptor use (and OpenTelemetry's global one, with W3C trace context
// and baggage propagation). The returned func puts back what was there.
// Setup calls it; tests call it with a provider that records in memory.
func Install(tp trace.TracerProvider) (restore func()) {
	mu.Lock()
	defer mu.Unlock()
	prevInstalled, prevGlobal, prevProp := installed, otel.GetTracerProvider(), otel.GetTextMapPropagator()
	installed = tp
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return func() {
		mu.Lock()
		defer mu.Unlock()
		installed = prevInstalled
		otel.SetTracerProvider(prevGlobal)
		otel.SetTextMapPropagator(prevProp)
	}
}

func provider() trace.TracerProvider {
	mu.Lock()
	defer mu.Unlock()
	return installed
}

// Enabled reports whether a provider is installed.
func Enabled() bool { return provider() != nil }

// Interceptor is the Temporal SDK's OpenTelemetry tracing interceptor on
// the installed provider, for client.Options.Interceptors (a worker built
// on that client uses it too). It is nil when tracing is off, so that an
// untraced client pays nothing. It carries the span context in a Temporal
// header of its own, which the payload codec leaves alone.
func Interceptor() (interceptor.Interceptor, error) {
	tp := provider()
	if tp == nil {
		return nil, nil
	}
	ic, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{
		Tracer: tp.Tracer("go.temporal.io/sdk"),
		// deploy --wait polls the status query every second: a span
		// each would bury the steps of the deployment.
		DisableQueryTracing: true,
	})
	if err != nil {
		return nil, fmt.Errorf("temporal tracing interceptor: %w", err)
	}
	return ic, nil
}

// Start starts a span on the installed provider (a no-op span when tracing
// is off).
func Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	tp := provider()
	if tp == nil {
		return ctx, noop.Span{}
	}
	return tp.Tracer("github.com/rollbook/rollbook").Start(ctx, name, trace.WithAttributes(attrs...))
}

// End ends span, marking it failed with err when err is not nil.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
