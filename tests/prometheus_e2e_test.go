package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/internal/worker"
	"github.com/rollbook/rollbook/runbook"
	"github.com/rollbook/rollbook/workflows"
)

// The prometheus check against the stack's real Prometheus 2.42, which scrapes both demo API
// instances every second (subset="stable"/"canary"). The worker's "default" server is the
// stack's (examples/dev-worker.yaml: urlEnv ROLLBOOK_PROMETHEUS_URL).

// promRunbook moves half of the traffic to the canary, waits settle (like the example
// runbook, whose PromQL checks run at 50 % after 20 s of canary traffic at 10 %), and then
// verifies checks (each one line of JSON, which YAML reads as it is) for verifyFor at 2 s
// intervals.
func (f *fixture) promRunbook(settle, verifyFor time.Duration, checks ...runbook.Check) string {
	f.t.Helper()
	var lines []string
	for _, c := range checks {
		b, err := json.Marshal(c)
		require.NoError(f.t, err)
		lines = append(lines, "        - "+string(b))
	}
	y := fmt.Sprintf(`apiVersion: rollbook/v1
service: %s
routes:
  - {name: api, router: edge, backend: payments_api, subsets: [stable, canary], stable: stable, canary: canary}
steps:
  - name: canary-50
    traffic: {route: api, weights: {stable: 50, canary: 50}}
  - name: settle
    pause: {duration: %s}
  - name: verify-prom
    verify:
      duration: %s
      interval: 2s
      checks:
%s
`, f.service, settle, verifyFor, strings.Join(lines, "\n"))
	p := filepath.Join(f.dir, f.service+".yaml")
	require.NoError(f.t, os.WriteFile(p, []byte(y), 0o644))
	return p
}

// exampleChecks returns the prometheus checks of runbooks/payments-api.yaml, so that the
// tests prove the example's own PromQL.
func exampleChecks(t *testing.T) map[string]runbook.Check {
	t.Helper()
	rb, err := runbook.Load(filepath.Join(repoRoot, "runbooks", "payments-api.yaml"))
	require.NoError(t, err)
	found := map[string]runbook.Check{}
	for _, s := range rb.Steps {
		if s.Verify == nil {
			continue
		}
		for _, c := range s.Verify.Checks {
			if c.Prometheus != nil {
				found[c.Name] = c
			}
		}
	}
	require.Contains(t, found, "canary-5xx-ratio")
	require.Contains(t, found, "canary-p99-vs-stable")
	return found
}

// canaryVersion is the version the stack's canary runs. The example's
// queries judge only the series of the version being deployed
// (version="{{version}}"), so the tests, which verify the canary without
// releasing it, deploy that version.
func canaryVersion(t *testing.T) string {
	t.Helper()
	v, err := devstack.DemoVersion(context.Background(), stack.DemoCanaryURL)
	require.NoError(t, err)
	return v
}

// waitScraped waits until the stack's Prometheus has scraped both demo API instances (a
// stack that has just started has no sample yet).
func waitScraped(t *testing.T) {
	t.Helper()
	api, err := promapi.NewClient(promapi.Config{Address: stack.PrometheusURL})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		v, _, _, err := promv1.NewAPI(api).Query(context.Background(), `count(up{job="demoapi"} == 1)`, time.Now())
		vec, ok := v.(model.Vector)
		return err == nil && ok && len(vec) == 1 && vec[0].Value == 2
	}, 30*time.Second, 250*time.Millisecond, "Prometheus at %s has not scraped both demo API instances", stack.PrometheusURL)
}

// waitCanaryErrorsAged waits until no canary 5xx is left in the example's
// 30 s range. The tests' canary always runs the same version, so a test that
// made it fail a moment ago would still count in a healthy test's query (a
// real deployment does not share its version with the one rolled back before
// it, which version="{{version}}" relies on).
func waitCanaryErrorsAged(t *testing.T) {
	t.Helper()
	api, err := promapi.NewClient(promapi.Config{Address: stack.PrometheusURL})
	require.NoError(t, err)
	q := `sum(rate(demoapi_http_requests_total{job="demoapi",subset="canary",code=~"5.."}[30s])) or vector(0)`
	require.Eventually(t, func() bool {
		v, _, _, err := promv1.NewAPI(api).Query(context.Background(), q, time.Now())
		vec, ok := v.(model.Vector)
		return err == nil && ok && len(vec) == 1 && vec[0].Value == 0
	}, 45*time.Second, 500*time.Millisecond, "the canary's 5xx in the last 30 s did not age out")
}

// judgements returns every judgement of check in the deployment's rounds (the status
// query, which a finished deployment still answers).
func judgements(t *testing.T, service, check string) []workflows.CheckJudgement {
	t.Helper()
	st, err := status(service)
	require.NoError(t, err)
	var js []workflows.CheckJudgement
	for _, r := range st.Rounds {
		for _, j := range r.Judgement {
			if j.Check == check {
				js = append(js, j)
			}
		}
	}
	return js
}

// A healthy canary under load passes the example runbook's 5xx ratio and p99-vs-stable
// queries with real values, and a plain threshold query passes too.
func TestE2EPrometheusChecksPassHealthyCanary(t *testing.T) {
	f := newFixture(t, "e2e-prom-pass")
	waitScraped(t)
	waitCanaryErrorsAged(t)
	ex := exampleChecks(t)
	l := startLoad(t, 30)
	defer l.Stop()
	one := 1.0
	up := runbook.Check{Name: "canary-scraped", Prometheus: &runbook.PrometheusCheck{
		Query: `up{job="demoapi",subset="canary"}`, Min: &one}}
	res, code, out := deployResult(t, f.promRunbook(5*time.Second, 8*time.Second, ex["canary-5xx-ratio"], ex["canary-p99-vs-stable"], up), canaryVersion(t))
	require.Equal(t, 0, code, out)
	assert.Equal(t, workflows.OutcomeSucceeded, res.Outcome)
	assert.Equal(t, map[string]int{"stable": 50, "canary": 50}, weights(t))
	for _, name := range []string{"canary-5xx-ratio", "canary-p99-vs-stable", "canary-scraped"} {
		js := judgements(t, f.service, name)
		require.NotEmpty(t, js, "no rounds of %s", name)
		last := js[len(js)-1]
		assert.Equal(t, workflows.JudgePass, last.Verdict, "%s: %+v", name, last)
		t.Logf("%s: %d rounds, last %+v", name, len(js), last)
	}
	// A healthy canary: no 5xx at all, and p99 within the bound (twice max(stable p99, 50 ms)).
	ratio := judgements(t, f.service, "canary-5xx-ratio")
	assert.Zero(t, ratio[len(ratio)-1].Value)
	p99 := judgements(t, f.service, "canary-p99-vs-stable")
	assert.LessOrEqual(t, p99[len(p99)-1].Value, 2.0)
}

// A canary failing half of its requests (which HAProxy retries on stable, so clients see
// none of them) is caught by the example's 5xx ratio query: the deployment rolls back.
func TestE2EPrometheusCheckFailsBadCanary(t *testing.T) {
	f := newFixture(t, "e2e-prom-fail")
	waitScraped(t)
	ex := exampleChecks(t)
	setCanaryBad(t, 0.5)
	defer setCanaryBad(t, 0)
	l := startLoad(t, 30)
	defer l.Stop()
	res, code, out := deployResult(t, f.promRunbook(time.Second, 30*time.Second, ex["canary-5xx-ratio"]), canaryVersion(t))
	require.Equal(t, 2, code, out)
	assert.Equal(t, workflows.OutcomeRolledBack, res.Outcome)
	assert.Equal(t, "verify-prom", res.FailedStep)
	assert.Contains(t, res.Reason, "check canary-5xx-ratio failed")
	assert.Contains(t, res.Reason, "above max 0.01")
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t), "the traffic step was undone")
	// The query's 30 s window may still hold an earlier test's healthy canary requests, or
	// none at all: the first rounds may pass or have no value (inconclusive). The
	// check fails at its third failed measurement, on a measured ratio.
	js := judgements(t, f.service, "canary-5xx-ratio")
	require.NotEmpty(t, js)
	var fails int
	for _, j := range js {
		t.Logf("round: %+v", j)
		if j.Verdict == workflows.JudgeFail {
			fails++
		}
	}
	assert.Equal(t, 3, fails, "failureLimit 2: the third failed measurement fails the check")
	last := js[len(js)-1]
	assert.Equal(t, workflows.JudgeFail, last.Verdict)
	assert.Contains(t, last.Reason, "above max 0.01")
	assert.Greater(t, last.Value, 0.01)
}

// A query with no samples, and one whose value is NaN, never pass: each round is
// inconclusive, so the verification ends with no conclusive passing measurement and the
// deployment rolls back.
func TestE2EPrometheusEmptyResultNeverPasses(t *testing.T) {
	f := newFixture(t, "e2e-prom-empty")
	waitScraped(t)
	one := 1.0
	empty := runbook.Check{Name: "no-samples", Prometheus: &runbook.PrometheusCheck{
		Query: `demoapi_http_requests_total{job="demoapi",subset="no-such-subset"}`, Max: &one}}
	nan := runbook.Check{Name: "nan", Prometheus: &runbook.PrometheusCheck{Query: `vector(0) / vector(0)`, Max: &one}}
	res, code, out := deployResult(t, f.promRunbook(time.Second, 6*time.Second, empty, nan), "v2")
	require.Equal(t, 2, code, out)
	assert.Equal(t, workflows.OutcomeRolledBack, res.Outcome)
	assert.Equal(t, "verify-prom", res.FailedStep)
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t))
	assert.Contains(t, res.Reason, "had no conclusive passing measurement")
	for check, want := range map[string]string{"no-samples": "returned 0 samples", "nan": "returned NaN"} {
		js := judgements(t, f.service, check)
		require.NotEmpty(t, js, check)
		for _, j := range js {
			assert.Equal(t, workflows.JudgeInconclusive, j.Verdict, "%s: %+v", check, j)
			assert.Contains(t, j.Reason, want, check)
		}
	}
}

// A Prometheus server that is down fails the measurement with the connection error; the
// deployment rolls back, and the reason says which query could not run.
func TestE2EPrometheusServerDown(t *testing.T) {
	const queue = "rollbook-e2e-prom-down"
	f := newFixture(t, "e2e-prom-down")
	waitScraped(t)
	// A port that nothing listens on: taken, then let go.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	downURL := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())

	startInProcessWorker(t, queue, func(cfg *worker.Config) {
		cfg.Prometheus["down"] = worker.AddressConfig{URL: downURL}
	})

	one := 1.0
	check := runbook.Check{Name: "down-server", Prometheus: &runbook.PrometheusCheck{Server: "down", Query: "up", Min: &one}}
	start := time.Now()
	res, code, out := deployResult(t, f.promRunbook(time.Second, 20*time.Second, check), "v2", "--task-queue", queue)
	require.Equal(t, 2, code, out)
	assert.Equal(t, workflows.OutcomeRolledBack, res.Outcome)
	assert.Contains(t, res.Reason, "check down-server failed: measurement failed: query \"up\"")
	assert.Contains(t, res.Reason, "connection refused")
	assert.Less(t, time.Since(start), 20*time.Second, "the first failed measurement ends it, not the verify's duration")
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t))
}
