package main

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Where a failing write fails (mode.WriteFailure).
const (
	failEarly        = ""              // before the handler: nothing stored
	failBeforeCommit = "before-commit" // written, rolled back: nothing stored
	failAfterCommit  = "after-commit"  // committed, then a 500: stored
	failBoth         = "both"          // alternately before-commit and after-commit
)

// mode is the current misbehaviour.
type mode struct {
	Bad          bool    `json:"bad"`
	ErrorRate    float64 `json:"errorRate"`
	LatencyMs    int     `json:"latencyMs"`
	WriteFailure string  `json:"writeFailure,omitempty"`
}

type server struct {
	version string
	name    string
	db      *pgxpool.Pool
	// paymentEvents: this version also records each payment it creates in payment_events
	// (chosen at release time, -payment-events).
	paymentEvents bool

	mu       sync.Mutex
	mode     mode
	seen     uint64 // requests to /api since bad mode was last set
	failures uint64 // failed writes since bad mode was last set (failBoth alternates on it)

	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newServer(version, name string, db *pgxpool.Pool) *server {
	s := &server{version: version, name: name, db: db, reg: prometheus.NewRegistry()}
	// Every series carries the version it was served by, so that a query can tell v2 from
	// v3 on one instance across a release; which instance (stable or canary) is the
	// scraper's business (the dev stack's Prometheus adds subset="stable"/"canary").
	// route is the handler's pattern, never the raw path: ids would make a series each.
	byVersion := prometheus.Labels{"version": version}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "demoapi_http_requests_total",
		Help:        "HTTP requests to /api served, by method, route and status code.",
		ConstLabels: byVersion,
	}, []string{"method", "route", "code"})
	s.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:        "demoapi_http_request_duration_seconds",
		Help:        "Latency of HTTP requests to /api, injected delays included, by method, route and status code.",
		ConstLabels: byVersion,
		Buckets:     []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"method", "route", "code"})
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "demoapi_build_info",
		Help: "Always 1; labels say which version and instance this is.",
	}, []string{"version", "instance"})
	info.WithLabelValues(version, name).Set(1)
	s.reg.MustRegister(s.requests, s.duration, info)
	return s
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /api/payments", s.instrument("/api/payments", false, s.listPayments))
	mux.HandleFunc("GET /api/payments/{id}", s.instrument("/api/payments/{id}", false, s.getPayment))
	mux.HandleFunc("POST /api/payments", s.instrument("/api/payments", true, s.createPayment))
	mux.HandleFunc("POST /admin/bad", s.setBad)
	mux.HandleFunc("POST /admin/good", s.setGood)
	mux.HandleFunc("GET /admin/state", s.state)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Rollbook-Version", s.version)
		mux.ServeHTTP(w, r)
	})
}

// apiHandler serves an /api request; failAt is where a write must fail ("" when it must not,
// see decide).
type apiHandler func(w http.ResponseWriter, r *http.Request, failAt string)

// noFail marks a request that must succeed.
const noFail = "none"

// instrument applies the bad mode and records metrics for an /api handler.
func (s *server) instrument(path string, write bool, h apiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		failAt, delay := s.decide(write)
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
			}
		}
		if failAt == failEarly {
			writeJSON(rec, http.StatusInternalServerError, map[string]any{
				"error":   "injected failure (bad mode)",
				"version": s.version,
			})
		} else {
			h(rec, r, failAt)
		}
		code := strconv.Itoa(rec.code)
		s.requests.WithLabelValues(r.Method, path, code).Inc()
		s.duration.WithLabelValues(r.Method, path, code).Observe(time.Since(start).Seconds())
	}
}

// decide says whether and where this request fails (noFail, failEarly, failBeforeCommit or
// failAfterCommit) and how long it is delayed. Failures are spread evenly: after n requests
// exactly floor(n*errorRate) have failed. Reads fail early whatever writeFailure says.
func (s *server) decide(write bool) (failAt string, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.mode.Bad {
		return noFail, 0
	}
	n := s.seen
	s.seen++
	r := s.mode.ErrorRate
	delay = time.Duration(s.mode.LatencyMs) * time.Millisecond
	if math.Floor(float64(n+1)*r) == math.Floor(float64(n)*r) {
		return noFail, delay
	}
	if !write {
		return failEarly, delay
	}
	failAt = s.mode.WriteFailure
	if failAt == failBoth {
		failAt = failBeforeCommit
		if s.failures%2 == 1 {
			failAt = failAfterCommit
		}
	}
	s.failures++
	return failAt, delay
}

func (s *server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "version": s.version})
}

func (s *server) setBad(w http.ResponseWriter, r *http.Request) {
	m := mode{Bad: true, ErrorRate: 1}
	var body struct {
		ErrorRate    *float64 `json:"errorRate"`
		LatencyMs    *int     `json:"latencyMs"`
		WriteFailure *string  `json:"writeFailure"`
	}
	if r.ContentLength != 0 {
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<12))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil && !errors.Is(err, io.EOF) {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "bad JSON: " + err.Error()})
			return
		}
	}
	q := r.URL.Query()
	if v := q.Get("errorRate"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "errorRate: " + err.Error()})
			return
		}
		body.ErrorRate = &f
	}
	if v := q.Get("latencyMs"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "latencyMs: " + err.Error()})
			return
		}
		body.LatencyMs = &n
	}
	if q.Has("writeFailure") {
		v := q.Get("writeFailure")
		body.WriteFailure = &v
	}
	// Only latency given: slow but no errors. Nothing given: every request fails.
	if body.LatencyMs != nil && body.ErrorRate == nil {
		m.ErrorRate = 0
	}
	if body.ErrorRate != nil {
		m.ErrorRate = *body.ErrorRate
	}
	if body.LatencyMs != nil {
		m.LatencyMs = *body.LatencyMs
	}
	if body.WriteFailure != nil {
		m.WriteFailure = *body.WriteFailure
	}
	if err := m.check(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
		return
	}
	s.mu.Lock()
	s.mode, s.seen, s.failures = m, 0, 0
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, m)
}

// check refuses a mode the server cannot apply.
func (m mode) check() error {
	if m.ErrorRate < 0 || m.ErrorRate > 1 || math.IsNaN(m.ErrorRate) {
		return errors.New("errorRate must be between 0 and 1")
	}
	if m.LatencyMs < 0 || m.LatencyMs > 60_000 {
		return errors.New("latencyMs must be between 0 and 60000")
	}
	switch m.WriteFailure {
	case failEarly, failBeforeCommit, failAfterCommit, failBoth:
	default:
		return errors.New("writeFailure " + strconv.Quote(m.WriteFailure) + ` is not one of "", "before-commit", "after-commit", "both"`)
	}
	return nil
}

// setMode sets the misbehaviour a version starts with (its flags, chosen at release time).
func (s *server) setMode(m mode) {
	s.mu.Lock()
	s.mode, s.seen, s.failures = m, 0, 0
	s.mu.Unlock()
}

func (s *server) setGood(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	s.mode, s.seen, s.failures = mode{}, 0, 0
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, mode{})
}

func (s *server) state(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	m := s.mode
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"version": s.version, "instance": s.name, "mode": m})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}
