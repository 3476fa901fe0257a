package workflows

import (
	"fmt"
	"strings"

	"github.com/rollbook/rollbook/runbook"
)

// Summary is the one-line static summary the Web UI shows for a deployment.
func Summary(b *runbook.Bundle) string {
	s := fmt.Sprintf("deploy %s %s", b.Runbook.Service, b.Version)
	if o := originString(b.StartedBy); o != "" {
		s += " by " + o
	}
	return s
}

// Details renders the runbook as Markdown for the Web UI's static details,
// so the workflow page reads like the runbook.
func Details(b *runbook.Bundle) string {
	rb := &b.Runbook
	var w strings.Builder
	fmt.Fprintf(&w, "## %s %s\n\n", rb.Service, b.Version)
	if rb.Description != "" {
		fmt.Fprintf(&w, "%s\n\n", rb.Description)
	}
	fmt.Fprintf(&w, "Runbook `%s`, hash `%.12s`", b.Source, b.Hash)
	if o := originString(b.StartedBy); o != "" {
		fmt.Fprintf(&w, ", started by %s", o)
	}
	if b.StartedBy.CIURL != "" {
		fmt.Fprintf(&w, " ([CI job](%s))", b.StartedBy.CIURL)
	}
	w.WriteString("\n\n| # | step | kind | what |\n|---|---|---|---|\n")
	for i, s := range rb.Steps {
		what := ""
		switch s.Kind() {
		case runbook.KindMigrate:
			what = fmt.Sprintf("migrate `%s` from `%s`", s.Migrate.Database, s.Migrate.Dir)
			if s.Migrate.Version > 0 {
				what += fmt.Sprintf(" to %d", s.Migrate.Version)
			}
			if !s.Irreversible {
				what += "; on rollback: " + s.Migrate.RollbackPolicy()
			}
		case runbook.KindConsul:
			what = fmt.Sprintf("%d Consul keys", len(s.Consul.Ops()))
		case runbook.KindTraffic:
			what = fmt.Sprintf("route `%s`: %s", s.Traffic.Route, runbook.FormatWeights(s.Traffic.Weights))
		case runbook.KindVerify:
			what = fmt.Sprintf("%d checks for %s", len(s.Verify.Checks), s.Verify.Duration)
		case runbook.KindRelease:
			what = releaseSummary(s)
		case runbook.KindPause:
			if s.Pause.Approval {
				what = "wait for approval"
			} else {
				what = "wait " + s.Pause.Duration.String()
			}
		}
		if s.Irreversible {
			what += " — **point of no return**"
		}
		fmt.Fprintf(&w, "| %d | `%s` | %s | %s |\n", i+1, s.Name, s.Kind(), what)
	}
	fmt.Fprintf(&w, "\nAbort: send the signal `abort` with input `{\"reason\":\"…\"}` (or `rollbook abort %s --reason …`).\n", rb.Service)
	return w.String()
}
