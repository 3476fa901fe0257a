package activities

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/internal/router"
	"github.com/rollbook/rollbook/runbook"
)

func TestMeasureHTTP(t *testing.T) {
	var flaky atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(http.StatusOK)
		case "/flaky":
			if flaky.Add(1)%2 == 0 {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusOK)
		case "/slow":
			time.Sleep(30 * time.Millisecond)
		}
	}))
	defer srv.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()

	c, err := NewChecks(ChecksConfig{Endpoints: map[string]string{"api": srv.URL + "/"}, AllowedHosts: []string{"127.0.0.1"}})
	require.NoError(t, err)
	in := MeasureInput{Round: 1, Checks: []runbook.Check{
		{Name: "ok", HTTP: &runbook.HTTPCheck{Endpoint: "api", Path: "/ok", Samples: 3}},
		{Name: "flaky", HTTP: &runbook.HTTPCheck{URL: srv.URL + "/flaky", Samples: 4}},
		{Name: "slow", HTTP: &runbook.HTTPCheck{URL: srv.URL + "/slow", MaxLatency: runbook.Duration(5 * time.Millisecond)}},
		{Name: "down", HTTP: &runbook.HTTPCheck{URL: deadURL + "/x", Timeout: runbook.Duration(time.Second)}},
		{Name: "teapot", HTTP: &runbook.HTTPCheck{URL: srv.URL + "/ok", ExpectStatus: 418}},
	}}
	res, err := runActivity[MeasureResult](t, c, c.Measure, in)
	require.NoError(t, err)
	m := res.Measurements
	require.Len(t, m, 5)
	for i, name := range []string{"ok", "flaky", "slow", "down", "teapot"} {
		require.Equal(t, name, m[i].Check, "check order kept")
		require.Equal(t, runbook.CheckHTTP, m[i].Kind)
		require.False(t, m[i].At.IsZero())
	}
	require.Equal(t, 200, m[0].Status)
	require.Zero(t, m[0].Failures)
	require.Empty(t, m[0].Error)

	require.Equal(t, 500, m[1].Status, "a failing sample's status is reported")
	require.Equal(t, 2, m[1].Failures)

	require.Equal(t, 1, m[2].Failures, "slower than MaxLatency")
	require.GreaterOrEqual(t, m[2].LatencyMs, 30.0)

	require.NotEmpty(t, m[3].Error, "a transport error is a measurement error, not an activity error")
	require.Equal(t, 1, m[3].Failures)

	require.Equal(t, 1, m[4].Failures)
}

func TestMeasurePrometheus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, r.ParseForm())
		w.Header().Set("Content-Type", "application/json")
		switch r.Form.Get("query") {
		case "scalar(up)":
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"0.25"]}}`)
		case "up":
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"api"},"value":[1700000000,"1"]}]}}`)
		case "many":
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}]}}`)
		case "nan":
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"NaN"]}}`)
		case "none":
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
		case "inf":
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"+Inf"]}}`)
		default:
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"parse error"}`)
		}
	}))
	defer srv.Close()
	c, err := NewChecks(ChecksConfig{Prometheus: map[string]string{"default": srv.URL}})
	require.NoError(t, err)
	q := func(name, query string) runbook.Check {
		return runbook.Check{Name: name, Prometheus: &runbook.PrometheusCheck{Query: query}}
	}
	res, err := runActivity[MeasureResult](t, c, c.Measure, MeasureInput{Checks: []runbook.Check{
		q("scalar", "scalar(up)"), q("vector", "up"), q("many", "many"), q("nan", "nan"), q("bad", "up{"), q("none", "none"), q("inf", "inf"),
	}})
	require.NoError(t, err)
	m := res.Measurements
	require.NotNil(t, m[0].Value)
	require.Equal(t, 0.25, *m[0].Value)
	require.NotNil(t, m[1].Value)
	require.Equal(t, 1.0, *m[1].Value)
	require.Contains(t, m[2].Error, "2 samples")
	require.Nil(t, m[2].Value)
	// No sample and NaN are no data (inconclusive), not a failed measurement.
	require.Empty(t, m[3].Error)
	require.True(t, m[3].NoData)
	require.Contains(t, m[3].Detail, "NaN")
	require.NotEmpty(t, m[4].Error)
	require.Empty(t, m[5].Error)
	require.True(t, m[5].NoData)
	require.Contains(t, m[5].Detail, "0 samples")
	require.Nil(t, m[5].Value)
	require.Contains(t, m[6].Error, "+Inf")
	require.False(t, m[6].NoData)

	_, err = runActivity[MeasureResult](t, c, c.Measure, MeasureInput{Checks: []runbook.Check{
		{Name: "other", Prometheus: &runbook.PrometheusCheck{Server: "other", Query: "up"}},
	}})
	requireErrType(t, err, ErrInvalid)
}

func TestMeasureRouterCounters(t *testing.T) {
	f := &fakeRouter{counters: map[string]router.Counters{
		"stable": {Requests: 1000, Errors5xx: 2, ResponseMs: 12, Status: "UP"},
		"canary": {Requests: 100, Errors5xx: 1, ResponseMs: 15, Status: "UP"},
	}}
	c, err := NewChecks(ChecksConfig{Routers: map[string]router.Router{"edge": f}})
	require.NoError(t, err)
	checks := []runbook.Check{
		{Name: "canary-errors", Router: &runbook.RouterCheck{Route: "payments", Subset: "canary", MaxErrorRate: 0.05}},
		{Name: "compare", Compare: &runbook.CompareCheck{Route: "payments"}},
	}
	in := MeasureInput{Round: 1, Checks: checks, Routes: []runbook.Route{testRoute}}
	first, err := runActivity[MeasureResult](t, c, c.Measure, in)
	require.NoError(t, err)
	r := first.Measurements[0]
	require.True(t, r.BaselineRound)
	require.Contains(t, r.Detail, "baseline round")
	require.EqualValues(t, 100, r.Requests)
	require.EqualValues(t, 1, r.Errors)

	f.counters["stable"] = router.Counters{Requests: 1500, Errors5xx: 2}
	f.counters["canary"] = router.Counters{Requests: 150, Errors5xx: 11}
	in.Round, in.Previous = 2, first.Measurements
	second, err := runActivity[MeasureResult](t, c, c.Measure, in)
	require.NoError(t, err)
	r = second.Measurements[0]
	require.False(t, r.BaselineRound)
	require.EqualValues(t, 50, r.Requests)
	require.EqualValues(t, 10, r.Errors)
	cmp := second.Measurements[1]
	require.Equal(t, &SideSample{Requests: 500, Errors: 0}, cmp.Baseline)
	require.Equal(t, &SideSample{Requests: 50, Errors: 10}, cmp.Canary)

	// Counters going down (router restarted): a new baseline.
	f.counters["canary"] = router.Counters{Requests: 3, Errors5xx: 0}
	in.Round, in.Previous = 3, second.Measurements
	third, err := runActivity[MeasureResult](t, c, c.Measure, in)
	require.NoError(t, err)
	require.True(t, third.Measurements[0].BaselineRound)
	require.Contains(t, third.Measurements[0].Detail, "went down")

	// A router error is a measurement error.
	f.err = router.ErrUnsupported
	res, err := runActivity[MeasureResult](t, c, c.Measure, in)
	require.NoError(t, err)
	require.NotEmpty(t, res.Measurements[0].Error)

	// Unknown route or subset: the activity cannot run.
	_, err = runActivity[MeasureResult](t, c, c.Measure, MeasureInput{Checks: checks})
	requireErrType(t, err, ErrInvalid)
	bad := []runbook.Check{{Name: "x", Router: &runbook.RouterCheck{Route: "payments", Subset: "blue"}}}
	_, err = runActivity[MeasureResult](t, c, c.Measure, MeasureInput{Checks: bad, Routes: []runbook.Route{testRoute}})
	requireErrType(t, err, ErrInvalid)
}

// {{version}} in a query is the version being deployed; a version that does
// not have the version syntax never reaches Prometheus.
func TestMeasurePrometheusVersionPlaceholder(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, r.ParseForm())
		got = append(got, r.Form.Get("query"))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"0"]}}`)
	}))
	defer srv.Close()
	c, err := NewChecks(ChecksConfig{Prometheus: map[string]string{"default": srv.URL}})
	require.NoError(t, err)
	check := runbook.Check{Name: "ratio", Prometheus: &runbook.PrometheusCheck{Query: `up{version="{{version}}"}`}}
	in := MeasureInput{Checks: []runbook.Check{check}, Version: "v2.1+build-7"}
	res, err := runActivity[MeasureResult](t, c, c.Measure, in)
	require.NoError(t, err)
	require.Empty(t, res.Measurements[0].Error)
	require.Equal(t, []string{`up{version="v2.1+build-7"}`}, got)
	require.Equal(t, `up{version="{{version}}"}`, in.Checks[0].Prometheus.Query, "the input is not changed")

	in.Version = `v2"} or up{job="x`
	_, err = runActivity[MeasureResult](t, c, c.Measure, in)
	requireErrType(t, err, ErrInvalid)
	require.Len(t, got, 1, "nothing was queried")
}
