package runbook

import (
	"fmt"
	"strings"
)

// PlanStep describes what one step will do and how it is undone, for the
// CLI's plan command and the Web UI. It is derived from the runbook alone.
type PlanStep struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Forward string `json:"forward"`
	// Compensation is how the step is undone on rollback, or why it is not.
	Compensation string `json:"compensation"`
	Irreversible bool   `json:"irreversible,omitempty"`
	// OnRollback is a migrate step's effective rollback policy.
	OnRollback string `json:"onRollback,omitempty"`
	// DataDestroying marks a compensation that deletes data callers may
	// have written (onRollback: drop).
	DataDestroying bool `json:"dataDestroying,omitempty"`
	// Warning explains DataDestroying.
	Warning string `json:"warning,omitempty"`
	// PointOfNoReturn marks the first irreversible step: once it is applied,
	// earlier compensations are discarded and failures wait for a human.
	PointOfNoReturn bool `json:"pointOfNoReturn,omitempty"`
	// Promotion marks the steps of a promotion (Argo Rollouts' model): the
	// release onto a route's stable target after its canary took 100 %, and
	// the traffic step that moves the route back to stable.
	Promotion bool `json:"promotion,omitempty"`
}

// Plan lists the steps of a (valid) runbook with their forward action and
// compensation.
func Plan(rb *Runbook) []PlanStep {
	out := make([]PlanStep, 0, len(rb.Steps))
	pivot := false
	// The latest weights each route's traffic steps set, and the routes
	// whose stable target got the new version (promoted).
	weights := map[string]map[string]int{}
	promoted := map[string]bool{}
	for _, s := range rb.Steps {
		ps := PlanStep{Name: s.Name, Kind: s.Kind(), Irreversible: s.Irreversible}
		ps.Forward, ps.Compensation = describeStep(rb, s)
		switch {
		case s.Migrate != nil && !s.Irreversible:
			ps.OnRollback = s.Migrate.RollbackPolicy()
			if ps.OnRollback == OnRollbackDrop {
				ps.DataDestroying = true
				ps.Warning = fmt.Sprintf("onRollback: drop DESTROYS DATA: a rollback runs the Down sections of %s without preserving anything; rows written into the tables and columns these migrations create (by the canary, during the deployment) are lost. Use archive (the default outside expand) to keep them in the %s schema", s.Migrate.Dir, "rollbook_archive")
			}
		case s.Release != nil:
			for _, r := range rb.Routes {
				if w := weights[r.Name]; r.Stable == s.Release.Target && w != nil && w[r.Canary] == 100 {
					promoted[r.Name], ps.Promotion = true, true
					ps.Forward += fmt.Sprintf(" — promotion: route %s sends 100 %% to its canary (%s) and nothing to stable", r.Name, r.Canary)
				}
			}
		case s.Traffic != nil:
			weights[s.Traffic.Route] = s.Traffic.Weights
			for _, r := range rb.Routes {
				if r.Name == s.Traffic.Route && promoted[r.Name] && s.Traffic.Weights[r.Stable] == 100 {
					ps.Promotion = true
					ps.Forward += fmt.Sprintf(" — promotion: route %s back on the promoted stable (%s); the canary (%s) stays idle at the same version", r.Name, r.Stable, r.Canary)
				}
			}
		}
		if s.Irreversible {
			ps.Compensation = "none: irreversible"
			if !pivot {
				ps.PointOfNoReturn = true
				ps.Compensation += " (point of no return: earlier compensations are discarded once it is applied)"
			}
			pivot = true
		}
		out = append(out, ps)
	}
	return out
}

func describeStep(rb *Runbook, s Step) (forward, compensation string) {
	switch {
	case s.Migrate != nil:
		m := s.Migrate
		target := "the highest version"
		if m.Version > 0 {
			target = fmt.Sprintf("version %d", m.Version)
		}
		phase := ""
		if m.Phase != "" {
			phase = " (" + m.Phase + ")"
		}
		forward = fmt.Sprintf("migrate database %s up to %s in %s%s; record what each file creates (tables, columns)", m.Database, target, safeText(m.Dir), phase)
		switch m.RollbackPolicy() {
		case OnRollbackKeep:
			compensation = fmt.Sprintf("keep the schema of database %s as migrated (onRollback: keep%s): the stable version runs on it, data stays in the live tables, a later deployment re-applies nothing", m.Database, defaultNote(m))
		case OnRollbackDrop:
			compensation = fmt.Sprintf("DATA-DESTROYING: migrate database %s down to the version captured before the step without preserving the data of the tables and columns these migrations created (onRollback: drop)", m.Database)
		default:
			compensation = fmt.Sprintf("migrate database %s down to the version captured before the step, file by file; before each Down, copy the rows of the tables the file created and the values of the columns it added (with the primary key) into the rollbook_archive schema (onRollback: archive%s)", m.Database, defaultNote(m))
		}
		return forward, compensation
	case s.Consul != nil:
		var parts []string
		for _, op := range s.Consul.Ops() {
			if op.Delete {
				parts = append(parts, "delete "+safeText(op.Key))
			} else {
				parts = append(parts, fmt.Sprintf("set %s=%s", safeText(op.Key), quoteShort(op.Value)))
			}
		}
		return "consul: " + strings.Join(parts, ", ") + " (one transaction, check-and-set)",
			"restore the captured values of these keys (delete keys that did not exist), check-and-set"
	case s.Traffic != nil:
		var parts []string
		for _, w := range SortedWeights(s.Traffic.Weights) {
			parts = append(parts, fmt.Sprintf("%s=%d%%", w.Subset, w.Percent))
		}
		where := s.Traffic.Route
		for _, r := range rb.Routes {
			if r.Name == s.Traffic.Route {
				where = fmt.Sprintf("%s (router %s, backend %s)", r.Name, r.Router, r.Backend)
			}
		}
		comp := "restore the captured weights of route " + s.Traffic.Route
		if rb.Rollback != nil && rb.Rollback.Traffic != nil {
			comp += fmt.Sprintf(" gradually through canary %v every %s", rb.Rollback.Traffic.Steps, rb.Rollback.Traffic.Interval)
		}
		return "set weights of route " + where + ": " + strings.Join(parts, " "), comp
	case s.Verify != nil:
		v := s.Verify
		interval := v.Interval.D()
		if interval == 0 {
			interval = DefaultVerifyInterval
		}
		return fmt.Sprintf("verify for %s every %s: %s", fmtDur(v.Duration.D()), fmtDur(interval), DescribeChecks(v.Checks)),
			"none (a failed verification rolls back)"
	case s.Pause != nil:
		p := s.Pause
		if p.Approval {
			f := "wait for an approve signal"
			if p.Timeout > 0 {
				f += fmt.Sprintf(" (roll back after %s)", fmtDur(p.Timeout.D()))
			}
			return f, "none"
		}
		return "wait " + fmtDur(p.Duration.D()), "none"
	case s.Release != nil:
		return describeRelease(s)
	}
	return "invalid step", "none"
}

// defaultNote says when a policy comes from the phase's default.
func defaultNote(m *MigrateStep) string {
	if m.OnRollback != "" {
		return ""
	}
	if m.Phase != "" {
		return ", the default for phase " + m.Phase
	}
	return ", the default"
}

// DescribeChecks lists checks for a plan: "a (http GET …); b (router …)".
func DescribeChecks(checks []Check) string {
	parts := make([]string, len(checks))
	for i, c := range checks {
		parts[i] = DescribeCheck(c)
	}
	return strings.Join(parts, "; ")
}

// DescribeCheck says what a check does, with what it reaches: for an http
// check its method and URL (or endpoint and path), so that a reviewer of
// the plan sees every request the worker will send.
func DescribeCheck(c Check) string {
	var what string
	switch {
	case c.HTTP != nil:
		h := c.HTTP
		method := h.Method
		if method == "" {
			method = "GET"
		}
		target := safeText(h.URL)
		if h.URL == "" {
			path := h.Path
			if path == "" {
				path = "/"
			}
			target = "endpoint " + safeText(h.Endpoint) + " " + safeText(path)
		}
		what = "http " + method + " " + target
		if h.Samples > 1 {
			what += fmt.Sprintf(" ×%d", h.Samples)
		}
	case c.Prometheus != nil:
		server := c.Prometheus.Server
		if server == "" {
			server = "default"
		}
		what = fmt.Sprintf("prometheus %s: %s", safeText(server), quoteShort(c.Prometheus.Query))
		if c.Prometheus.Min != nil {
			what += fmt.Sprintf(" ≥ %g", *c.Prometheus.Min)
		}
		if c.Prometheus.Max != nil {
			what += fmt.Sprintf(" ≤ %g", *c.Prometheus.Max)
		}
	case c.Router != nil:
		what = fmt.Sprintf("router: route %s subset %s error rate ≤ %g", safeText(c.Router.Route), safeText(c.Router.Subset), c.Router.MaxErrorRate)
		if c.Continuous {
			window := "the interval"
			if c.Window > 0 {
				window = fmtDur(c.Window.D())
			}
			what += ", watched continuously over a sliding window of " + window + ", or the subset marked DOWN"
		}
	case c.Compare != nil:
		what = "compare canary with baseline on route " + safeText(c.Compare.Route)
	default:
		what = "invalid check"
	}
	return safeText(c.Name) + " (" + what + ")"
}

// safeText returns s when it is printable ASCII, else s quoted with
// non-ASCII escaped: a plan is read in terminals and pull requests, where
// a control or bidi character could hide or reorder text.
func safeText(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return quoteShort(s)
		}
	}
	return truncateRunes(s, 2*maxQuotedRunes)
}
