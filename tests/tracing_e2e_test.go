package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/rollbook/rollbook/activities/contract"
	rbcli "github.com/rollbook/rollbook/internal/cli"
	"github.com/rollbook/rollbook/internal/codec"
	"github.com/rollbook/rollbook/internal/tracing"
	"github.com/rollbook/rollbook/internal/worker"
	"github.com/rollbook/rollbook/workflows"
)

const tracingTaskQueue = "rollbook-e2e-tracing"

// TestE2ETracingOneTrace runs a deployment (a Consul step and a short
// verify) through the real Temporal server with tracing installed on an
// in-memory recorder, with the CLI (in-process, as `rollbook deploy
// --wait`) and a worker that both encrypt payloads, and checks that one
// trace covers it all: the CLI's "rollbook deploy" root span →
// StartWorkflow:Deploy → RunWorkflow:Deploy → StartActivity:X →
// RunActivity:X, across the Temporal server and the payload codec.
func TestE2ETracingOneTrace(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	t.Cleanup(tracing.Install(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))))

	// Payload encryption on both sides, encryption required by the worker:
	// the span context travels in a header the codec must leave readable.
	key := make([]byte, codec.KeySize)
	_, err := rand.Read(key)
	require.NoError(t, err)
	keyFile := filepath.Join(t.TempDir(), "payload-keys")
	require.NoError(t, os.WriteFile(keyFile, []byte("e2e-trace:"+hex.EncodeToString(key)+"\n"), 0o600))
	t.Setenv(codec.EnvKeyFile, keyFile)

	startInProcessWorker(t, tracingTaskQueue, func(cfg *worker.Config) {
		cfg.Codec = &worker.CodecConfig{KeyFile: keyFile, KeyID: "e2e-trace", RequireEncryption: true}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	f := newFixture(t, "e2e-tracing")
	rb := filepath.Join(f.dir, f.service+".yaml")
	require.NoError(t, os.WriteFile(rb, []byte(fmt.Sprintf(`apiVersion: rollbook/v1
service: %s
steps:
  - name: flags
    consul:
      set:
        %sfeatures/traced: "true"
  - name: watch
    verify:
      duration: 2s
      interval: 1s
      checks:
        - name: healthz
          http: {endpoint: edge, path: /healthz}
`, f.service, f.prefix)), 0o644))

	var out bytes.Buffer
	start := time.Now()
	code := rbcli.Run(ctx, []string{"deploy", rb, "--version", "v2", "--wait", "--task-queue", tracingTaskQueue}, &out, &out)
	t.Logf("rollbook deploy --wait → exit %d in %v\n%s", code, time.Since(start).Round(time.Millisecond), out.String())
	require.Equal(t, rbcli.ExitOK, code, out.String())
	v, ok := kv(t, f.prefix+"features/traced")
	require.True(t, ok)
	require.Equal(t, "true", v, "the Consul step ran")

	// The worker ends RunWorkflow when the workflow function returns,
	// which can come a moment after the CLI saw the result.
	byName := func(name string) []sdktrace.ReadOnlySpan {
		var r []sdktrace.ReadOnlySpan
		for _, s := range sr.Ended() {
			if s.Name() == name {
				r = append(r, s)
			}
		}
		return r
	}
	require.Eventually(t, func() bool { return len(byName("RunWorkflow:"+workflows.WorkflowType)) > 0 }, 10*time.Second, 50*time.Millisecond,
		"the worker's RunWorkflow span ended")
	spans := sr.Ended()
	var names []string
	for _, s := range spans {
		names = append(names, s.Name())
	}
	t.Logf("%d spans: %s", len(spans), strings.Join(names, ", "))

	one := func(name string) sdktrace.ReadOnlySpan {
		t.Helper()
		s := byName(name)
		require.Len(t, s, 1, "exactly one %s span among %v", name, names)
		return s[0]
	}
	root := one("rollbook deploy")
	startWf := one("StartWorkflow:" + workflows.WorkflowType)
	// Usually one RunWorkflow span; a worker that replays the workflow
	// (its cache dropped it, or another worker took over) opens another in
	// the same trace (docs/operations.md, Tracing).
	runWfs := byName("RunWorkflow:" + workflows.WorkflowType)
	require.NotEmpty(t, runWfs)
	runWf := runWfs[0]
	runWfIDs := map[string]bool{}
	for _, r := range runWfs {
		runWfIDs[r.SpanContext().SpanID().String()] = true
		assert.Equal(t, startWf.SpanContext().SpanID(), r.Parent().SpanID(), "every RunWorkflow is a child of StartWorkflow")
	}
	trace := root.SpanContext().TraceID()

	assert.False(t, root.Parent().IsValid(), "the CLI's span is the root")
	assert.Contains(t, root.Attributes(), attribute.String("rollbook.service", f.service))
	assert.Contains(t, root.Attributes(), attribute.String("rollbook.version", "v2"))
	assert.Equal(t, root.SpanContext().SpanID(), startWf.Parent().SpanID(), "StartWorkflow is a child of the CLI's span")
	assert.Equal(t, startWf.SpanContext().SpanID(), runWf.Parent().SpanID(), "RunWorkflow (in the worker, through Temporal's headers) is a child of StartWorkflow")
	assert.Contains(t, runWf.Attributes(), attribute.String("temporalWorkflowID", workflows.WorkflowID(f.service)))

	// Every activity the workflow ran: scheduled from the workflow's span,
	// run under the scheduling span.
	byID := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID().String()] = s
	}
	var ran []string
	for _, ra := range spans {
		name, ok := strings.CutPrefix(ra.Name(), "RunActivity:")
		if !ok {
			continue
		}
		ran = append(ran, name)
		sa, ok := byID[ra.Parent().SpanID().String()]
		if assert.True(t, ok, "RunActivity:%s has a recorded parent", name) {
			assert.Equal(t, "StartActivity:"+name, sa.Name(), "RunActivity:%s is a child of its StartActivity", name)
			assert.True(t, runWfIDs[sa.Parent().SpanID().String()], "StartActivity:%s is a child of a RunWorkflow span", name)
		}
	}
	for _, want := range []string{contract.ActivityPreflight, contract.ActivityCaptureKV, contract.ActivityApplyKV, contract.ActivityMeasure} {
		assert.Contains(t, ran, want, "a RunActivity span for %s", want)
	}
	// One trace: nothing the deployment did started a trace of its own.
	for _, s := range spans {
		assert.Equal(t, trace, s.SpanContext().TraceID(), "%s is in the deployment's trace", s.Name())
	}
}

// TestE2ETracingFromEnvAcrossProcesses: the real CLI binary, configured
// only by OTEL_* variables (console exporter on stderr), starts a
// deployment that an in-process worker (recording in memory) runs: the
// worker's RunWorkflow span continues the trace of the CLI process's
// "rollbook deploy" span, and the CLI flushes its spans before it exits.
func TestE2ETracingFromEnvAcrossProcesses(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	t.Cleanup(tracing.Install(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))))
	const queue = tracingTaskQueue + "-env"
	startInProcessWorker(t, queue, nil)

	f := newFixture(t, "e2e-tracing-env")
	rb := filepath.Join(f.dir, f.service+".yaml")
	require.NoError(t, os.WriteFile(rb, []byte(fmt.Sprintf(`apiVersion: rollbook/v1
service: %s
steps:
  - name: flags
    consul:
      set:
        %sfeatures/traced: "env"
`, f.service, f.prefix)), 0o644))

	cmd := exec.Command(cliBin, "deploy", rb, "--version", "v3", "--wait", "--json", "--task-queue", queue)
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=console", "OTEL_SERVICE_NAME=ci-deployer")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	t.Logf("stdout (--json, untouched by tracing):\n%s", stdout.String())
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		require.True(t, json.Valid([]byte(line)), "stdout stays JSON lines: %q", line)
	}

	type consoleSpan struct {
		Name        string
		SpanContext struct{ TraceID, SpanID string }
		Parent      struct{ TraceID, SpanID string }
		Resource    []struct {
			Key   string
			Value struct{ Value any }
		}
	}
	cliSpans := map[string]consoleSpan{}
	dec := json.NewDecoder(&stderr)
	for dec.More() {
		var s consoleSpan
		require.NoError(t, dec.Decode(&s), "stderr holds only the console exporter's spans")
		cliSpans[s.Name] = s
	}
	root, ok := cliSpans["rollbook deploy"]
	require.True(t, ok, "the CLI flushed its root span before exiting: %v", cliSpans)
	startWf, ok := cliSpans["StartWorkflow:"+workflows.WorkflowType]
	require.True(t, ok, "the CLI's StartWorkflow span: %v", cliSpans)
	assert.Equal(t, root.SpanContext.SpanID, startWf.Parent.SpanID)
	assert.Contains(t, root.Resource, struct {
		Key   string
		Value struct{ Value any }
	}{Key: "service.name", Value: struct{ Value any }{"ci-deployer"}}, "OTEL_SERVICE_NAME names the CLI")

	var runWf sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		for _, s := range sr.Ended() {
			if s.Name() == "RunWorkflow:"+workflows.WorkflowType {
				runWf = s
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond)
	assert.Equal(t, root.SpanContext.TraceID, runWf.SpanContext().TraceID().String(), "the worker continues the CLI's trace")
	assert.Equal(t, startWf.SpanContext.SpanID, runWf.Parent().SpanID().String(), "RunWorkflow's parent is the CLI process's StartWorkflow span")
	assert.True(t, runWf.Parent().IsRemote(), "the parent came through Temporal's headers")
}
