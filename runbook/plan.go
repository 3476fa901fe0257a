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
}

// Plan lists the steps of a (valid) runbook with their forward action and
// compensation.
func Plan(rb *Runbook) []PlanStep {
	out := make([]PlanStep, 0, len(rb.Steps))
	pivot := false
	for _, s := range rb.Steps {
		ps := PlanStep{Name: s.Name, Kind: s.Kind(), Irreversible: s.Irreversible}
		ps.Forward, ps.Compensation = describeStep(rb, s)
		if s.Migrate != nil && !s.Irreversible {
			ps.OnRollback = s.Migrate.RollbackPolicy()
			if ps.OnRollback == OnRollbackDrop {
				ps.DataDestroying = true
				ps.Warning = fmt.Sprintf("onRollback: drop DESTROYS DATA: a rollback runs the Down sections of %s without preserving anything; rows written into the tables and columns these migrations create (by the canary, during the deployment) are lost. Use archive (the default outside expand) to keep them in the %s schema", s.Migrate.Dir, "rollbook_archive")
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
		forward = fmt.Sprintf("migrate database %s up to %s in %s%s; record what each file creates (tables, columns)", m.Database, target, m.Dir, phase)
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
				parts = append(parts, "delete "+op.Key)
			} else {
				parts = append(parts, fmt.Sprintf("set %s=%q", op.Key, truncate(op.Value, 40)))
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
		var names []string
		for _, c := range v.Checks {
			names = append(names, c.Name+" ("+c.Kind()+")")
		}
		return fmt.Sprintf("verify for %s every %s: %s", fmtDur(v.Duration.D()), fmtDur(interval), strings.Join(names, ", ")),
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

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
