package devstack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// TestMonitoring starts one stack and checks its monitoring for real: Prometheus scrapes
// HAProxy's exporter, both demo API instances (told apart by the subset label) and a worker
// registered afterwards; a rule from the caller's rules directory fires, Prometheus sends it
// to the stack's Alertmanager, and Alertmanager calls the webhook set on the running stack
// with the bearer token from the file.
func TestMonitoring(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	rules := t.TempDir()
	if err := os.WriteFile(filepath.Join(rules, "test.yml"), []byte(`groups:
  - name: devstack-test
    rules:
      - alert: DevstackTestAlert
        expr: vector(1)
        labels: {service: payments-api}
        annotations: {summary: "always firing"}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Start(ctx, Options{Dir: t.TempDir(), Log: testLog{t}, RemoveOnStop: true, RulesDir: rules})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
	env, err := ReadEnv(filepath.Join(s.Dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{EnvPrometheusURL, EnvAlertmanagerURL, EnvHAProxyMetricsURL} {
		if env[k] == "" || env[k] != s.Env()[k] {
			t.Errorf("%s: file has %q, Env() has %q", k, env[k], s.Env()[k])
		}
	}
	for _, name := range []string{ComponentPrometheus, ComponentAlertmanager} {
		if s.PIDs()[name] == 0 {
			t.Errorf("no %s in the stack's processes %v", name, s.PIDs())
		}
	}

	// A worker's /metrics, registered after the start.
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "devstack_test_worker_up"}))
	worker := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer worker.Close()
	if err := s.AddWorkerMetricsTarget("test-worker", strings.TrimPrefix(worker.URL, "http://")); err != nil {
		t.Fatal(err)
	}
	if err := s.AddWorkerMetricsTarget("../x", "127.0.0.1:1"); err == nil {
		t.Error("AddWorkerMetricsTarget accepted the name ../x")
	}

	t.Run("scrapes", func(t *testing.T) {
		want := map[string]string{
			`up{job="haproxy"}`:                                  "1",
			`up{job="demoapi",subset="stable"}`:                  "1",
			`up{job="demoapi",subset="canary"}`:                  "1",
			`up{job="rollbook-worker",worker="test-worker"}`:     "1",
			`count(haproxy_server_weight{proxy="payments_api"})`: "2",
		}
		deadline := time.Now().Add(30 * time.Second)
		for q, v := range want {
			for {
				got, err := promQuery(ctx, s.PrometheusURL, q)
				if err == nil && got == v {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s = %q (%v), want %s", q, got, err, v)
				}
				time.Sleep(250 * time.Millisecond)
			}
		}
	})

	t.Run("alert reaches the webhook", func(t *testing.T) {
		tokenFile := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var auth []string
		got := make(chan string, 16)
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			auth = append(auth, r.Header.Get("Authorization"))
			mu.Unlock()
			select {
			case got <- string(body):
			default:
			}
		}))
		defer hook.Close()
		if err := s.SetAlertWebhook(ctx, "ftp://x", ""); err == nil {
			t.Error("SetAlertWebhook accepted ftp://x")
		}
		if err := s.SetAlertWebhook(ctx, hook.URL+"/alerts", tokenFile); err != nil {
			t.Fatal(err)
		}
		select {
		case body := <-got:
			var msg struct {
				Status string `json:"status"`
				Alerts []struct {
					Labels map[string]string `json:"labels"`
				} `json:"alerts"`
			}
			if err := json.Unmarshal([]byte(body), &msg); err != nil {
				t.Fatalf("webhook body %q: %v", body, err)
			}
			if msg.Status != "firing" || len(msg.Alerts) != 1 || msg.Alerts[0].Labels["alertname"] != "DevstackTestAlert" ||
				msg.Alerts[0].Labels["service"] != "payments-api" {
				t.Errorf("webhook got %s", body)
			}
		case <-time.After(45 * time.Second):
			t.Fatal("no alert reached the webhook within 45 s")
		}
		mu.Lock()
		defer mu.Unlock()
		if auth[0] != "Bearer s3cret" {
			t.Errorf("Authorization %q, want the token from the file", auth[0])
		}
	})
}

// promQuery runs an instant query and returns the value of its only sample.
func promQuery(ctx context.Context, base, q string) (string, error) {
	body, err := httpGet(ctx, base+"/api/v1/query?query="+url.QueryEscape(q))
	if err != nil {
		return "", err
	}
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return "", err
	}
	if len(r.Data.Result) != 1 {
		return "", fmt.Errorf("want 1 sample, got %d", len(r.Data.Result))
	}
	v, _ := r.Data.Result[0].Value[1].(string)
	return v, nil
}
