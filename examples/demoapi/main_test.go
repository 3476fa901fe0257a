package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func do(t *testing.T, h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, target, nil)
	} else {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestPaymentsReportsVersion(t *testing.T) {
	h := newServer("v2", "canary").routes()
	w := do(t, h, "GET", "/api/payments", "")
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	var got struct{ Version, Instance string }
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Version != "v2" || got.Instance != "canary" || w.Header().Get("X-Rollbook-Version") != "v2" {
		t.Fatalf("got %+v, header %q", got, w.Header().Get("X-Rollbook-Version"))
	}
}

func TestBadModeFailsExactlyTheRate(t *testing.T) {
	h := newServer("v2", "canary").routes()
	if w := do(t, h, "POST", "/admin/bad", `{"errorRate":0.25}`); w.Code != 200 {
		t.Fatalf("admin/bad: %d %s", w.Code, w.Body)
	}
	failed := 0
	for range 100 {
		if do(t, h, "GET", "/api/payments", "").Code == 500 {
			failed++
		}
	}
	if failed != 25 {
		t.Fatalf("failed %d of 100, want 25", failed)
	}
	if w := do(t, h, "GET", "/healthz", ""); w.Code != 200 {
		t.Fatalf("healthz in bad mode: %d", w.Code)
	}
	do(t, h, "POST", "/admin/good", "")
	for range 10 {
		if c := do(t, h, "GET", "/api/payments", "").Code; c != 200 {
			t.Fatalf("after good: %d", c)
		}
	}
}

func TestBadModeQueryParamsAndLatency(t *testing.T) {
	h := newServer("v1", "stable").routes()
	if w := do(t, h, "POST", "/admin/bad?latencyMs=30", ""); w.Code != 200 {
		t.Fatalf("admin/bad: %d %s", w.Code, w.Body)
	}
	start := time.Now()
	if c := do(t, h, "GET", "/api/payments", "").Code; c != 200 {
		t.Fatalf("latency only must not fail, got %d", c)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("not delayed: %v", d)
	}
	if w := do(t, h, "POST", "/admin/bad", ""); w.Code != 200 {
		t.Fatal(w.Code)
	}
	if c := do(t, h, "GET", "/api/payments", "").Code; c != 500 {
		t.Fatalf("bad with no parameters fails every request, got %d", c)
	}
}

func TestBadModeRejectsNonsense(t *testing.T) {
	h := newServer("v1", "").routes()
	for _, body := range []string{`{"errorRate":2}`, `{"latencyMs":-1}`, `{"nope":1}`, `{`} {
		if w := do(t, h, "POST", "/admin/bad", body); w.Code != 400 {
			t.Errorf("%s: status %d, want 400", body, w.Code)
		}
	}
	if w := do(t, h, "POST", "/admin/bad?errorRate=x", ""); w.Code != 400 {
		t.Errorf("errorRate=x: %d", w.Code)
	}
}

func TestMetrics(t *testing.T) {
	h := newServer("v1", "stable").routes()
	do(t, h, "GET", "/api/payments", "")
	w := do(t, h, "GET", "/metrics", "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `demoapi_http_requests_total{code="200",path="/api/payments"} 1`) {
		t.Fatalf("metrics: %d\n%s", w.Code, w.Body)
	}
}
