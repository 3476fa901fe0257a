// Command demoapi is the tiny HTTP service that rollbook's dev stack, demo, tests and
// benchmarks deploy: a pretend "payments-api" that HAProxy fronts in two versions
// (stable and canary).
//
// It can be told to misbehave, so that a bad release is something real to detect:
//
//	POST /admin/bad  {"errorRate":0.5,"latencyMs":300}   (or ?errorRate=0.5&latencyMs=300)
//	POST /admin/good                                      back to normal
//	GET  /admin/state                                     the current mode
//
// In bad mode, requests to /api/... are delayed by latencyMs and a fraction errorRate of them
// answers 500. The failures are spread evenly (exactly errorRate of every run of requests,
// not random), which keeps tests and demos repeatable. /healthz is never affected, so HAProxy
// keeps the server in rotation and only rollbook's verification can notice the bad release.
//
// Endpoints: GET /healthz, GET|POST /api/payments, /admin/*, GET /metrics (Prometheus).
// Every response carries the header X-Rollbook-Version.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	version := flag.String("version", "v1", "version this instance reports")
	name := flag.String("name", "", "instance name reported in responses (e.g. stable, canary)")
	flag.Parse()

	logger := log.New(os.Stderr, "demoapi: ", log.LstdFlags|log.Lmicroseconds)
	if err := run(*listen, *version, *name, logger); err != nil {
		logger.Fatal(err)
	}
}

func run(listen, version, name string, logger *log.Logger) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           newServer(version, name).routes(),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Printf("version %s (%s) listening on http://%s", version, name, ln.Addr())

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Printf("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// mode is the current misbehaviour.
type mode struct {
	Bad       bool    `json:"bad"`
	ErrorRate float64 `json:"errorRate"`
	LatencyMs int     `json:"latencyMs"`
}

type server struct {
	version string
	name    string

	mu   sync.Mutex
	mode mode
	seen uint64 // requests to /api since bad mode was last set

	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newServer(version, name string) *server {
	s := &server{version: version, name: name, reg: prometheus.NewRegistry()}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "demoapi_http_requests_total",
		Help: "HTTP requests served, by path and status code.",
	}, []string{"path", "code"})
	s.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "demoapi_http_request_duration_seconds",
		Help:    "HTTP request latency, by path.",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"path"})
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
	mux.HandleFunc("GET /api/payments", s.instrument("/api/payments", s.listPayments))
	mux.HandleFunc("POST /api/payments", s.instrument("/api/payments", s.createPayment))
	mux.HandleFunc("POST /admin/bad", s.setBad)
	mux.HandleFunc("POST /admin/good", s.setGood)
	mux.HandleFunc("GET /admin/state", s.state)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Rollbook-Version", s.version)
		mux.ServeHTTP(w, r)
	})
}

// instrument applies the bad mode and records metrics for an /api handler.
func (s *server) instrument(path string, h func(http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		fail, delay := s.decide()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
			}
		}
		if fail {
			writeJSON(rec, http.StatusInternalServerError, map[string]any{
				"error":   "injected failure (bad mode)",
				"version": s.version,
			})
		} else {
			h(rec, r)
		}
		s.requests.WithLabelValues(path, strconv.Itoa(rec.code)).Inc()
		s.duration.WithLabelValues(path).Observe(time.Since(start).Seconds())
	}
}

// decide says whether this request fails and how long it is delayed. Failures are spread
// evenly: after n requests exactly floor(n*errorRate) have failed.
func (s *server) decide() (fail bool, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.mode.Bad {
		return false, 0
	}
	n := s.seen
	s.seen++
	r := s.mode.ErrorRate
	fail = math.Floor(float64(n+1)*r) > math.Floor(float64(n)*r)
	return fail, time.Duration(s.mode.LatencyMs) * time.Millisecond
}

func (s *server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "version": s.version})
}

type payment struct {
	ID       string `json:"id"`
	Amount   int    `json:"amountCents"`
	Currency string `json:"currency"`
	Status   string `json:"status"`
}

func (s *server) listPayments(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"service":  "payments-api",
		"version":  s.version,
		"instance": s.name,
		"payments": []payment{
			{ID: "pay_1001", Amount: 1250, Currency: "EUR", Status: "settled"},
			{ID: "pay_1002", Amount: 990, Currency: "USD", Status: "pending"},
		},
	})
}

func (s *server) createPayment(w http.ResponseWriter, r *http.Request) {
	var p payment
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&p); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "bad JSON: " + err.Error()})
		return
	}
	if p.ID == "" {
		p.ID = fmt.Sprintf("pay_%d", time.Now().UnixNano())
	}
	p.Status = "pending"
	writeJSON(w, http.StatusCreated, map[string]any{"version": s.version, "payment": p})
}

func (s *server) setBad(w http.ResponseWriter, r *http.Request) {
	m := mode{Bad: true, ErrorRate: 1}
	var body struct {
		ErrorRate *float64 `json:"errorRate"`
		LatencyMs *int     `json:"latencyMs"`
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
	if m.ErrorRate < 0 || m.ErrorRate > 1 || math.IsNaN(m.ErrorRate) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "errorRate must be between 0 and 1"})
		return
	}
	if m.LatencyMs < 0 || m.LatencyMs > 60_000 {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "latencyMs must be between 0 and 60000"})
		return
	}
	s.mu.Lock()
	s.mode, s.seen = m, 0
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, m)
}

func (s *server) setGood(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	s.mode, s.seen = mode{}, 0
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
