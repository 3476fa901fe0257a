package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/rollbook/rollbook/internal/clip"
	"github.com/rollbook/rollbook/internal/netguard"
	"github.com/rollbook/rollbook/internal/router"
	"github.com/rollbook/rollbook/runbook"
)

// Check defaults, as documented on the runbook types.
const (
	defaultHTTPTimeout      = 5 * time.Second
	defaultPrometheusServer = "default"
	prometheusTimeout       = 10 * time.Second
	// maxBodyDrain bounds how much of a probe's answer is read (and
	// discarded) so that connections can be reused.
	maxBodyDrain = 1 << 20
)

// maxParallelChecks bounds how many checks of one Measure call run at once:
// a runbook decides how many checks a round has, the worker decides how
// much it does at the same time.
const maxParallelChecks = 8

// Checks measures verify and analysis checks. It only measures: the
// workflow judges the measurements, so the history shows why a round failed.
//
// What a check may reach is the worker's decision, not the runbook's: http
// checks only GET or HEAD; a named endpoint is dialled only to its
// configured host, a full url only to the hosts of AllowedHosts (checked on
// the connection's peer address, see internal/netguard), and neither follows
// a redirect to another host. URLs in measurements and errors lose their
// user info and query string.
type Checks struct {
	// Prometheus maps server names used in runbooks to base URLs.
	Prometheus map[string]string
	// Endpoints maps the names http checks use (http.endpoint) to base URLs.
	Endpoints map[string]string
	// Routers maps router names to drivers, for router and compare checks.
	Routers map[string]router.Router

	allowed   *netguard.Allowlist // for full urls
	urlHTTP   *http.Client        // dials only allowed hosts
	endpoints map[string]endpoint
	promHTTP  *http.Client

	mu   sync.Mutex
	apis map[string]promv1.API
}

// endpoint is a configured base URL with its own guarded client, so that
// its connections are never reused for a runbook's url (and back).
type endpoint struct {
	base   *url.URL
	client *http.Client
}

// ChecksConfig is what NewChecks needs; every field may be empty, and checks
// that need a missing name fail as ErrInvalid.
type ChecksConfig struct {
	Prometheus map[string]string
	Endpoints  map[string]string
	Routers    map[string]router.Router
	// AllowedHosts are the IPs, CIDRs and hostnames a check's full url may
	// reach (internal/netguard documents how each kind is matched). Empty:
	// full urls are refused and only named endpoints work.
	AllowedHosts []string
}

// NewChecks checks the configuration (Prometheus and endpoint URLs parse,
// allowed hosts are IPs, CIDRs or hostnames) and returns the check
// activities. Configuration errors never echo a URL's user info or query.
func NewChecks(cfg ChecksConfig) (*Checks, error) {
	allowed, err := netguard.ParseAllowlist(cfg.AllowedHosts)
	if err != nil {
		return nil, fmt.Errorf("checks: allowed hosts: %w", err)
	}
	c := &Checks{
		Prometheus: maps.Clone(cfg.Prometheus), Endpoints: maps.Clone(cfg.Endpoints), Routers: maps.Clone(cfg.Routers),
		allowed:   allowed,
		urlHTTP:   allowed.Client(),
		endpoints: make(map[string]endpoint, len(cfg.Endpoints)),
		// The Prometheus servers are the operator's; only their redirects
		// are kept on the same host.
		promHTTP: &http.Client{CheckRedirect: netguard.SameHostRedirect},
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Prometheus)) {
		if _, err := c.prometheus(name); err != nil {
			return nil, fmt.Errorf("checks: %s", netguard.RedactError(err))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Endpoints)) {
		u, err := url.Parse(cfg.Endpoints[name])
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("checks: endpoint %q: want an http(s) base URL", name)
		}
		// The endpoint's own host, by name or IP: its URL is the
		// operator's, and the guard still stops a redirect elsewhere.
		host, err := netguard.ParseAllowlist([]string{u.Hostname()})
		if err != nil {
			return nil, fmt.Errorf("checks: endpoint %q: host: %w", name, err)
		}
		c.endpoints[name] = endpoint{base: u, client: host.Client()}
	}
	return c, nil
}

func (c *Checks) prometheus(name string) (promv1.API, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a, ok := c.apis[name]; ok {
		return a, nil
	}
	addr, ok := c.Prometheus[name]
	if !ok {
		return nil, fmt.Errorf("unknown prometheus server %q (this worker knows: %s)", clip.Bytes(name, maxEcho), strings.Join(slices.Sorted(maps.Keys(c.Prometheus)), ", "))
	}
	cl, err := promapi.NewClient(promapi.Config{Address: addr, Client: c.promHTTP})
	if err != nil {
		return nil, fmt.Errorf("prometheus server %q: %s", name, netguard.RedactError(err))
	}
	if c.apis == nil {
		c.apis = map[string]promv1.API{}
	}
	a := promv1.NewAPI(cl)
	c.apis[name] = a
	return a, nil
}

// plan is a check resolved against the worker's configuration.
type plan struct {
	check   runbook.Check
	kind    string
	route   runbook.Route
	router  router.Router
	prom    promv1.API
	subsets []string // router: [subset]; compare: [baseline, canary]
	url     string   // http
	method  string   // http: GET or HEAD
	client  *http.Client
}

// httpTarget resolves an http check's URL and the client allowed to reach
// it: a full url (only towards the worker's allowed hosts), or an
// endpoint's base URL joined with the check's path (only towards the
// endpoint's host).
func (c *Checks) httpTarget(hc *runbook.HTTPCheck) (string, *http.Client, error) {
	switch {
	case hc.URL != "" && hc.Endpoint != "":
		return "", nil, errors.New("http check has both url and endpoint")
	case hc.URL != "":
		u, err := url.Parse(hc.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", nil, fmt.Errorf("url %s is not an http(s) URL", netguard.RedactURL(clip.Bytes(hc.URL, maxEcho)))
		}
		if c.allowed.Empty() {
			return "", nil, fmt.Errorf("url %s: this worker allows no check URLs (checks.allowedHosts is empty); use a named endpoint", netguard.RedactURL(clip.Bytes(hc.URL, maxEcho)))
		}
		if !c.allowed.MayReach(u.Hostname()) {
			return "", nil, fmt.Errorf("url %s: host %s is not in this worker's checks.allowedHosts (%s)",
				netguard.RedactURL(clip.Bytes(hc.URL, maxEcho)), clip.Bytes(u.Hostname(), maxEcho), c.allowed)
		}
		return hc.URL, c.urlHTTP, nil
	case hc.Endpoint == "":
		return "", nil, errors.New("http check needs url or endpoint")
	}
	ep, ok := c.endpoints[hc.Endpoint]
	if !ok {
		return "", nil, fmt.Errorf("unknown endpoint %q (this worker knows: %s)", clip.Bytes(hc.Endpoint, maxEcho), strings.Join(slices.Sorted(maps.Keys(c.endpoints)), ", "))
	}
	if hc.Path == "" {
		return ep.base.String(), ep.client, nil
	}
	// JoinPath keeps the result under the endpoint's host whatever the
	// path holds; a query in the path is kept as a query.
	p, q, hasQuery := strings.Cut(hc.Path, "?")
	u := ep.base.JoinPath(p)
	if hasQuery {
		if u.RawQuery != "" {
			u.RawQuery += "&"
		}
		u.RawQuery += q
	}
	return u.String(), ep.client, nil
}

func findRoute(routes []runbook.Route, name string) (runbook.Route, bool) {
	for _, r := range routes {
		if r.Name == name {
			return r, true
		}
	}
	return runbook.Route{}, false
}

func (c *Checks) resolve(ch runbook.Check, routes []runbook.Route) (plan, error) {
	p := plan{check: ch, kind: ch.Kind()}
	routeOf := func(name string) error {
		route, ok := findRoute(routes, name)
		if !ok {
			return fmt.Errorf("route %q is not among the runbook's routes", clip.Bytes(name, maxEcho))
		}
		r, err := resolveRouter(c.Routers, route)
		if err != nil {
			return err
		}
		p.route, p.router = route, r
		return nil
	}
	switch p.kind {
	case runbook.CheckHTTP:
		method := strings.ToUpper(cmpOr(ch.HTTP.Method, http.MethodGet))
		if method != http.MethodGet && method != http.MethodHead {
			// Checks only read: a DELETE or POST "probe" would change
			// whatever the URL reaches.
			return p, fmt.Errorf("method %q: checks may only GET or HEAD", clip.Bytes(ch.HTTP.Method, maxEcho))
		}
		u, client, err := c.httpTarget(ch.HTTP)
		if err != nil {
			return p, err
		}
		p.url, p.method, p.client = u, method, client
	case runbook.CheckPrometheus:
		server := ch.Prometheus.Server
		if server == "" {
			server = defaultPrometheusServer
		}
		a, err := c.prometheus(server)
		if err != nil {
			return p, err
		}
		p.prom = a
	case runbook.CheckRouter:
		if err := routeOf(ch.Router.Route); err != nil {
			return p, err
		}
		if !slices.Contains(p.route.Subsets, ch.Router.Subset) {
			return p, fmt.Errorf("subset %q is not in route %s (%s)", clip.Bytes(ch.Router.Subset, maxEcho), clip.Bytes(p.route.Name, maxEcho), clip.Bytes(strings.Join(p.route.Subsets, ", "), maxEcho))
		}
		p.subsets = []string{ch.Router.Subset}
	case runbook.CheckCompare:
		if err := routeOf(ch.Compare.Route); err != nil {
			return p, err
		}
		base, canary := cmpOr(ch.Compare.Baseline, p.route.Stable), cmpOr(ch.Compare.Canary, p.route.Canary)
		for _, s := range []string{base, canary} {
			if !slices.Contains(p.route.Subsets, s) {
				return p, fmt.Errorf("compare subset %q is not in route %s (%s)", clip.Bytes(s, maxEcho), clip.Bytes(p.route.Name, maxEcho), clip.Bytes(strings.Join(p.route.Subsets, ", "), maxEcho))
			}
		}
		if base == canary {
			return p, fmt.Errorf("compare check: baseline and canary are both %q", clip.Bytes(base, maxEcho))
		}
		p.subsets = []string{base, canary}
	default:
		return p, errors.New("check must have exactly one of http, prometheus, router, compare")
	}
	return p, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Measure runs one round of in.Checks concurrently and returns one
// Measurement per check, in check order. A check that cannot be measured
// (connection refused, query error, timeout) has Measurement.Error set; the
// activity itself fails only when a check cannot run on this worker at all
// (unknown router, route, subset or Prometheus server: ErrInvalid).
//
// Router and compare checks report requests and 5xx answers since the
// previous round (in.Previous, matched by check name) from the router's
// cumulative counters; without a usable previous round the measurement is a
// baseline round (BaselineRound, cumulative numbers).
func (c *Checks) Measure(ctx context.Context, in MeasureInput) (MeasureResult, error) {
	plans := make([]plan, len(in.Checks))
	for i, ch := range in.Checks {
		if ch.Prometheus != nil {
			// A copy: the query with {{version}} filled in.
			pc := *ch.Prometheus
			q, err := pc.QueryFor(in.Version)
			if err != nil {
				return MeasureResult{}, invalidf("check %q: %s", clip.Bytes(ch.Name, maxEcho), err)
			}
			pc.Query, ch.Prometheus = q, &pc
		}
		p, err := c.resolve(ch, in.Routes)
		if err != nil {
			return MeasureResult{}, invalidf("check %q: %s", clip.Bytes(ch.Name, maxEcho), netguard.RedactError(err))
		}
		plans[i] = p
	}
	prev := make(map[string]*Measurement, len(in.Previous))
	for i := range in.Previous {
		prev[in.Previous[i].Check] = &in.Previous[i]
	}
	stop := keepAlive(ctx, 2*time.Second, func() any { return fmt.Sprintf("measuring round %d", in.Round) })
	defer stop()

	out := make([]Measurement, len(plans))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(maxParallelChecks, len(plans)) {
		wg.Go(func() {
			for i := range next {
				out[i] = c.measure(ctx, plans[i], prev[plans[i].check.Name])
			}
		})
	}
	for i := range plans {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return MeasureResult{}, fmt.Errorf("measuring round %d: %w", in.Round, err)
	}
	return MeasureResult{Measurements: out}, nil
}

// measure takes one measurement of a resolved check. Every text that can
// quote a URL leaves with the URL's user info and query redacted.
func (c *Checks) measure(ctx context.Context, p plan, prev *Measurement) Measurement {
	m := Measurement{Check: p.check.Name, Kind: p.kind, At: time.Now().UTC()}
	switch p.kind {
	case runbook.CheckHTTP:
		measureHTTP(ctx, p, &m)
	case runbook.CheckPrometheus:
		measurePrometheus(ctx, p.prom, p.check.Prometheus, &m)
	case runbook.CheckRouter, runbook.CheckCompare:
		measureCounters(ctx, p, prev, &m)
	}
	m.Error = netguard.RedactText(m.Error)
	m.Detail = netguard.RedactText(m.Detail)
	return m
}

func measureHTTP(ctx context.Context, p plan, m *Measurement) {
	hc, client, method, url := p.check.HTTP, p.client, p.method, p.url
	samples := max(hc.Samples, 1)
	expect := hc.ExpectStatus
	if expect == 0 {
		expect = http.StatusOK
	}
	timeout := hc.Timeout.D()
	if timeout <= 0 {
		timeout = defaultHTTPTimeout
	}
	var transportErrs int
	var lastErr error
	failingStatus := 0
	for range samples {
		status, latency, err := probe(ctx, client, method, url, timeout)
		if err != nil {
			m.Failures++
			transportErrs++
			lastErr = err
			continue
		}
		m.Status = status
		m.LatencyMs = max(m.LatencyMs, latency)
		if status != expect || (hc.MaxLatency > 0 && latency > float64(hc.MaxLatency.D())/float64(time.Millisecond)) {
			m.Failures++
			if failingStatus == 0 && status != expect {
				failingStatus = status
			}
		}
	}
	if failingStatus != 0 {
		m.Status = failingStatus
	}
	if transportErrs > 0 {
		m.Error = fmt.Sprintf("%d of %d requests failed: %s", transportErrs, samples, clip.Bytes(netguard.RedactError(lastErr), maxEcho))
	}
	m.Detail = fmt.Sprintf("%d samples, %d failed; latency is the slowest sample", samples, m.Failures)
}

// probe sends one request and returns its status and latency in ms.
func probe(ctx context.Context, client *http.Client, method, url string, timeout time.Duration) (int, float64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBodyDrain))
	resp.Body.Close()
	latency := float64(time.Since(start).Microseconds()) / 1000
	if err != nil {
		return 0, 0, fmt.Errorf("reading answer: %w", err)
	}
	return resp.StatusCode, latency, nil
}

func measurePrometheus(ctx context.Context, api promv1.API, pc *runbook.PrometheusCheck, m *Measurement) {
	ctx, cancel := context.WithTimeout(ctx, prometheusTimeout)
	defer cancel()
	val, warnings, _, err := api.Query(ctx, pc.Query, time.Now())
	if err != nil {
		m.Error = fmt.Sprintf("query %q: %s", clip.Bytes(pc.Query, maxEcho), clip.Bytes(netguard.RedactError(err), maxEcho))
		return
	}
	var v float64
	switch r := val.(type) {
	case *model.Scalar:
		v = float64(r.Value)
	case model.Vector:
		if len(r) == 0 {
			m.NoData = true
			m.Detail = fmt.Sprintf("query %q returned 0 samples", clip.Bytes(pc.Query, maxEcho))
			return
		}
		if len(r) != 1 {
			m.Error = fmt.Sprintf("query %q returned %d samples; want a scalar or exactly one sample", clip.Bytes(pc.Query, maxEcho), len(r))
			return
		}
		v = float64(r[0].Value)
		m.Detail = clip.Bytes(r[0].Metric.String(), maxEcho)
	default:
		m.Error = fmt.Sprintf("query %q returned a %s; want a scalar or a single-sample vector", clip.Bytes(pc.Query, maxEcho), val.Type())
		return
	}
	if math.IsNaN(v) {
		// 0/0: a ratio over an empty window. Nothing to judge yet.
		m.NoData = true
		m.Detail = strings.TrimSpace(m.Detail + fmt.Sprintf(" query %q returned NaN", clip.Bytes(pc.Query, maxEcho)))
		return
	}
	if math.IsInf(v, 0) {
		// JSON cannot carry NaN/Inf, and a comparison with them means nothing.
		m.Error = fmt.Sprintf("query %q returned %v", clip.Bytes(pc.Query, maxEcho), v)
		return
	}
	m.Value = &v
	if len(warnings) > 0 {
		m.Detail = strings.TrimSpace(m.Detail + " warnings: " + clip.Bytes(strings.Join(warnings, "; "), maxEcho))
	}
}

// measureCounters fills a router or compare measurement from cumulative
// counters. Counters keys are "<subset>.requests" and "<subset>.errors5xx".
func measureCounters(ctx context.Context, p plan, prev *Measurement, m *Measurement) {
	cs, err := p.router.Counters(ctx, p.route.Backend, p.subsets)
	if err != nil {
		m.Error = fmt.Sprintf("reading counters of route %s on %s: %s", clip.Bytes(p.route.Name, maxEcho), p.router, clip.Bytes(err.Error(), 4*maxEcho))
		return
	}
	m.Counters = make(map[string]int64, 2*len(p.subsets))
	for _, s := range p.subsets {
		m.Counters[s+".requests"] = cs[s].Requests
		m.Counters[s+".errors5xx"] = cs[s].Errors5xx
	}
	baseline, why := true, "baseline round: no previous round, counters are cumulative"
	if prev != nil && prev.Counters != nil {
		baseline, why = false, ""
		for k, v := range m.Counters {
			old, ok := prev.Counters[k]
			if !ok {
				baseline, why = true, "baseline round: previous round lacks counter "+k
				break
			}
			if v < old {
				baseline, why = true, fmt.Sprintf("baseline round: counter %s went down from %d to %d (router restarted?), counters are cumulative", k, old, v)
				break
			}
		}
	}
	delta := func(s, what string) int64 {
		if baseline {
			return m.Counters[s+what]
		}
		return m.Counters[s+what] - prev.Counters[s+what]
	}
	m.BaselineRound = baseline
	var notes []string
	if why != "" {
		notes = append(notes, why)
	}
	switch p.kind {
	case runbook.CheckRouter:
		s := p.subsets[0]
		m.Requests, m.Errors = delta(s, ".requests"), delta(s, ".errors5xx")
		m.LatencyMs = float64(cs[s].ResponseMs)
		m.SubsetStatus = cs[s].Status
		notes = append(notes, fmt.Sprintf("%s status %s; latency is the router's average response time over its recent requests", s, cs[s].Status))
	case runbook.CheckCompare:
		base, canary := p.subsets[0], p.subsets[1]
		m.Baseline = &SideSample{Requests: delta(base, ".requests"), Errors: delta(base, ".errors5xx")}
		m.Canary = &SideSample{Requests: delta(canary, ".requests"), Errors: delta(canary, ".errors5xx")}
		m.Requests = m.Baseline.Requests + m.Canary.Requests
		m.Errors = m.Baseline.Errors + m.Canary.Errors
		// HAProxy keeps averages, not per-request times: no latency samples.
		notes = append(notes, fmt.Sprintf("no per-request latency samples from %s; average response time %s=%dms %s=%dms",
			p.router, base, cs[base].ResponseMs, canary, cs[canary].ResponseMs))
	}
	m.Detail = strings.Join(notes, "; ")
}
