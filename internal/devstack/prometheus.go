package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
)

// The stack's monitoring: Prometheus 2.42 and Alertmanager 0.25 (Debian packages
// prometheus and prometheus-alertmanager), each with a private configuration and data
// directory under the stack directory, on free 127.0.0.1 ports.
//
// Prometheus scrapes, every Options.ScrapeInterval (1 s by default, so a test sees a
// change within seconds):
//
//   - job "haproxy": HAProxy's built-in exporter (USE_PROMEX, on its own frontend, see
//     haproxy.cfg.tmpl), haproxy_backend_* / haproxy_server_* by proxy and server;
//   - job "demoapi": both demo API instances, labelled subset="stable" and
//     subset="canary" (the HAProxy server names), so PromQL tells them apart;
//   - job "rollbook-worker": every worker registered with AddWorkerMetricsTarget (file
//     service discovery: <Dir>/prometheus/workers/*.json; Prometheus notices new files at
//     once, no reload);
//   - itself and Alertmanager.
//
// It evaluates every rule file matching <RulesDir>/*.yml and *.yaml (default:
// deploy/monitoring/rules of the module) every Options.EvaluationInterval, and sends alerts
// to the stack's Alertmanager. Alertmanager routes every alert to one receiver: a webhook
// (Options.AlertWebhookURL, bearer token from Options.AlertWebhookTokenFile), with
// resolved notifications, grouped by alertname and service; without a webhook the
// receiver drops them. SetAlertWebhook changes the webhook of a running stack.

// Names of the stack's monitoring processes in the pids file.
const (
	ComponentPrometheus   = "prometheus"
	ComponentAlertmanager = "alertmanager"
)

// Scrape jobs of the stack's Prometheus (the job label).
const (
	JobHAProxy      = "haproxy"
	JobDemoAPI      = "demoapi"
	JobWorker       = "rollbook-worker"
	JobPrometheus   = "prometheus"
	JobAlertmanager = "alertmanager"
)

// Defaults of the monitoring options (tests want alerts within seconds).
const (
	DefaultScrapeInterval     = time.Second
	DefaultEvaluationInterval = time.Second
	DefaultAlertGroupWait     = time.Second
	DefaultAlertGroupInterval = time.Second
	DefaultAlertRepeat        = time.Hour
)

// RulesDirInModule is where the stack's Prometheus finds its rule files by default,
// relative to the module root.
var RulesDirInModule = filepath.Join("deploy", "monitoring", "rules")

// monitoringDefaults fills the monitoring options that are unset.
func (o *Options) monitoringDefaults() {
	if o.ScrapeInterval <= 0 {
		o.ScrapeInterval = DefaultScrapeInterval
	}
	if o.EvaluationInterval <= 0 {
		o.EvaluationInterval = DefaultEvaluationInterval
	}
	if o.AlertGroupWait <= 0 {
		o.AlertGroupWait = DefaultAlertGroupWait
	}
	if o.AlertGroupInterval <= 0 {
		o.AlertGroupInterval = DefaultAlertGroupInterval
	}
	if o.AlertRepeatInterval <= 0 {
		o.AlertRepeatInterval = DefaultAlertRepeat
	}
	if o.RulesDir == "" {
		root := o.ModuleRoot
		if root == "" {
			root, _ = FindModuleRoot() // none: no rule files, the rest works
		}
		if root != "" {
			o.RulesDir = filepath.Join(root, RulesDirInModule)
		}
	}
}

// promDuration writes d the way Prometheus and Alertmanager parse durations (1s, 1500ms).
func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

func (s *Stack) prometheusDir() string   { return filepath.Join(s.Dir, "prometheus") }
func (s *Stack) alertmanagerDir() string { return filepath.Join(s.Dir, "alertmanager") }

// WorkerTargetsDir is where AddWorkerMetricsTarget writes the stack Prometheus's file
// service discovery for job "rollbook-worker".
func (s *Stack) WorkerTargetsDir() string { return filepath.Join(s.prometheusDir(), "workers") }

type scrapeConfig struct {
	JobName        string         `yaml:"job_name"`
	ScrapeInterval string         `yaml:"scrape_interval,omitempty"`
	MetricsPath    string         `yaml:"metrics_path,omitempty"`
	StaticConfigs  []staticConfig `yaml:"static_configs,omitempty"`
	FileSDConfigs  []fileSDConfig `yaml:"file_sd_configs,omitempty"`
}

type staticConfig struct {
	Targets []string          `yaml:"targets" json:"targets"`
	Labels  map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
}

type fileSDConfig struct {
	Files           []string `yaml:"files"`
	RefreshInterval string   `yaml:"refresh_interval,omitempty"`
}

// prometheusConfig is the stack Prometheus's prometheus.yml.
func (s *Stack) prometheusConfig(pt stackPorts) ([]byte, error) {
	var rules []string
	if s.opts.RulesDir != "" {
		rules = []string{filepath.Join(s.opts.RulesDir, "*.yml"), filepath.Join(s.opts.RulesDir, "*.yaml")}
	}
	static := func(job string, cfgs ...staticConfig) scrapeConfig {
		return scrapeConfig{JobName: job, StaticConfigs: cfgs}
	}
	cfg := map[string]any{
		"global": map[string]any{
			"scrape_interval":     promDuration(s.opts.ScrapeInterval),
			"scrape_timeout":      promDuration(s.opts.ScrapeInterval),
			"evaluation_interval": promDuration(s.opts.EvaluationInterval),
			"external_labels":     map[string]string{"stack": "rollbook-dev"},
		},
		"rule_files": rules,
		"alerting": map[string]any{
			"alertmanagers": []map[string]any{{"static_configs": []staticConfig{{Targets: []string{hostPort(pt.Alertmanager)}}}}},
		},
		"scrape_configs": []scrapeConfig{
			static(JobHAProxy, staticConfig{Targets: []string{hostPort(pt.HAProxyMetrics)}}),
			static(JobDemoAPI,
				staticConfig{Targets: []string{hostPort(pt.DemoStable)}, Labels: map[string]string{"subset": StableServer}},
				staticConfig{Targets: []string{hostPort(pt.DemoCanary)}, Labels: map[string]string{"subset": CanaryServer}}),
			{JobName: JobWorker, FileSDConfigs: []fileSDConfig{{
				Files: []string{filepath.Join(s.WorkerTargetsDir(), "*.json")}, RefreshInterval: "5s",
			}}},
			static(JobPrometheus, staticConfig{Targets: []string{hostPort(pt.Prometheus)}}),
			static(JobAlertmanager, staticConfig{Targets: []string{hostPort(pt.Alertmanager)}}),
		},
	}
	return yaml.Marshal(cfg)
}

// startPrometheus writes <Dir>/prometheus/prometheus.yml and runs Prometheus with its TSDB
// in <Dir>/prometheus/data, and waits until it is ready.
func (s *Stack) startPrometheus(ctx context.Context, b binaries, pt stackPorts) error {
	dir := s.prometheusDir()
	if s.opts.Fresh && !s.up {
		_ = os.RemoveAll(filepath.Join(dir, "data"))
	}
	if err := os.MkdirAll(s.WorkerTargetsDir(), 0o755); err != nil {
		return err
	}
	cfg, err := s.prometheusConfig(pt)
	if err != nil {
		return fmt.Errorf("writing the Prometheus configuration: %w", err)
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := writeFileAtomic(cfgPath, cfg, 0o644); err != nil {
		return err
	}
	p, err := s.spawn(spawnSpec{name: ComponentPrometheus, exe: b.prometheus, dir: s.Dir, args: []string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--storage.tsdb.retention.time=2d",
		"--web.listen-address=" + hostPort(pt.Prometheus),
		// POST /-/reload: tests and the alert rules' authors reload rule files in place.
		"--web.enable-lifecycle",
		// A firing alert is sent again every resend delay (default 1 m). The first send
		// right after a start or reload can find no Alertmanager yet (discovery has not
		// synced) and is dropped: a minute of silence is too long for a test or a demo.
		"--rules.alert.resend-delay=" + promDuration(max(s.opts.EvaluationInterval, time.Second)),
		"--log.level=warn",
	}})
	if err != nil {
		return err
	}
	return waitFor(ctx, p, 100*time.Millisecond, func(ctx context.Context) error {
		return httpOK(ctx, s.PrometheusURL+"/-/ready")
	})
}

// alertmanagerConfig is the stack Alertmanager's alertmanager.yml.
func (s *Stack) alertmanagerConfig(webhookURL, tokenFile string) ([]byte, error) {
	receiver := map[string]any{"name": "rollbook"}
	if webhookURL != "" {
		hook := map[string]any{"url": webhookURL, "send_resolved": true}
		if tokenFile != "" {
			hook["http_config"] = map[string]any{
				"authorization": map[string]any{"type": "Bearer", "credentials_file": tokenFile},
			}
		}
		receiver["webhook_configs"] = []any{hook}
	}
	return yaml.Marshal(map[string]any{
		"route": map[string]any{
			"receiver":        "rollbook",
			"group_by":        []string{"alertname", "service"},
			"group_wait":      promDuration(s.opts.AlertGroupWait),
			"group_interval":  promDuration(s.opts.AlertGroupInterval),
			"repeat_interval": promDuration(s.opts.AlertRepeatInterval),
		},
		"receivers": []any{receiver},
	})
}

func (s *Stack) writeAlertmanagerConfig(webhookURL, tokenFile string) (string, error) {
	cfg, err := s.alertmanagerConfig(webhookURL, tokenFile)
	if err != nil {
		return "", fmt.Errorf("writing the Alertmanager configuration: %w", err)
	}
	path := filepath.Join(s.alertmanagerDir(), "alertmanager.yml")
	return path, writeFileAtomic(path, cfg, 0o644)
}

// startAlertmanager writes <Dir>/alertmanager/alertmanager.yml and runs Alertmanager alone
// (no cluster gossip) with its silences and notification log in <Dir>/alertmanager/data.
func (s *Stack) startAlertmanager(ctx context.Context, b binaries, pt stackPorts) error {
	dir := s.alertmanagerDir()
	if s.opts.Fresh && !s.up {
		_ = os.RemoveAll(filepath.Join(dir, "data"))
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return err
	}
	cfgPath, err := s.writeAlertmanagerConfig(s.opts.AlertWebhookURL, s.opts.AlertWebhookTokenFile)
	if err != nil {
		return err
	}
	p, err := s.spawn(spawnSpec{name: ComponentAlertmanager, exe: b.alertmanager, dir: s.Dir, args: []string{
		"--config.file=" + cfgPath,
		"--storage.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + hostPort(pt.Alertmanager),
		"--cluster.listen-address=", // empty: no gossip port, a single instance
		"--log.level=warn",
	}})
	if err != nil {
		return err
	}
	return waitFor(ctx, p, 100*time.Millisecond, func(ctx context.Context) error {
		return httpOK(ctx, s.AlertmanagerURL+"/-/ready")
	})
}

// SetAlertWebhook points the running stack's Alertmanager at another webhook (empty: drop
// alerts), with the bearer token read from tokenFile (empty: none), and reloads it. The
// alert receiver usually starts after the stack, on a port it learns only then.
func (s *Stack) SetAlertWebhook(ctx context.Context, webhookURL, tokenFile string) error {
	if webhookURL != "" && !strings.HasPrefix(webhookURL, "http://") && !strings.HasPrefix(webhookURL, "https://") {
		return fmt.Errorf("devstack: alert webhook %q: want an http:// or https:// URL", webhookURL)
	}
	if _, err := s.writeAlertmanagerConfig(webhookURL, tokenFile); err != nil {
		return err
	}
	s.opts.AlertWebhookURL, s.opts.AlertWebhookTokenFile = webhookURL, tokenFile
	if err := postReload(ctx, s.AlertmanagerURL); err != nil {
		return fmt.Errorf("devstack: reloading Alertmanager with webhook %s: %w", webhookURL, err)
	}
	return nil
}

// ReloadPrometheus makes the stack's Prometheus read its configuration and rule files
// again (after a rule file under RulesDir changed). A rule file that does not parse is an
// error naming it; Prometheus then keeps the rules it had.
func (s *Stack) ReloadPrometheus(ctx context.Context) error {
	if err := postReload(ctx, s.PrometheusURL); err != nil {
		return fmt.Errorf("devstack: reloading Prometheus: %w", err)
	}
	return nil
}

func postReload(ctx context.Context, base string) error {
	if base == "" {
		return errors.New("no address")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/-/reload", nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body := make([]byte, 2048)
		n, _ := resp.Body.Read(body)
		return fmt.Errorf("POST %s/-/reload: %s: %s", base, resp.Status, strings.TrimSpace(string(body[:n])))
	}
	return nil
}

// AddWorkerMetricsTarget makes the stack's Prometheus scrape a rollbook worker's /metrics
// at hostPort (job "rollbook-worker", label instance=hostPort, worker=name). name is a
// plain word naming the worker ([A-Za-z0-9_-]); adding it again replaces the target.
// Prometheus notices the file within seconds, without a reload.
func (s *Stack) AddWorkerMetricsTarget(name, hostPort string) error {
	path, err := s.workerTargetFile(name)
	if err != nil {
		return err
	}
	data, err := json.Marshal([]staticConfig{{Targets: []string{hostPort}, Labels: map[string]string{"worker": name}}})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.WorkerTargetsDir(), 0o755); err != nil {
		return err
	}
	return writeFileAtomic(path, data, 0o644)
}

// RemoveWorkerMetricsTarget stops the scrape of a worker added by AddWorkerMetricsTarget.
func (s *Stack) RemoveWorkerMetricsTarget(name string) error {
	path, err := s.workerTargetFile(name)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (s *Stack) workerTargetFile(name string) (string, error) {
	if name == "" || strings.IndexFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) >= 0 {
		return "", fmt.Errorf("devstack: worker name %q: want letters, digits, - and _", name)
	}
	return filepath.Join(s.WorkerTargetsDir(), name+".json"), nil
}
