package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/internal/haproxywatch"
	"github.com/rollbook/rollbook/internal/worker"
	"github.com/rollbook/rollbook/workflows"
)

// The alert the test adds to the stack's Prometheus: the multi-window burn
// alert of deploy/monitoring/rules/payments-api.rules.yml with its windows
// shrunk from 1h/5m to 20s/5s and its `for:` from 1m to 2s, so that it fires
// within seconds of a bad canary taking traffic, for this test's service.
const (
	alertTestService = "e2e-alerts"
	alertTestName    = "E2EErrorBudgetBurn"
	alertTestFor     = 2 * time.Second
)

var alertTestRules = fmt.Sprintf(`groups:
  - name: e2e-alerts
    interval: 1s
    rules:
      - alert: %[1]s
        expr: |
          sum(rate(demoapi_http_requests_total{job="demoapi",code=~"5.."}[20s])) / sum(rate(demoapi_http_requests_total{job="demoapi"}[20s])) > (14.4 * 0.001)
          and sum(rate(demoapi_http_requests_total{job="demoapi",code=~"5.."}[5s])) / sum(rate(demoapi_http_requests_total{job="demoapi"}[5s])) > (14.4 * 0.001)
        for: %[3]s
        labels:
          severity: page
          service: %[2]s
        annotations:
          summary: "{{ $value | humanizePercentage }} of requests fail"
`, alertTestName, alertTestService, alertTestFor)

// TestE2EAlertAbortsDeployment is issue 16, part 2: a bad canary makes the
// burn rule fire in the stack's real Prometheus, its real Alertmanager calls
// `rollbook alert-receiver`, and the deployment is aborted and rolled back.
func TestE2EAlertAbortsDeployment(t *testing.T) {
	if rulesDir == "" {
		t.Skip("needs the private stack's rules folder; the attached stack (ROLLBOOK_STACK_ENV) loads deploy/monitoring/rules only")
	}
	f := newFixture(t, alertTestService)
	ctx := context.Background()
	rec := startAlertReceiver(t)
	require.NoError(t, stack.SetAlertWebhook(ctx, rec.url, rec.tokenFile))
	t.Cleanup(func() { _ = stack.SetAlertWebhook(context.Background(), "", "") })
	addAlertRule(t)
	// A burn left over from an earlier test's bad canary would already be
	// firing, and Alertmanager would not notify it again for the new run.
	waitAlertState(t, "", 60*time.Second)

	t.Run("refusals", func(t *testing.T) { testAlertReceiverRefusals(t, rec) })

	startLoad(t, 40)
	obs, err := haproxywatch.Start(stack.HAProxySocket, devstack.Backend, 10*time.Millisecond)
	require.NoError(t, err)
	defer obs.Stop()
	// The runbook's own check tolerates a bad canary (maxErrorRate 0.99) and
	// verifies for longer than the test waits: only the alert can stop it.
	d := startCLI(t, "deploy", f.runbook(runbookOpts{verifyFor: 3 * time.Minute, maxErrorRate: 0.99}), "--version", "v2", "--wait")
	waitPhase(t, alertTestService, workflows.PhaseVerifying, 60*time.Second)
	require.Equal(t, 50, obs.Current().Canary, "the canary takes half the traffic")
	checkPhaseGauge(t)

	// The canary goes bad while it serves half the traffic: from here on,
	// callers get errors until the weights are restored.
	badAt := time.Now()
	setCanaryBad(t, 0.5)
	out, code := d.wait(t, 2*time.Minute)

	require.Equal(t, 3, code, "exit 3: aborted and rolled back\n%s", out)
	assert.Contains(t, out, alertTestName, "the reason names the alert")
	assert.Contains(t, out, "alertmanager")
	var r workflows.Result
	require.NoError(t, tclient.GetWorkflow(ctx, workflows.WorkflowID(alertTestService), "").Get(ctx, &r))
	assert.Equal(t, workflows.OutcomeAborted, r.Outcome)
	assert.Contains(t, r.Reason, "aborted by alertmanager: alert "+alertTestName+": ")
	assert.Contains(t, r.Reason, "of requests fail", "the summary annotation")
	after := f.liveState()
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, after.Weights, "weights restored")
	assert.EqualValues(t, 0, after.Schema)
	assert.False(t, after.FlagSet)

	restored, err := obs.WaitFor(ctx, badAt, 5*time.Second, haproxywatch.Weights.Restored)
	require.NoError(t, err)
	t.Logf("first bad request (canary turned bad at 50%% of the traffic) → weights restored: %s (rule for: %s, evaluation and scrape every %s, Alertmanager group_wait %s, observer polling every 10 ms)",
		restored.Sub(badAt).Round(time.Millisecond), alertTestFor, devstack.DefaultEvaluationInterval, devstack.DefaultAlertGroupWait)
	rec.requireCount(t, `"msg":"abort sent"`, 1, "one abort for one alert")

	// Once the canary is out of traffic the alert resolves; Alertmanager
	// sends the resolved notification, which changes nothing.
	waitAlertState(t, "", 60*time.Second)
	require.Eventually(t, func() bool { return rec.count(`"status":"resolved"`) > 0 }, 30*time.Second, 200*time.Millisecond,
		"no resolved notification reached the receiver\n%s", rec.logs())
	assert.Equal(t, 1, rec.count(`"msg":"abort sent"`))
	assert.Equal(t, after, f.liveState(), "the resolved notification changed nothing")
}

// checkPhaseGauge: the worker's rollbook_deployments_in_phase, counted in
// the real Temporal's visibility store, sees the verifying deployment.
func checkPhaseGauge(t *testing.T) {
	t.Helper()
	want := `rollbook_deployments_in_phase{phase="verifying"} `
	m, err := worker.NewMetrics(zap.NewNop())
	require.NoError(t, err)
	defer m.Shutdown(context.Background())
	require.NoError(t, m.WatchPhases(tclient, devstack.Namespace, zap.NewNop()))
	var last string
	// The gauge counts in the background, at most every 10 s.
	require.Eventually(t, func() bool {
		rr := httptest.NewRecorder()
		m.HTTPHandler().ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		for _, line := range strings.Split(rr.Body.String(), "\n") {
			if strings.HasPrefix(line, want) {
				last = line
				return strings.TrimPrefix(line, want) != "0"
			}
		}
		return false
	}, 25*time.Second, 200*time.Millisecond, "the phase gauge does not count the verifying deployment (last: %q)", last)
	t.Logf("phase gauge: %s", last)
}

// testAlertReceiverRefusals: no or a wrong token is refused; a firing alert
// for a service with no deployment is answered 200 and ignored.
func testAlertReceiverRefusals(t *testing.T, rec *alertReceiverProc) {
	body := fmt.Sprintf(`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"Probe","service":"%s"},"annotations":{"summary":"probe"},"fingerprint":"probe"}]}`, "e2e-nobody-deploys-this")
	for token, want := range map[string]int{"": http.StatusUnauthorized, "wrong": http.StatusUnauthorized, rec.token: http.StatusOK} {
		req, err := http.NewRequest(http.MethodPost, rec.url, strings.NewReader(body))
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, want, resp.StatusCode, "token %q: %s", token, b)
		if want == http.StatusOK {
			assert.Contains(t, string(b), `"action":"ignored"`)
			assert.Contains(t, string(b), "no deployment of e2e-nobody-deploys-this")
		}
	}
	rec.requireCount(t, "missing or wrong bearer token", 2, "both refusals logged")
}

// addAlertRule writes the test's rule file into the stack's rules folder and
// reloads Prometheus; the cleanup takes it out again.
func addAlertRule(t *testing.T) {
	t.Helper()
	_, errs := rulefmt.Parse([]byte(alertTestRules))
	require.Empty(t, errs, "the test's rule file")
	p := filepath.Join(rulesDir, "e2e-alerts.yml")
	require.NoError(t, os.WriteFile(p, []byte(alertTestRules), 0o644))
	require.NoError(t, stack.ReloadPrometheus(context.Background()))
	t.Cleanup(func() {
		_ = os.Remove(p)
		_ = stack.ReloadPrometheus(context.Background())
	})
	// The rule is loaded once Prometheus lists it.
	require.Eventually(t, func() bool {
		var v struct {
			Data struct {
				Groups []struct {
					Name string `json:"name"`
				} `json:"groups"`
			} `json:"data"`
		}
		if err := promGet("/api/v1/rules", nil, &v); err != nil {
			return false
		}
		for _, g := range v.Data.Groups {
			if g.Name == "e2e-alerts" {
				return true
			}
		}
		return false
	}, 20*time.Second, 200*time.Millisecond, "Prometheus did not load the test's rule file")
}

// waitAlertState waits until the test alert's state is state ("" = neither
// pending nor firing).
func waitAlertState(t *testing.T, state string, timeout time.Duration) {
	t.Helper()
	var last string
	require.Eventually(t, func() bool {
		var v struct {
			Data struct {
				Result []struct {
					Metric map[string]string `json:"metric"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := promGet("/api/v1/query", url.Values{"query": {`ALERTS{alertname="` + alertTestName + `"}`}}, &v); err != nil {
			last = err.Error()
			return false
		}
		got := ""
		for _, r := range v.Data.Result {
			got = r.Metric["alertstate"]
		}
		last = got
		return got == state
	}, timeout, 500*time.Millisecond, "alert %s did not reach state %q (last: %q)", alertTestName, state, last)
}

func promGet(path string, q url.Values, v any) error {
	u := stack.PrometheusURL + path
	if q != nil {
		u += "?" + q.Encode()
	}
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// alertReceiverProc is `rollbook alert-receiver` running as its own
// process, with a bearer token from a file.
type alertReceiverProc struct {
	url, token, tokenFile string
	mu                    sync.Mutex
	stderr                bytes.Buffer
}

func (p *alertReceiverProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.Write(b)
}

func (p *alertReceiverProc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func (p *alertReceiverProc) count(s string) int { return strings.Count(p.logs(), s) }

// requireCount waits until s occurs n times in the receiver's log and checks
// it does not occur more often. The receiver logs before it answers, but its
// stderr reaches this process through a pipe that exec copies in a goroutine
// of its own, so a line can arrive a moment after the answer.
func (p *alertReceiverProc) requireCount(t *testing.T, s string, n int, what string) {
	t.Helper()
	require.Eventually(t, func() bool { return p.count(s) >= n }, 5*time.Second, 20*time.Millisecond,
		"%s: want %d × %q in the receiver's log\n%s", what, n, s, p.logs())
	time.Sleep(100 * time.Millisecond) // a line too many would arrive as late
	require.Equal(t, n, p.count(s), "%s: %q\n%s", what, s, p.logs())
}

func startAlertReceiver(t *testing.T) *alertReceiverProc {
	t.Helper()
	p := &alertReceiverProc{token: "e2e-alert-token", tokenFile: filepath.Join(t.TempDir(), "alert-token")}
	require.NoError(t, os.WriteFile(p.tokenFile, []byte(p.token+"\n"), 0o600))
	cmd := exec.Command(cliBin, "alert-receiver", "--listen", "127.0.0.1:0", "--token-file", p.tokenFile)
	cmd.Stderr = p
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
		t.Logf("alert receiver logs:\n%s", p.logs())
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	select {
	case line := <-lines:
		// "alert receiver listening on http://127.0.0.1:P/alerts (…)"
		f := strings.Fields(line)
		require.GreaterOrEqual(t, len(f), 5, line)
		p.url = f[4]
	case <-time.After(30 * time.Second):
		t.Fatalf("the alert receiver did not start:\n%s", p.logs())
	}
	require.Contains(t, p.url, "http://127.0.0.1:")
	return p
}
