package activities

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/internal/clip"
	"github.com/rollbook/rollbook/internal/router"
	"github.com/rollbook/rollbook/runbook"
)

// countingServer answers 200 on /ok, redirects /same to /ok and /away to
// away, and counts every request it gets.
func countingServer(t *testing.T, away string) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/away":
			http.Redirect(w, r, away, http.StatusFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func httpCheck(name string, hc runbook.HTTPCheck) runbook.Check {
	return runbook.Check{Name: name, HTTP: &hc}
}

func TestHTTPCheckOnlyReads(t *testing.T) {
	srv, hits := countingServer(t, "")
	c, err := NewChecks(ChecksConfig{Endpoints: map[string]string{"api": srv.URL}, AllowedHosts: []string{"127.0.0.1"}})
	require.NoError(t, err)
	for _, m := range []string{"DELETE", "POST", "PUT", "PATCH", "OPTIONS", "get\r\nX: y"} {
		for _, hc := range []runbook.HTTPCheck{{URL: srv.URL + "/ok", Method: m}, {Endpoint: "api", Path: "/ok", Method: m}} {
			_, err := runActivity[MeasureResult](t, c, c.Measure, MeasureInput{Checks: []runbook.Check{httpCheck("write", hc)}})
			requireErrType(t, err, ErrInvalid)
			require.Contains(t, err.Error(), "only GET or HEAD")
		}
	}
	require.Zero(t, hits.Load(), "a refused method sends nothing")

	res, err := runActivity[MeasureResult](t, c, c.Measure, MeasureInput{Checks: []runbook.Check{
		httpCheck("head", runbook.HTTPCheck{URL: srv.URL + "/ok", Method: "HEAD"}),
		httpCheck("get", runbook.HTTPCheck{Endpoint: "api", Path: "/ok", Method: "get"}),
	}})
	require.NoError(t, err)
	require.Equal(t, 200, res.Measurements[0].Status)
	require.Equal(t, 200, res.Measurements[1].Status)
}

func TestHTTPCheckAllowlist(t *testing.T) {
	other, otherHits := countingServer(t, "")
	srv, hits := countingServer(t, other.URL+"/ok")
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	measure := func(c *Checks, ch runbook.Check) (Measurement, error) {
		res, err := runActivity[MeasureResult](t, c, c.Measure, MeasureInput{Checks: []runbook.Check{ch}})
		if err != nil {
			return Measurement{}, err
		}
		return res.Measurements[0], nil
	}

	// Without an allowlist only named endpoints work.
	c, err := NewChecks(ChecksConfig{Endpoints: map[string]string{"api": srv.URL}})
	require.NoError(t, err)
	_, err = measure(c, httpCheck("url", runbook.HTTPCheck{URL: srv.URL + "/ok"}))
	requireErrType(t, err, ErrInvalid)
	require.Contains(t, err.Error(), "checks.allowedHosts is empty")
	m, err := measure(c, httpCheck("ep", runbook.HTTPCheck{Endpoint: "api", Path: "/same"}))
	require.NoError(t, err)
	require.Equal(t, 200, m.Status, "a same-host redirect is followed")
	require.Empty(t, m.Error)

	// An endpoint's redirect to another host is not followed.
	m, err = measure(c, httpCheck("ep-away", runbook.HTTPCheck{Endpoint: "api", Path: "/away"}))
	require.NoError(t, err)
	require.Contains(t, m.Error, "redirect")
	require.Zero(t, otherHits.Load(), "the other host got nothing")

	// An IP literal outside the list is refused before anything is sent.
	c, err = NewChecks(ChecksConfig{AllowedHosts: []string{"10.0.0.0/8", "status.example.com"}})
	require.NoError(t, err)
	before := hits.Load()
	_, err = measure(c, httpCheck("ip", runbook.HTTPCheck{URL: srv.URL + "/ok"}))
	requireErrType(t, err, ErrInvalid)
	require.Contains(t, err.Error(), "not in this worker's checks.allowedHosts")
	// A name that is not listed is judged on the address it connects to:
	// localhost is 127.0.0.1, outside 10.0.0.0/8, so the dial is refused.
	m, err = measure(c, httpCheck("name", runbook.HTTPCheck{URL: "http://localhost:" + port + "/ok", Timeout: runbook.Duration(2 * time.Second)}))
	require.NoError(t, err)
	require.Contains(t, m.Error, "not in the allowed hosts")
	require.Equal(t, 1, m.Failures)
	require.Equal(t, before, hits.Load(), "no request reached the server")

	// Allowed by its peer IP; a redirect to another host is refused even
	// though that host is allowed too (same-host redirects only).
	c, err = NewChecks(ChecksConfig{AllowedHosts: []string{"127.0.0.1"}})
	require.NoError(t, err)
	m, err = measure(c, httpCheck("ok", runbook.HTTPCheck{URL: "http://localhost:" + port + "/same"}))
	require.NoError(t, err)
	require.Equal(t, 200, m.Status)
	m, err = measure(c, httpCheck("away", runbook.HTTPCheck{URL: srv.URL + "/away"}))
	require.NoError(t, err)
	require.Contains(t, m.Error, "only redirects within the same host")
	require.Zero(t, otherHits.Load())
}

func TestCheckErrorsRedactURLSecrets(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadHost := strings.TrimPrefix(dead.URL, "http://")
	dead.Close()
	secretURL := "http://alice:pa55word@" + deadHost + "/base?token=s3cret"
	c, err := NewChecks(ChecksConfig{
		Endpoints:    map[string]string{"api": secretURL},
		Prometheus:   map[string]string{"default": secretURL},
		AllowedHosts: []string{"127.0.0.1"},
	})
	require.NoError(t, err)
	res, err := runActivity[MeasureResult](t, c, c.Measure, MeasureInput{Checks: []runbook.Check{
		httpCheck("ep", runbook.HTTPCheck{Endpoint: "api", Path: "/healthz", Timeout: runbook.Duration(time.Second)}),
		httpCheck("url", runbook.HTTPCheck{URL: secretURL, Timeout: runbook.Duration(time.Second)}),
		{Name: "prom", Prometheus: &runbook.PrometheusCheck{Query: "up"}},
	}})
	require.NoError(t, err)
	for _, m := range res.Measurements {
		require.NotEmpty(t, m.Error, m.Check)
		for _, secret := range []string{"s3cret", "token", "alice", "pa55word"} {
			require.NotContains(t, m.Error+m.Detail, secret, "check %s: %s", m.Check, m.Error)
		}
		require.Contains(t, m.Error, "redacted", m.Check)
	}

	// A URL that does not parse is not echoed either.
	_, err = NewChecks(ChecksConfig{Prometheus: map[string]string{"default": "http://alice:pa55word@h:bad/?token=s3cret"}})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "pa55word")
	require.NotContains(t, err.Error(), "s3cret")
}

func TestMeasureBoundsConcurrency(t *testing.T) {
	var inflight, peak atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(40 * time.Millisecond)
		inflight.Add(-1)
	}))
	defer srv.Close()
	c, err := NewChecks(ChecksConfig{Endpoints: map[string]string{"api": srv.URL}})
	require.NoError(t, err)
	var checks []runbook.Check
	for i := range 40 {
		checks = append(checks, httpCheck(strings.Repeat("c", i+1), runbook.HTTPCheck{Endpoint: "api"}))
	}
	res, err := runActivity[MeasureResult](t, c, c.Measure, MeasureInput{Checks: checks})
	require.NoError(t, err)
	require.Len(t, res.Measurements, 40)
	for i, m := range res.Measurements {
		require.Equal(t, checks[i].Name, m.Check, "order kept")
		require.Equal(t, 200, m.Status)
	}
	require.LessOrEqual(t, peak.Load(), int32(maxParallelChecks))
	require.Greater(t, peak.Load(), int32(1), "checks still run in parallel")
}

func TestErrorsEchoBoundedInput(t *testing.T) {
	huge := strings.Repeat("é", 450_000) // 900 KB of 2-byte runes
	c, err := NewChecks(ChecksConfig{})
	require.NoError(t, err)
	_, err = runActivity[MeasureResult](t, c, c.Measure, MeasureInput{Checks: []runbook.Check{
		{Name: huge, Prometheus: &runbook.PrometheusCheck{Server: huge, Query: huge}},
	}})
	requireErrType(t, err, ErrInvalid)
	require.Less(t, len(err.Error()), 2000)
	require.True(t, strings.Contains(err.Error(), "more bytes"), err.Error()[:200])

	client, err := consulapi.NewClient(consulapi.DefaultConfig())
	require.NoError(t, err)
	kv, err := NewKV(client, []string{"app/"})
	require.NoError(t, err)
	_, err = runActivity[KVState](t, kv, kv.CaptureKV, KVInput{Ops: []runbook.KVOp{{Key: "other/" + huge, Value: "v"}}})
	requireErrType(t, err, ErrInvalid)
	require.Less(t, len(err.Error()), 2000, "a 900 KB key is not echoed in full")
	require.Contains(t, err.Error(), "outside the prefixes")

	tr, _ := newTraffic(t)
	route := testRoute
	route.Name, route.Router = huge, huge
	_, err = runActivity[WeightState](t, tr, tr.CaptureWeights, TrafficInput{Route: route})
	requireErrType(t, err, ErrInvalid)
	require.Less(t, len(err.Error()), 2000, "route and router names are not echoed in full")
}

func TestClip(t *testing.T) {
	require.Equal(t, "abc", clip.Bytes("abc", 3))
	got := clip.Bytes("aé", 2) // 'é' is 2 bytes: cut before it, never inside
	require.Equal(t, "a…(2 more bytes)", got)
}

func TestNotifyDoesNotFollowRedirectsElsewhere(t *testing.T) {
	other, otherHits := countingServer(t, "")
	hook := httptest.NewServer(http.RedirectHandler(other.URL+"/steal", http.StatusTemporaryRedirect))
	defer hook.Close()
	n, err := NewNotifier(map[string]string{"slack": hook.URL + "/hooks/secret"}, nil)
	require.NoError(t, err)
	err = runNotify(n, NotifyInput{Webhook: "slack", Service: "s", Version: "v", Phase: "succeeded"})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "secret")
	require.Zero(t, otherHits.Load(), "the message never left for another host")
}

func TestTrafficRefusesBackendsOutsideTheRoutersAllowlist(t *testing.T) {
	f := &fakeRouter{raw: map[string]int{"stable": 100, "canary": 0}, counters: map[string]router.Counters{}}
	routers := map[string]router.Router{"edge": router.Scope(f, []string{"payments_api"})}
	tr, err := NewTraffic(routers)
	require.NoError(t, err)
	other := testRoute
	other.Backend = "billing_api"
	captured, err := runActivity[WeightState](t, tr, tr.CaptureWeights, TrafficInput{Route: testRoute})
	require.NoError(t, err, "a listed backend works")

	_, err = runActivity[WeightState](t, tr, tr.CaptureWeights, TrafficInput{Route: other})
	requireErrType(t, err, ErrInvalid)
	require.Contains(t, err.Error(), "routers.edge.allowedBackends")
	_, err = runActivity[WeightState](t, tr, tr.SetWeights, SetWeightsInput{TrafficInput: TrafficInput{Route: other},
		Weights: map[string]int{"stable": 0, "canary": 100}, Captured: captured})
	requireErrType(t, err, ErrInvalid)
	require.Zero(t, f.writes, "nothing written")

	// Router checks resolve routes the same way.
	c, err := NewChecks(ChecksConfig{Routers: routers})
	require.NoError(t, err)
	_, err = runActivity[MeasureResult](t, c, c.Measure, MeasureInput{Routes: []runbook.Route{other},
		Checks: []runbook.Check{{Name: "errs", Router: &runbook.RouterCheck{Route: other.Name, Subset: "canary"}}}})
	requireErrType(t, err, ErrInvalid)
}

func TestPrometheusDoesNotFollowRedirectsElsewhere(t *testing.T) {
	other, otherHits := countingServer(t, "")
	prom := httptest.NewServer(http.RedirectHandler(other.URL+"/api/v1/query", http.StatusTemporaryRedirect))
	defer prom.Close()
	c, err := NewChecks(ChecksConfig{Prometheus: map[string]string{"default": prom.URL}})
	require.NoError(t, err)
	res, err := runActivity[MeasureResult](t, c, c.Measure, MeasureInput{Checks: []runbook.Check{
		{Name: "q", Prometheus: &runbook.PrometheusCheck{Query: "up"}},
	}})
	require.NoError(t, err)
	require.Contains(t, res.Measurements[0].Error, "only redirects within the same host")
	require.Nil(t, res.Measurements[0].Value)
	require.Zero(t, otherHits.Load())
}
