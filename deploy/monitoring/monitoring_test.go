// Package monitoring holds the test of the shipped Prometheus rules
// (rules/) and Grafana dashboard (grafana/): the rules parse with
// Prometheus's own rule parser, and every metric name the rules and the
// dashboard use is one the rollbook worker or the demo API really exports.
// A renamed metric otherwise leaves an alert that can never fire and a
// dashboard panel that stays empty, silently.
package monitoring

import (
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	promql "github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.uber.org/zap"

	"github.com/rollbook/rollbook/internal/worker"
)

const repoRoot = "../.."

// synthetic are the series Prometheus makes itself rather than scrapes.
var synthetic = map[string]bool{"up": true, "ALERTS": true, "ALERTS_FOR_STATE": true}

// use is one place a metric name is used.
type use struct{ name, where string }

func TestRulesAndDashboardUseExportedMetrics(t *testing.T) {
	files, err := filepath.Glob("rules/*.yml")
	require.NoError(t, err)
	require.NotEmpty(t, files, "no rule files under deploy/monitoring/rules")
	uses, recorded := ruleUses(t, files)
	uses = append(uses, dashboardUses(t, "grafana/rollbook.json")...)

	exported := workerExports(t)
	for n := range demoAPIExports(t) {
		exported[n] = true
	}
	// The worker's own metrics and the demo's must both be known, or the
	// check below passes for the wrong reason.
	for _, n := range []string{"rollbook_deployments_total", "rollbook_step_duration_seconds_bucket", "demoapi_http_requests_total", "demoapi_http_request_duration_seconds_bucket"} {
		require.True(t, exported[n], "%s is not among the exported names %v", n, sortedKeys(exported))
	}
	assert.Empty(t, unknown(uses, exported, recorded), "metric names nobody exports")

	names := map[string]bool{}
	for _, u := range uses {
		names[u.name] = true
	}
	t.Logf("%d uses of %d metric names checked against %d exported names", len(uses), len(names), len(exported))
}

// TestUnknownMetricIsCaught proves the check above can fail: a rule naming a
// metric nobody exports (a typo) is reported.
func TestUnknownMetricIsCaught(t *testing.T) {
	p := filepath.Join(t.TempDir(), "typo.rules.yml")
	require.NoError(t, os.WriteFile(p, []byte(`groups:
  - name: typo
    rules:
      - record: job:ok:rate5m
        expr: sum(rate(rollbook_deployments_total[5m]))
      - alert: Typo
        expr: job:ok:rate5m > 0 and rate(rollbook_deploymens_total[5m]) > 0
`), 0o644))
	uses, recorded := ruleUses(t, []string{p})
	exported := workerExports(t)
	got := unknown(uses, exported, recorded)
	require.Len(t, got, 1)
	assert.Contains(t, got[0], "rollbook_deploymens_total")
	assert.Contains(t, got[0], "alert Typo")
}

// TestAbortingAlertsAreOnlyAboutTheService: the `service` label makes
// Alertmanager's rollbook route abort that service's running deployment, so
// rules on rollbook's own metrics (about earlier deployments) must not carry
// it, and every alert has a summary (the abort reason).
func TestAbortingAlertsAreOnlyAboutTheService(t *testing.T) {
	files, err := filepath.Glob("rules/*.yml")
	require.NoError(t, err)
	for _, f := range files {
		groups, errs := rulefmt.ParseFile(f)
		require.Empty(t, errs, f)
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				if r.Alert.Value == "" {
					continue
				}
				assert.NotEmpty(t, r.Annotations["summary"], "%s: alert %s has no summary annotation", f, r.Alert.Value)
				if strings.Contains(r.Expr.Value, "rollbook_") {
					assert.NotContains(t, r.Labels, "service", "%s: alert %s is about rollbook itself and must not carry the service label", f, r.Alert.Value)
				}
			}
		}
	}
}

// ruleUses parses rule files with Prometheus's rule parser (which also
// parses each expression) and returns the metric names their expressions
// use and the names their recording rules define.
func ruleUses(t *testing.T, files []string) ([]use, map[string]bool) {
	t.Helper()
	var uses []use
	recorded := map[string]bool{}
	for _, f := range files {
		groups, errs := rulefmt.ParseFile(f)
		require.Empty(t, errs, "%s does not parse as Prometheus rules", f)
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				where := fmt.Sprintf("%s: group %s, alert %s", filepath.Base(f), g.Name, r.Alert.Value)
				if r.Record.Value != "" {
					where = fmt.Sprintf("%s: group %s, record %s", filepath.Base(f), g.Name, r.Record.Value)
					recorded[r.Record.Value] = true
				}
				uses = append(uses, exprUses(t, r.Expr.Value, where)...)
			}
		}
	}
	return uses, recorded
}

// grafanaVars are Grafana's built-in interval variables; they stand where
// PromQL wants a duration.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "${__rate_interval}", "5m", "$__interval", "1m", "${__interval}", "1m", "$__range", "1h", "${__range}", "1h")

// userVar is a dashboard variable ($worker_job, ${datasource}), used in
// label matchers.
var userVar = regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*\}?`)

// labelValues is Grafana's label_values(metric, label) template query.
var labelValues = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,`)

func exprUses(t *testing.T, expr, where string) []use {
	t.Helper()
	expr = userVar.ReplaceAllString(grafanaVars.Replace(expr), "x")
	e, err := promql.ParseExpr(expr)
	require.NoError(t, err, "%s: %s", where, expr)
	var out []use
	promql.Inspect(e, func(n promql.Node, _ []promql.Node) error {
		vs, ok := n.(*promql.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel {
				name = m.Value
			}
		}
		out = append(out, use{name: name, where: where})
		return nil
	})
	return out
}

// dashboardUses reads every PromQL expression of the dashboard: panel
// targets (rows nest panels), annotations and template queries.
func dashboardUses(t *testing.T, path string) []use {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var dash struct {
		Panels      []panel `json:"panels"`
		Annotations struct {
			List []struct {
				Name string `json:"name"`
				Expr string `json:"expr"`
			} `json:"list"`
		} `json:"annotations"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	require.NoError(t, json.Unmarshal(b, &dash), path)
	var out []use
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				require.NotEmpty(t, tg.Expr, "%s: panel %q target %s has no expr", path, p.Title, tg.RefID)
				out = append(out, exprUses(t, tg.Expr, fmt.Sprintf("dashboard panel %q", p.Title))...)
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	require.NotEmpty(t, out, "%s: no panel queries found", path)
	for _, a := range dash.Annotations.List {
		if a.Expr != "" {
			out = append(out, exprUses(t, a.Expr, fmt.Sprintf("dashboard annotation %q", a.Name))...)
		}
	}
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		require.NoError(t, json.Unmarshal(v.Query, &q), "variable %s", v.Name)
		m := labelValues.FindStringSubmatch(q.Query)
		require.NotNil(t, m, "variable %s: want label_values(metric, label), got %q", v.Name, q.Query)
		out = append(out, use{name: m[1], where: fmt.Sprintf("dashboard variable %s", v.Name)})
	}
	return out
}

type panel struct {
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

func unknown(uses []use, exported, recorded map[string]bool) []string {
	var out []string
	for _, u := range uses {
		if u.name == "" {
			out = append(out, u.where+": a selector without a metric name")
			continue
		}
		if !exported[u.name] && !recorded[u.name] && !synthetic[u.name] {
			out = append(out, fmt.Sprintf("%s: %s", u.where, u.name))
		}
	}
	return out
}

// workerExports scrapes a real worker metrics registry after recording
// every metric the Deploy workflow records (found in workflows/metrics.go:
// the name constants and the Counter/Timer/Gauge calls that use them), so
// the names are the ones the worker's /metrics really serves, with the
// exporter's suffixes.
func workerExports(t *testing.T) map[string]bool {
	t.Helper()
	m, err := worker.NewMetrics(zap.NewNop())
	require.NoError(t, err)
	defer m.Shutdown(t.Context())
	recorded := 0
	for _, c := range workflowMetricCalls(t, filepath.Join(repoRoot, "workflows", "metrics.go")) {
		h := m.Handler.WithTags(map[string]string{"service": "payments-api"})
		switch c.kind {
		case "Counter":
			h.Counter(c.name).Inc(1)
		case "Timer":
			h.Timer(c.name).Record(1)
		case "Gauge":
			h.Gauge(c.name).Update(1)
		}
		recorded++
	}
	require.GreaterOrEqual(t, recorded, 5, "the workflow's metric calls were not found in workflows/metrics.go")
	// The gauge of deployments by phase, as the worker registers it.
	// It counts in the background: the first scrape starts the count.
	require.NoError(t, m.WatchPhases(noDeployments{}, "default", zap.NewNop()))
	var names map[string]bool
	require.Eventually(t, func() bool {
		names = scrape(t, m.HTTPHandler())
		return names["rollbook_deployments_in_phase"]
	}, 5*time.Second, 10*time.Millisecond, "the worker's phase gauge never appeared")
	return names
}

// noDeployments answers the phase gauge's counts: none in any phase.
type noDeployments struct{}

func (noDeployments) CountWorkflow(context.Context, *workflowservice.CountWorkflowExecutionsRequest) (*workflowservice.CountWorkflowExecutionsResponse, error) {
	return &workflowservice.CountWorkflowExecutionsResponse{}, nil
}

type metricCall struct{ kind, name string }

func workflowMetricCalls(t *testing.T, path string) []metricCall {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	require.NoError(t, err)
	consts := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok {
			for i, id := range vs.Names {
				if i < len(vs.Values) {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						consts[id.Name], _ = strconv.Unquote(lit.Value)
					}
				}
			}
		}
		return true
	})
	var calls []metricCall
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) != 1 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || (sel.Sel.Name != "Counter" && sel.Sel.Name != "Timer" && sel.Sel.Name != "Gauge") {
			return true
		}
		switch arg := call.Args[0].(type) {
		case *ast.Ident:
			require.Contains(t, consts, arg.Name, "%s: %s(%s) names no string constant", path, sel.Sel.Name, arg.Name)
			calls = append(calls, metricCall{sel.Sel.Name, consts[arg.Name]})
		case *ast.BasicLit:
			s, _ := strconv.Unquote(arg.Value)
			calls = append(calls, metricCall{sel.Sel.Name, s})
		}
		return true
	})
	return calls
}

// demoAPIExports reads the demo API's metric registrations
// (prometheus.CounterOpts{Name: …} and the like in examples/demoapi), which
// is a main package the test cannot import.
func demoAPIExports(t *testing.T) map[string]bool {
	t.Helper()
	dir := filepath.Join(repoRoot, "examples", "demoapi")
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	out := map[string]bool{}
	for _, p := range files {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, 0)
		require.NoError(t, err)
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			sel, ok := lit.Type.(*ast.SelectorExpr)
			if !ok || !strings.HasSuffix(sel.Sel.Name, "Opts") {
				return true
			}
			for _, el := range lit.Elts {
				kv, ok := el.(*ast.KeyValueExpr)
				if k, _ := kv.Key.(*ast.Ident); !ok || k == nil || k.Name != "Name" {
					continue
				}
				v, ok := kv.Value.(*ast.BasicLit)
				require.True(t, ok, "%s: a metric whose Name is not a string literal", p)
				name, _ := strconv.Unquote(v.Value)
				for _, s := range familySeries(name, optsType(sel.Sel.Name)) {
					out[s] = true
				}
			}
			return true
		})
	}
	require.NotEmpty(t, out, "no metric registrations found in %s", dir)
	return out
}

func optsType(opts string) dto.MetricType {
	switch opts {
	case "HistogramOpts":
		return dto.MetricType_HISTOGRAM
	case "SummaryOpts":
		return dto.MetricType_SUMMARY
	}
	return dto.MetricType_COUNTER
}

// familySeries are the series names a metric family is queried by.
func familySeries(name string, typ dto.MetricType) []string {
	switch typ {
	case dto.MetricType_HISTOGRAM:
		return []string{name + "_bucket", name + "_sum", name + "_count"}
	case dto.MetricType_SUMMARY:
		return []string{name, name + "_sum", name + "_count"}
	}
	return []string{name}
}

func scrape(t *testing.T, h http.Handler) map[string]bool {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	fams, err := textParser().TextToMetricFamilies(strings.NewReader(string(body)))
	require.NoError(t, err)
	out := map[string]bool{}
	for name, f := range fams {
		for _, s := range familySeries(name, f.GetType()) {
			out[s] = true
		}
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func textParser() *expfmt.TextParser {
	p := expfmt.NewTextParser(model.LegacyValidation)
	return &p
}
