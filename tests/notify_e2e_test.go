package tests

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"

	"github.com/rollbook/rollbook/internal/worker"
	"github.com/rollbook/rollbook/workflows"
)

const pagingTaskQueue = "rollbook-e2e-paging"

// jsonSink is a local receiver that records the JSON bodies posted to it.
type jsonSink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []map[string]any
}

func newJSONSink(t *testing.T, status int, answer string) *jsonSink {
	s := &jsonSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			m = map[string]any{"unparsed": string(b)}
		}
		m["_path"] = r.URL.Path
		m["_at"] = time.Now()
		s.mu.Lock()
		s.bodies = append(s.bodies, m)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *jsonSink) got() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.bodies...)
}

// waitFor polls until cond holds on the sink's bodies.
func (s *jsonSink) waitFor(t *testing.T, what string, timeout time.Duration, cond func([]map[string]any) bool) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b := s.got()
		if cond(b) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; received %v", what, timeout, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startPagingWorker runs the worker binary with the dev worker's config on
// pagingTaskQueue, plus a generic JSON chat webhook and a PagerDuty paging
// service, both pointing at local receivers.
func startPagingWorker(t *testing.T, dir, chatURL, eventsURL, routingKey string) {
	t.Helper()
	bin := filepath.Join(dir, "rollbook-worker")
	build := exec.Command("go", "build", "-o", bin, "./workers/rollbook-worker")
	build.Dir = repoRoot
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build ./workers/rollbook-worker: %s", out)
	keyFile := filepath.Join(dir, "pagerduty-key")
	require.NoError(t, os.WriteFile(keyFile, []byte(routingKey+"\n"), 0o600))
	t.Setenv("ROLLBOOK_E2E_CHAT_URL", chatURL)

	cfg, err := worker.LoadConfig(filepath.Join(repoRoot, "examples", "dev-worker.yaml"))
	require.NoError(t, err)
	cfg.TaskQueue = pagingTaskQueue
	cfg.Metrics.Listen = ""
	cfg.Log = worker.LogConfig{Level: "info", Format: "json"}
	cfg.Webhooks = map[string]worker.WebhookConfig{"chat": {Kind: "generic", URLEnv: "ROLLBOOK_E2E_CHAT_URL"}}
	cfg.Paging = map[string]worker.PagingConfig{"oncall": {Kind: "pagerduty", RoutingKeyFile: keyFile, EventsURL: eventsURL}}
	cfg.WebUI = "http://ui.e2e.invalid:8233"
	b, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	cfgPath := filepath.Join(dir, "worker.yaml")
	require.NoError(t, os.WriteFile(cfgPath, b, 0o644))
	startWorkerProcess(t, bin, cfgPath, "")
}

// The real worker binary, the real Temporal server and HAProxy: a rollback
// that cannot restore traffic (the stable server is in maintenance) is
// stuck, and the on-call is paged through PagerDuty Events v2 (a local
// receiver); the operator brings the server back and retries, the rollback
// completes and the page is resolved, with the workflow ID as dedup key
// both times. The chat webhook (generic JSON) sees every phase.
func TestE2EPageStuckRollbackResolvedAfterRetry(t *testing.T) {
	f := newFixture(t, "e2e-paging")
	const routingKey = "e2eRoutingKey0123456789abcdefABCD"
	pd := newJSONSink(t, http.StatusAccepted, `{"status":"success","message":"Event processed"}`)
	chat := newJSONSink(t, http.StatusOK, "")
	chatURL := "generic://" + strings.TrimPrefix(chat.srv.URL, "http://") + "/hooks/e2e?template=json&disabletls=yes"
	startPagingWorker(t, t.TempDir(), chatURL, pd.srv.URL, routingKey)

	rb := f.runbook(runbookOpts{verifyFor: 60 * time.Second})
	src, err := os.ReadFile(rb)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(rb, append(src, []byte("notify: {webhook: chat, page: oncall}\n")...), 0o644))

	d := startCLI(t, "deploy", rb, "--version", "v2", "--wait", "--task-queue", pagingTaskQueue)
	waitPhase(t, f.service, workflows.PhaseVerifying, 60*time.Second)
	setStable(t, "maint")
	defer setStable(t, "ready")
	aborted := time.Now()
	out, code := cli(t, "abort", f.service, "--reason", "testing the page")
	require.Equal(t, 0, code, out)
	st := waitPhase(t, f.service, workflows.PhaseRollbackStuck, 60*time.Second)
	require.Equal(t, "canary-50", st.CurrentStep)

	events := pd.waitFor(t, "the trigger", 30*time.Second, func(b []map[string]any) bool { return len(b) >= 1 })
	trigger := events[0]
	t.Logf("abort sent → the trigger at the receiver: %s", trigger["_at"].(time.Time).Sub(aborted).Round(time.Millisecond))
	assert.Equal(t, "/v2/enqueue", trigger["_path"])
	assert.Equal(t, "trigger", trigger["event_action"])
	assert.Equal(t, routingKey, trigger["routing_key"])
	assert.Equal(t, workflows.WorkflowID(f.service), trigger["dedup_key"])
	payload, _ := trigger["payload"].(map[string]any)
	require.NotNil(t, payload, "the trigger has a payload: %v", trigger)
	assert.Equal(t, "critical", payload["severity"])
	assert.Contains(t, payload["summary"], "rollbook: e2e-paging v2 is rollback-stuck at step canary-50")
	details, _ := payload["custom_details"].(map[string]any)
	assert.True(t, strings.HasPrefix(details["webUI"].(string), "http://ui.e2e.invalid:8233/namespaces/"), "%v", details)

	setStable(t, "ready")
	time.Sleep(1500 * time.Millisecond) // let HAProxy's health check see it up
	retried := time.Now()
	out, code = cli(t, "retry", f.service)
	require.Equal(t, 0, code, out)
	out, code = d.wait(t, 90*time.Second)
	require.Equal(t, 3, code, out)

	// The workflow waits for its last notifications before it completes:
	// the resolve is there when the CLI returns.
	events = pd.got()
	require.Len(t, events, 2, "a trigger, then a resolve: %v", events)
	assert.Equal(t, "resolve", events[1]["event_action"])
	assert.Equal(t, workflows.WorkflowID(f.service), events[1]["dedup_key"])
	assert.Equal(t, routingKey, events[1]["routing_key"])
	t.Logf("retry sent → the resolve at the receiver: %s (the rest of the rollback, then the resolve)", events[1]["_at"].(time.Time).Sub(retried).Round(time.Millisecond))

	var phases []string
	for _, m := range chat.got() {
		assert.Equal(t, "e2e-paging", m["service"])
		phases = append(phases, m["phase"].(string))
	}
	assert.Equal(t, []string{"deploying", "verifying", "rolling-back", "rollback-stuck", "rolling-back", "aborted"}, phases)

	// The history names the webhook and the paging service, never the
	// routing key or the chat URL.
	hist := historyJSON(t, f.service)
	assert.Contains(t, hist, `"page":"oncall"`)
	assert.NotContains(t, hist, routingKey)
	assert.NotContains(t, hist, "/hooks/e2e")
	if os.Getenv(EnvRecordHistories) != "" {
		recordHistory(t, f.service, "rollback-stuck-paged.json", workflows.WorkflowType)
	}
}

// historyJSON is the latest run's history of service as compact JSON.
func historyJSON(t *testing.T, service string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hist := &historypb.History{}
	it := tclient.GetWorkflowHistory(ctx, workflows.WorkflowID(service), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		hist.Events = append(hist.Events, ev)
	}
	data, err := temporalproto.CustomJSONMarshalOptions{}.Marshal(hist)
	require.NoError(t, err)
	// Payloads are base64 in the JSON: decode them so the search sees
	// their text.
	var out strings.Builder
	out.Write(data)
	for _, m := range payloadData.FindAllSubmatch(data, -1) {
		if b, err := base64.StdEncoding.DecodeString(string(m[1])); err == nil {
			out.WriteByte('\n')
			out.Write(b)
		}
	}
	return out.String()
}

var payloadData = regexp.MustCompile(`"data":"([A-Za-z0-9+/=]+)"`)
