package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/rollbook/rollbook/workflows"
)

// fakeTemporal stands in for the Temporal client in these handler tests
// (tests/alert_e2e_test.go runs the receiver against a real server): it
// knows which workflows exist and records the signals sent.
type fakeTemporal struct {
	mu        sync.Mutex
	workflows map[string]enumspb.WorkflowExecutionStatus // workflow ID → status of its latest run
	down      bool
	described []string
	signals   []sentSignal
}

type sentSignal struct {
	id, run, name string
	arg           workflows.AbortSignal
}

func (f *fakeTemporal) DescribeWorkflowExecution(_ context.Context, id, _ string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.described = append(f.described, id)
	if f.down {
		return nil, serviceerror.NewUnavailable("connection refused")
	}
	st, ok := f.workflows[id]
	if !ok {
		return nil, serviceerror.NewNotFound("workflow not found for ID: " + id)
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{
		Execution: &commonpb.WorkflowExecution{WorkflowId: id, RunId: "run-of-" + id},
		Status:    st,
	}}, nil
}

func (f *fakeTemporal) SignalWorkflow(_ context.Context, id, run, name string, arg any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signals = append(f.signals, sentSignal{id: id, run: run, name: name, arg: arg.(workflows.AbortSignal)})
	return nil
}

func (f *fakeTemporal) sent() []sentSignal {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sentSignal(nil), f.signals...)
}

func alertJSON(status, service, name, summary, fingerprint string) map[string]any {
	labels := map[string]string{"alertname": name, "severity": "page"}
	if service != "" {
		labels["service"] = service
	}
	return map[string]any{
		"status": status, "labels": labels, "annotations": map[string]string{"summary": summary},
		"startsAt": time.Now().UTC().Format(time.RFC3339), "fingerprint": fingerprint,
	}
}

func notification(alerts ...map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"version": "4", "status": "firing", "receiver": "rollbook", "groupKey": "{}:{}", "alerts": alerts})
	return b
}

type receiverFixture struct {
	temporal *fakeTemporal
	srv      *httptest.Server
	logs     *observer.ObservedLogs
}

func newReceiverFixture(t *testing.T, token string) *receiverFixture {
	t.Helper()
	ft := &fakeTemporal{workflows: map[string]enumspb.WorkflowExecutionStatus{
		"rollbook-payments-api": enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
		"rollbook-orders":       enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED,
	}}
	core, logs := observer.New(zap.InfoLevel)
	r := newAlertReceiver(ft, token, "service", zap.New(core))
	srv := httptest.NewServer(r.handler())
	t.Cleanup(srv.Close)
	return &receiverFixture{temporal: ft, srv: srv, logs: logs}
}

func (f *receiverFixture) post(t *testing.T, token string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+"/alerts", bytes.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func TestAlertReceiverAbortsOncePerRunAndAlert(t *testing.T) {
	f := newReceiverFixture(t, "s3cret")
	body := notification(alertJSON("firing", "payments-api", "PaymentsAPIErrorBudgetBurn", "payments-api burns its error budget 14x too fast", "fp1"))
	code, resp := f.post(t, "s3cret", body)
	require.Equal(t, http.StatusOK, code, resp)
	assert.Contains(t, resp, `"action":"aborted"`)

	sent := f.temporal.sent()
	require.Len(t, sent, 1)
	assert.Equal(t, "rollbook-payments-api", sent[0].id)
	assert.Equal(t, "run-of-rollbook-payments-api", sent[0].run)
	assert.Equal(t, workflows.SignalAbort, sent[0].name)
	assert.Equal(t, workflows.AbortSignal{Reason: "alert PaymentsAPIErrorBudgetBurn: payments-api burns its error budget 14x too fast", By: "alertmanager"}, sent[0].arg)

	// Alertmanager repeats a firing group every repeat_interval, and after
	// a restart: the same alert for the same run sends nothing more.
	code, resp = f.post(t, "s3cret", body)
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, resp, "already sent")
	assert.Len(t, f.temporal.sent(), 1)

	// A new alert in the group (another fingerprint) is news.
	code, _ = f.post(t, "s3cret", notification(
		alertJSON("firing", "payments-api", "PaymentsAPIErrorBudgetBurn", "x", "fp1"),
		alertJSON("firing", "payments-api", "PaymentsAPILatency", "p99 above 1s", "fp2")))
	require.Equal(t, http.StatusOK, code)
	sent = f.temporal.sent()
	require.Len(t, sent, 2)
	assert.Equal(t, "alert PaymentsAPILatency: p99 above 1s", sent[1].arg.Reason)
	assert.Equal(t, 2, f.logs.FilterMessage("abort sent").Len())
}

func TestAlertReceiverIgnoresWhatShouldNotAbort(t *testing.T) {
	f := newReceiverFixture(t, "s3cret")
	for name, tc := range map[string]struct {
		alert map[string]any
		why   string
	}{
		"resolved":        {alertJSON("resolved", "payments-api", "PaymentsAPIErrorBudgetBurn", "", "fp1"), "only firing alerts abort"},
		"no label":        {alertJSON("firing", "", "NodeDown", "", "fp2"), "no service label"},
		"bad name":        {alertJSON("firing", "../etc/passwd", "Evil", "", "fp3"), "invalid service label"},
		"spaces":          {alertJSON("firing", "a b", "Evil", "", "fp4"), "invalid service label"},
		"no deployment":   {alertJSON("firing", "inventory", "InventoryDown", "", "fp5"), "no deployment of inventory"},
		"already ended":   {alertJSON("firing", "orders", "OrdersDown", "", "fp6"), "the last one ended Completed"},
		"overlong labels": {alertJSON("firing", strings.Repeat("a", 300), "Long", "", "fp7"), "invalid service label"},
	} {
		code, resp := f.post(t, "s3cret", notification(tc.alert))
		assert.Equal(t, http.StatusOK, code, name)
		assert.Contains(t, resp, `"action":"ignored"`, name)
		assert.Contains(t, resp, tc.why, name)
	}
	assert.Empty(t, f.temporal.sent(), "nothing may be signalled")
	// A label that is not a valid name never reaches a workflow ID.
	for _, id := range f.temporal.described {
		assert.NotContains(t, id, "passwd")
		assert.NotContains(t, id, " ")
	}
	assert.GreaterOrEqual(t, f.logs.FilterMessage("alert ignored").Len(), 5)
	assert.Equal(t, 2, f.logs.FilterMessage("alerts ignored").Len())
}

func TestAlertReceiverAnswers503WhenTemporalIsDown(t *testing.T) {
	f := newReceiverFixture(t, "")
	f.temporal.down = true
	code, resp := f.post(t, "", notification(alertJSON("firing", "payments-api", "Burn", "", "fp1")))
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, resp, "Temporal unreachable")
	// Once Temporal answers again, Alertmanager's retry goes through.
	f.temporal.down = false
	code, _ = f.post(t, "", notification(alertJSON("firing", "payments-api", "Burn", "", "fp1")))
	assert.Equal(t, http.StatusOK, code)
	assert.Len(t, f.temporal.sent(), 1)
}

func TestAlertReceiverRefusesBadRequests(t *testing.T) {
	f := newReceiverFixture(t, "s3cret")
	good := notification(alertJSON("firing", "payments-api", "Burn", "", "fp1"))
	code, _ := f.post(t, "", good)
	assert.Equal(t, http.StatusUnauthorized, code, "no token")
	code, _ = f.post(t, "s3cret-but-longer", good)
	assert.Equal(t, http.StatusUnauthorized, code, "wrong token")
	code, _ = f.post(t, "s3cre", good)
	assert.Equal(t, http.StatusUnauthorized, code, "a prefix of the token")

	code, resp := f.post(t, "s3cret", []byte(`{"version":"3","alerts":[]}`))
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, resp, "version 4")
	code, _ = f.post(t, "s3cret", []byte(`{"version":"4","alerts":[`))
	assert.Equal(t, http.StatusBadRequest, code)
	big := append([]byte(`{"version":"4","receiver":"`), bytes.Repeat([]byte("x"), maxAlertBody)...)
	code, _ = f.post(t, "s3cret", append(big, `"}`...))
	assert.Equal(t, http.StatusRequestEntityTooLarge, code)

	resp2, err := http.Get(f.srv.URL + "/alerts")
	require.NoError(t, err)
	resp2.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp2.StatusCode)
	assert.Empty(t, f.temporal.sent(), "refused requests signal nothing")
	assert.Equal(t, 3, f.logs.FilterMessage("alert notification refused: missing or wrong bearer token").Len())
}

func runAlertReceiver(t *testing.T, d time.Duration, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var out, errOut bytes.Buffer
	code := Run(ctx, append([]string{"alert-receiver"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestAlertReceiverNeedsATokenBeyondLoopback(t *testing.T) {
	t.Setenv(envAlertReceiverToken, "")
	t.Setenv(envAlertReceiverTokenFile, "")
	for _, listen := range []string{"0.0.0.0:0", ":0"} {
		code, out, errOut := runAlertReceiver(t, 5*time.Second, "--listen", listen)
		assert.Equal(t, ExitBadInput, code, listen)
		assert.Contains(t, errOut, "without a token", listen)
		assert.NotContains(t, out, "listening", listen)
	}
	code, _, errOut := runAlertReceiver(t, 5*time.Second, "--listen", "127.0.0.1:0", "--token", "visible-in-ps")
	assert.Equal(t, ExitBadInput, code)
	assert.Contains(t, errOut, "unknown flag: --token")

	t.Setenv(envAlertReceiverToken, "tok")
	t.Setenv(envAlertReceiverTokenFile, "/nonexistent")
	code, _, errOut = runAlertReceiver(t, 5*time.Second, "--listen", "127.0.0.1:0")
	assert.Equal(t, ExitBadInput, code)
	assert.Contains(t, errOut, "not both")

	t.Setenv(envAlertReceiverTokenFile, "")
	code, _, errOut = runAlertReceiver(t, 5*time.Second, "--service-label", "bad label")
	assert.Equal(t, ExitBadInput, code)
	assert.Contains(t, errOut, "--service-label")
}
