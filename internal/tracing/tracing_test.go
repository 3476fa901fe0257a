package tracing

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// clearEnv unsets every variable the package and the SDK read, so that the
// machine's own environment cannot decide a test.
func clearEnv(t *testing.T) {
	for _, k := range []string{EnvSDKDisabled, EnvExporter, EnvProtocol, EnvTraceProtocol, EnvEndpoint, EnvTraceEndpoint,
		EnvSampler, EnvSamplerArg, "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"} {
		t.Setenv(k, "")
	}
}

func TestOffByDefault(t *testing.T) {
	clearEnv(t)
	cfg, err := ConfigFromEnv()
	require.NoError(t, err)
	assert.False(t, cfg.On())

	before := otel.GetTracerProvider()
	shutdown, err := Setup(context.Background(), Options{ServiceName: "rollbook"})
	require.NoError(t, err)
	assert.False(t, Enabled(), "nothing installed")
	assert.Same(t, before, otel.GetTracerProvider(), "the global provider is left alone")
	ic, err := Interceptor()
	require.NoError(t, err)
	assert.Nil(t, ic, "an untraced Temporal client gets no interceptor")
	_, span := Start(context.Background(), "x")
	assert.False(t, span.IsRecording())
	require.NoError(t, shutdown(context.Background()))
}

func TestConfigFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name      string
		env       map[string]string
		exporters []string
		protocol  string
	}{
		{"none", map[string]string{EnvExporter: "none"}, nil, ""},
		{"console", map[string]string{EnvExporter: "console"}, []string{"console"}, ""},
		{"otlp defaults to http/protobuf", map[string]string{EnvExporter: "otlp"}, []string{"otlp"}, "http/protobuf"},
		{"an endpoint alone means otlp", map[string]string{EnvEndpoint: "http://collector:4317", EnvProtocol: "grpc"}, []string{"otlp"}, "grpc"},
		{"the traces protocol wins", map[string]string{EnvExporter: "otlp", EnvProtocol: "grpc", EnvTraceProtocol: "http/protobuf"}, []string{"otlp"}, "http/protobuf"},
		{"both, once each", map[string]string{EnvExporter: " OTLP, console,otlp"}, []string{"otlp", "console"}, "http/protobuf"},
		{"disabled wins", map[string]string{EnvSDKDisabled: "true", EnvExporter: "otlp", EnvEndpoint: "http://x:4318"}, nil, ""},
		{"disabled=false", map[string]string{EnvSDKDisabled: "false", EnvExporter: "console"}, []string{"console"}, ""},
		{"sampler", map[string]string{EnvExporter: "console", EnvSampler: "parentbased_traceidratio", EnvSamplerArg: "0.25"}, []string{"console"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cfg, err := ConfigFromEnv()
			require.NoError(t, err)
			assert.Equal(t, tc.exporters, cfg.Exporters)
			assert.Equal(t, tc.protocol, cfg.Protocol)
		})
	}
}

func TestInvalidValuesAreClearErrors(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{EnvExporter: "otlpp"}, []string{EnvExporter, `"otlpp"`, "want otlp, console or none"}},
		{map[string]string{EnvExporter: "jaeger"}, []string{EnvExporter, "use otlp"}},
		{map[string]string{EnvExporter: "none,console"}, []string{EnvExporter, "none cannot be combined"}},
		{map[string]string{EnvSDKDisabled: "yes please"}, []string{EnvSDKDisabled, "true or false"}},
		{map[string]string{EnvExporter: "otlp", EnvProtocol: "http/json"}, []string{EnvProtocol, `"http/json"`, "grpc or http/protobuf"}},
		{map[string]string{EnvExporter: "console", EnvSampler: "sometimes"}, []string{EnvSampler, "unknown sampler"}},
		{map[string]string{EnvExporter: "console", EnvSampler: "traceidratio", EnvSamplerArg: "2"}, []string{EnvSamplerArg, "between 0 and 1"}},
	} {
		t.Run(tc.want[1], func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := ConfigFromEnv()
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			before := otel.GetTracerProvider()
			shutdown, err := Setup(context.Background(), Options{ServiceName: "rollbook"})
			require.Error(t, err, "Setup refuses it too")
			assert.False(t, Enabled(), "and installs nothing")
			assert.Same(t, before, otel.GetTracerProvider())
			require.NoError(t, shutdown(context.Background()))
		})
	}
}

// TestConsoleExporter: OTEL_TRACES_EXPORTER=console prints every span, with
// the resource from OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, once
// shutdown has flushed them; afterwards the provider is uninstalled.
func TestConsoleExporter(t *testing.T) {
	clearEnv(t)
	t.Setenv(EnvExporter, "console")
	t.Setenv("OTEL_SERVICE_NAME", "rollbook-ci")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging")
	var out bytes.Buffer
	shutdown, err := Setup(context.Background(), Options{ServiceName: "rollbook", Console: &out})
	require.NoError(t, err)
	require.True(t, Enabled())
	ic, err := Interceptor()
	require.NoError(t, err)
	require.NotNil(t, ic)

	ctx, parent := Start(context.Background(), "rollbook deploy")
	_, child := otel.Tracer("test").Start(ctx, "child") // the global provider is ours
	child.End()
	End(parent, assert.AnError)
	assert.Empty(t, out.String(), "batched until flushed")
	require.NoError(t, shutdown(context.Background()))
	assert.False(t, Enabled(), "shutdown uninstalls")

	type span struct {
		Name        string
		SpanContext struct{ TraceID, SpanID string }
		Parent      struct{ SpanID string }
		Status      struct{ Code string }
		Resource    []struct {
			Key   string
			Value struct{ Value any }
		}
	}
	var spans []span
	dec := json.NewDecoder(&out)
	for dec.More() {
		var s span
		require.NoError(t, dec.Decode(&s))
		spans = append(spans, s)
	}
	require.Len(t, spans, 2, out.String())
	assert.Equal(t, "child", spans[0].Name)
	assert.Equal(t, "rollbook deploy", spans[1].Name)
	assert.Equal(t, spans[1].SpanContext.TraceID, spans[0].SpanContext.TraceID)
	assert.Equal(t, spans[1].SpanContext.SpanID, spans[0].Parent.SpanID)
	assert.Equal(t, "Error", spans[1].Status.Code)
	res := map[string]any{}
	for _, kv := range spans[1].Resource {
		res[kv.Key] = kv.Value.Value
	}
	assert.Equal(t, "rollbook-ci", res["service.name"], "OTEL_SERVICE_NAME wins over the default")
	assert.Equal(t, "staging", res["deployment.environment"])
}

// TestOTLPExporterSendsOnShutdown: with an OTLP endpoint set, nothing is
// sent until spans exist, and shutdown delivers them to the endpoint.
func TestOTLPExporterSendsOnShutdown(t *testing.T) {
	clearEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	got := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _ := c.Read(buf)
			got <- string(buf[:n])
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"))
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	t.Setenv(EnvEndpoint, "http://"+ln.Addr().String())

	shutdown, err := Setup(context.Background(), Options{ServiceName: "rollbook"})
	require.NoError(t, err)
	select {
	case r := <-got:
		t.Fatalf("the exporter sent something before any span: %q", r)
	case <-time.After(200 * time.Millisecond):
	}
	_, span := Start(context.Background(), "rollbook deploy")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, shutdown(ctx))
	select {
	case r := <-got:
		assert.Contains(t, r, "POST /v1/traces", "OTLP/HTTP to the endpoint's traces path")
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown did not send the span")
	}
}

// TestInstallRestores: a test provider installed and restored leaves the
// package as it was.
func TestInstallRestores(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	restore := Install(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr)))
	require.True(t, Enabled())
	_, s := Start(context.Background(), "recorded")
	s.End()
	restore()
	assert.False(t, Enabled())
	require.Len(t, sr.Ended(), 1)
	assert.Equal(t, "recorded", sr.Ended()[0].Name())
}
