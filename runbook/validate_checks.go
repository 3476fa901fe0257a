package runbook

import (
	"fmt"
	"net/url"
	"strings"
)

// httpMethods are the methods a check may use. Checks only read: a
// runbook must not be able to make the worker change anything through a
// check (DELETE http://consul/v1/kv/?recurse).
var httpMethods = map[string]bool{"GET": true, "HEAD": true}

func (c *checker) checkChecks(p string, checks []Check) {
	switch {
	case len(checks) == 0:
		c.addf(p, "at least one check is required")
	case len(checks) > MaxChecks:
		c.addf(p, "%d checks; the limit is %d per verify step or analysis (each one runs every interval)", len(checks), MaxChecks)
		// Every further check would add its own problems to a list no one
		// reads; the count is the problem.
		checks = checks[:MaxChecks]
	}
	seen := map[string]int{}
	for i := range checks {
		ch := &checks[i]
		cp := indexPath(p, i)
		if c.name(fieldPath(cp, "name"), "check name", ch.Name) {
			if first, dup := seen[ch.Name]; dup {
				c.addf(fieldPath(cp, "name"), "duplicate check name %q (also %s)", ch.Name, indexPath(p, first))
			} else {
				seen[ch.Name] = i
			}
		}
		if ch.Kind() == "" {
			var kinds []string
			for _, k := range []struct {
				set  bool
				name string
			}{{ch.HTTP != nil, CheckHTTP}, {ch.Prometheus != nil, CheckPrometheus}, {ch.Router != nil, CheckRouter}, {ch.Compare != nil, CheckCompare}} {
				if k.set {
					kinds = append(kinds, k.name)
				}
			}
			if len(kinds) == 0 {
				c.addf(cp, "check %q has no kind; set exactly one of http, prometheus, router, compare", ch.Name)
			} else {
				c.addf(cp, "check %q has %d kinds (%s); set exactly one", ch.Name, len(kinds), strings.Join(kinds, ", "))
			}
		}
		for _, k := range []struct {
			field string
			v     int
		}{{"failureLimit", ch.FailureLimit}, {"successThreshold", ch.SuccessThreshold}, {"inconclusiveLimit", ch.InconclusiveLimit}} {
			if k.v < 0 {
				c.addf(fieldPath(cp, k.field), "must be 0 or more, got %d", k.v)
			}
		}
		c.checkContinuous(cp, ch)
		if ch.HTTP != nil {
			c.checkHTTP(fieldPath(cp, "http"), ch.HTTP)
		}
		if ch.Prometheus != nil {
			c.checkPrometheus(fieldPath(cp, "prometheus"), ch.Prometheus)
		}
		if ch.Router != nil {
			c.checkRouter(fieldPath(cp, "router"), ch.Router)
		}
		if ch.Compare != nil {
			c.checkCompare(fieldPath(cp, "compare"), ch.Compare)
		}
	}
}

// checkContinuous checks continuous and window: only a router check can be
// watched (the watch reads the router's counters), and the knobs that count
// rounds mean nothing for a check without rounds.
func (c *checker) checkContinuous(p string, ch *Check) {
	if !ch.Continuous {
		if ch.Window != 0 || c.written(fieldPath(p, "window")) {
			c.addf(fieldPath(p, "window"), "window applies only to a continuous check (continuous: true)")
		}
		return
	}
	if k := ch.Kind(); k != CheckRouter && k != "" {
		c.addf(fieldPath(p, "continuous"), "continuous applies only to router checks, not to a %s check (it watches the router's counters)", k)
	}
	c.duration(fieldPath(p, "window"), ch.Window, false, MinWindow, MaxWindow)
	if ch.SuccessThreshold > 0 {
		c.addf(fieldPath(p, "successThreshold"), "successThreshold does not apply to a continuous check: it has no rounds and watches until its step ends")
	}
	if ch.InconclusiveLimit > 0 {
		c.addf(fieldPath(p, "inconclusiveLimit"), "inconclusiveLimit does not apply to a continuous check: it has no rounds (a window with fewer than minRequests is simply not judged)")
	}
}

func (c *checker) checkHTTP(p string, h *HTTPCheck) {
	up := fieldPath(p, "url")
	switch {
	case h.URL != "" && h.Endpoint != "":
		c.addf(p, "set either url or endpoint (with path), not both")
	case h.URL == "" && h.Endpoint == "":
		c.addf(p, "url or endpoint is required")
	case h.URL != "":
		if msg := checkURLSyntax(h.URL); msg != "" {
			c.addf(up, "%s", msg)
		}
		if h.Path != "" {
			c.addf(fieldPath(p, "path"), "path goes with endpoint; with url, put the path in the url")
		}
	default:
		c.name(fieldPath(p, "endpoint"), "endpoint", h.Endpoint)
		if h.Path != "" {
			if msg := checkURLPath(h.Path); msg != "" {
				c.addf(fieldPath(p, "path"), "%s", msg)
			}
		}
	}
	if h.Method != "" && !httpMethods[h.Method] {
		c.addf(fieldPath(p, "method"), "method %s is not allowed: checks only read, use GET or HEAD", quoteShort(h.Method))
	}
	if h.ExpectStatus != 0 && (h.ExpectStatus < 100 || h.ExpectStatus > 599) {
		c.addf(fieldPath(p, "expectStatus"), "must be an HTTP status between 100 and 599, got %d", h.ExpectStatus)
	}
	c.duration(fieldPath(p, "maxLatency"), h.MaxLatency, false, 0, MaxHTTPTimeout)
	c.duration(fieldPath(p, "timeout"), h.Timeout, false, 0, MaxHTTPTimeout)
	if h.Samples < 0 || h.Samples > MaxHTTPSamples {
		c.addf(fieldPath(p, "samples"), "must be between 0 and %d, got %d", MaxHTTPSamples, h.Samples)
	}
}

// checkURLSyntax returns why u cannot be an http check's url, or "". The
// worker's allowlist decides where a url may point; this only makes sure it
// is what it looks like: printable ASCII, http or https, a host, no
// credentials (a runbook travels in workflow history).
func checkURLSyntax(u string) string {
	if len(u) > MaxURLBytes {
		return fmt.Sprintf("url is %d bytes; the limit is %d", len(u), MaxURLBytes)
	}
	if i := strings.IndexFunc(u, func(r rune) bool { return r <= ' ' || r >= 0x7f }); i >= 0 {
		return fmt.Sprintf("url %s: %s; percent-encode it", quoteShort(u), badChar(u, func(_ int, r rune) bool { return r > ' ' && r < 0x7f }))
	}
	pu, err := url.Parse(u)
	switch {
	case err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Opaque != "":
		return fmt.Sprintf("url must be an absolute http:// or https:// URL, got %s", quoteShort(u))
	case pu.User != nil:
		return "url must not carry credentials (user:password@); the worker adds them"
	case pu.Hostname() == "":
		return fmt.Sprintf("url %s has no host", quoteShort(u))
	case pu.Fragment != "" || strings.Contains(u, "#"):
		return fmt.Sprintf("url %s has a #fragment, which is never sent; remove it", quoteShort(u))
	}
	return ""
}

// checkURLPath returns why p cannot be the path appended to an endpoint,
// or "". It must stay on the endpoint: an absolute path, no "//" (a
// network-path reference names another host), no "." or ".." segments
// (they climb out of the endpoint's base path), printable ASCII.
func checkURLPath(p string) string {
	if len(p) > MaxURLBytes {
		return fmt.Sprintf("path is %d bytes; the limit is %d", len(p), MaxURLBytes)
	}
	bad := func() string {
		return fmt.Sprintf("path must be an absolute URL path such as /healthz, got %s", quoteShort(p))
	}
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return bad()
	}
	if strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == '\\' || r == '#' }) {
		return fmt.Sprintf("path %s: %s; percent-encode it", quoteShort(p),
			badChar(p, func(_ int, r rune) bool { return r > ' ' && r < 0x7f && r != '\\' && r != '#' }))
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return bad()
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return fmt.Sprintf("path %s must not contain %q segments: it must stay on the endpoint", quoteShort(p), seg)
		}
	}
	return ""
}

func (c *checker) checkPrometheus(p string, q *PrometheusCheck) {
	if q.Server != "" {
		c.name(fieldPath(p, "server"), "server", q.Server)
	}
	switch {
	case strings.TrimSpace(q.Query) == "":
		c.addf(fieldPath(p, "query"), "query is required")
	case len(q.Query) > MaxQueryBytes:
		c.addf(fieldPath(p, "query"), "query is %d bytes; the limit is %d", len(q.Query), MaxQueryBytes)
	case hiddenChar(q.Query) != "":
		c.addf(fieldPath(p, "query"), "%s is not allowed in a query (it would hide or reorder text in plans and logs)", hiddenChar(q.Query))
	case strings.Contains(strings.ReplaceAll(q.Query, VersionPlaceholder, ""), "{{"):
		c.addf(fieldPath(p, "query"), "the only placeholder a query may use is %s", VersionPlaceholder)
	}
	switch {
	case q.Min == nil && q.Max == nil:
		c.addf(p, "set min and/or max: a query without bounds can never fail")
	case q.Min != nil && q.Max != nil && *q.Min > *q.Max:
		c.addf(fieldPath(p, "min"), "min %g is greater than max %g", *q.Min, *q.Max)
	}
}

func (c *checker) checkRouter(p string, r *RouterCheck) {
	c.subset(fieldPath(p, "subset"), c.route(fieldPath(p, "route"), r.Route), r.Subset, true)
	if r.MaxErrorRate < 0 || r.MaxErrorRate > 1 {
		c.addf(fieldPath(p, "maxErrorRate"), "must be a share between 0 and 1 (0.01 is 1%%), got %g", r.MaxErrorRate)
	}
	if r.MinRequests < 0 {
		c.addf(fieldPath(p, "minRequests"), "must be 0 or more, got %d", r.MinRequests)
	}
}

func (c *checker) checkCompare(p string, cc *CompareCheck) {
	r := c.route(fieldPath(p, "route"), cc.Route)
	c.subset(fieldPath(p, "canary"), r, cc.Canary, false)
	c.subset(fieldPath(p, "baseline"), r, cc.Baseline, false)
	if r != nil {
		canary, baseline := cc.Canary, cc.Baseline
		if canary == "" {
			canary = r.Canary
		}
		if baseline == "" {
			baseline = r.Stable
		}
		if canary == baseline && canary != "" {
			c.addf(p, "canary and baseline are the same subset %q", canary)
		}
	}
	seen := map[string]bool{}
	for i, m := range cc.Metrics {
		mp := indexPath(fieldPath(p, "metrics"), i)
		switch {
		case m != "errors" && m != "latency":
			c.addf(mp, "unknown metric %q (use errors or latency)", m)
		case seen[m]:
			c.addf(mp, "duplicate metric %q", m)
		}
		seen[m] = true
	}
	if cc.Significance < 0 || cc.Significance >= 1 || (cc.Significance == 0 && c.written(fieldPath(p, "significance"))) {
		c.addf(fieldPath(p, "significance"), "must be between 0 and 1 exclusive (0.05 is usual), got %g", cc.Significance)
	}
	if cc.MinEffect < 0 {
		c.addf(fieldPath(p, "minEffect"), "must be 0 or more, got %g", cc.MinEffect)
	}
	if cc.MinSamples < 0 {
		c.addf(fieldPath(p, "minSamples"), "must be 0 or more, got %d", cc.MinSamples)
	}
}

// subset checks that s names a subset of route r (when r is known).
func (c *checker) subset(p string, r *Route, s string, required bool) {
	switch {
	case s == "" && required:
		c.addf(p, "subset is required")
	case s == "" || r == nil:
	case !hasSubset(r, s):
		c.addf(p, "unknown subset %q of route %q (subsets: %s)", s, r.Name, list(r.Subsets))
	}
}
