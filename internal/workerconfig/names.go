package workerconfig

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rollbook/rollbook/runbook"
)

// defaultPrometheus is the server a prometheus check without server: uses.
const defaultPrometheus = "default"

// CheckNames checks every name rb uses against the worker configuration:
// databases, release targets, routers and their allowed backends, Consul
// keys against the allowed prefixes, http endpoints (and full URLs when the
// worker allows none), Prometheus servers, the notification webhook and the paging service.
// It returns every problem, each as "field: what is wrong", in
// runbook order; none means the configuration knows every name.
//
// It is the offline half of the preflight: the Preflight activity runs it
// with the worker's own configuration before it asks the live systems, and
// `rollbook validate --worker-config` runs it in CI.
func CheckNames(cfg *Config, rb *runbook.Runbook) []string {
	n := &nameCheck{cfg: cfg}
	for i, r := range rb.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		rc, ok := cfg.Routers[r.Router]
		if !ok {
			n.addf(p+".router", "unknown router %q (this worker knows: %s)", r.Router, known(cfg.Routers))
			continue
		}
		if len(rc.AllowedBackends) > 0 && !slices.Contains(rc.AllowedBackends, r.Backend) {
			n.addf(p+".backend", "backend %q is not in router %s's allowedBackends (%s)", r.Backend, r.Router, strings.Join(rc.AllowedBackends, ", "))
		}
	}
	for i, s := range rb.Steps {
		p := fmt.Sprintf("steps[%d]", i)
		switch {
		case s.Migrate != nil:
			if _, ok := cfg.Databases[s.Migrate.Database]; !ok {
				n.addf(p+".migrate.database", "unknown database %q (this worker knows: %s)", s.Migrate.Database, known(cfg.Databases))
			}
		case s.Consul != nil:
			for _, op := range s.Consul.Ops() {
				f := p + ".consul.set"
				if op.Delete {
					f = p + ".consul.delete"
				}
				n.consulKey(f, op.Key)
			}
		case s.Verify != nil:
			n.checks(p+".verify.checks", s.Verify.Checks)
		case s.Release != nil:
			if _, ok := cfg.Targets[s.Release.Target]; !ok {
				n.addf(p+".release.target", "unknown release target %q (this worker knows: %s)", s.Release.Target, known(cfg.Targets))
			}
		}
	}
	if a := rb.Analysis; a != nil {
		n.checks("analysis.checks", a.Checks)
	}
	if r := rb.Rollback; r != nil && r.Verify != nil {
		n.checks("rollback.verify.checks", r.Verify.Checks)
	}
	if nt := rb.Notify; nt != nil {
		if _, ok := cfg.Webhooks[nt.Webhook]; nt.Webhook != "" && !ok {
			n.addf("notify.webhook", "unknown webhook %q (this worker knows: %s)", nt.Webhook, known(cfg.Webhooks))
		}
		if _, ok := cfg.Paging[nt.Page]; nt.Page != "" && !ok {
			n.addf("notify.page", "unknown paging service %q (this worker knows: %s)", nt.Page, known(cfg.Paging))
		}
	}
	return n.problems
}

type nameCheck struct {
	cfg      *Config
	problems []string
}

func (n *nameCheck) addf(field, format string, args ...any) {
	n.problems = append(n.problems, field+": "+fmt.Sprintf(format, args...))
}

// consulKey mirrors the KV activity's rule: a plain string prefix match.
func (n *nameCheck) consulKey(field, key string) {
	allowed := n.cfg.Consul.AllowedPrefixes
	if len(allowed) == 0 {
		n.addf(field, "key %q: this worker allows no Consul KV prefixes (consul.allowedPrefixes)", key)
		return
	}
	if !slices.ContainsFunc(allowed, func(p string) bool { return strings.HasPrefix(key, p) }) {
		n.addf(field, "key %q is outside the prefixes this worker may change (%s)", key, strings.Join(allowed, ", "))
	}
}

func (n *nameCheck) checks(field string, list []runbook.Check) {
	for i, c := range list {
		p := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case c.HTTP != nil && c.HTTP.URL != "" && len(n.cfg.Checks.AllowedHosts) == 0:
			// With an allowlist the worker checks the peer address when it
			// connects; without one, full URLs never work.
			n.addf(p+".http.url", "this worker allows no full check URLs (checks.allowedHosts is empty); name an endpoint instead")
		case c.HTTP != nil && c.HTTP.Endpoint != "":
			if _, ok := n.cfg.Endpoints[c.HTTP.Endpoint]; !ok {
				n.addf(p+".http.endpoint", "unknown endpoint %q (this worker knows: %s)", c.HTTP.Endpoint, known(n.cfg.Endpoints))
			}
		case c.Prometheus != nil:
			server := c.Prometheus.Server
			if server == "" {
				server = defaultPrometheus
			}
			if _, ok := n.cfg.Prometheus[server]; !ok {
				n.addf(p+".prometheus.server", "unknown Prometheus server %q (this worker knows: %s)", server, known(n.cfg.Prometheus))
			}
		}
	}
}

func known[V any](m map[string]V) string {
	if len(m) == 0 {
		return "none"
	}
	return strings.Join(sortedKeys(m), ", ")
}
