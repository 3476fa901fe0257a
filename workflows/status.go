package workflows

import (
	"fmt"
	"strings"

	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/internal/clip"
	"github.com/rollbook/rollbook/runbook"
)

// maxRounds bounds the measurement rounds kept for the status query, so a
// verification that runs for hours does not grow it without limit.
const maxRounds = 50

// maxIgnored bounds the ignored-signal log in the status query.
const maxIgnored = 50

func (d *deployment) snapshot() Status {
	s := d.status
	s.Paused = d.paused
	s.WaitingFor = d.waitingFor()
	s.Compensations = d.comps
	return s
}

func (d *deployment) waitingFor() string {
	switch {
	case d.stuckStep != "":
		return fmt.Sprintf("an operator: retry or skip the compensation of step %s", d.stuckStep)
	case d.waitingApproval != "":
		return fmt.Sprintf("approval of step %s", d.waitingApproval)
	case d.paused:
		return "resume"
	}
	// A compensation that failed and is being retried (Consul or the database
	// down): without this the status and the Web UI's current details only
	// said "rolling-back" for minutes, and an operator could not tell an
	// outage from a hang. Neither is recorded in history, so replay is safe.
	for i := range d.comps {
		if c := &d.comps[i]; c.State == CompRunning && c.Error != "" {
			return fmt.Sprintf("the compensation of step %s to succeed (%s): %s", c.Step, c.Detail, clip.Ellipsis(c.Error, 300))
		}
	}
	return ""
}

// setPhase records a phase change everywhere an operator looks: the status
// query, the RollbookPhase search attribute (so the Web UI list can filter on
// it) and the workflow's current details.
func (d *deployment) setPhase(ctx workflow.Context, phase Phase) {
	changed := d.status.Phase != phase
	d.status.Phase = phase
	if changed {
		d.notify(phase)
		if err := workflow.UpsertTypedSearchAttributes(ctx,
			SAService.ValueSet(d.rb.Service),
			SAVersion.ValueSet(d.in.Version),
			SAPhase.ValueSet(string(phase)),
		); err != nil {
			d.log.Warn("Could not upsert search attributes", "error", err)
		}
	}
	d.updateDetails(ctx)
}

// updateDetails writes the Web UI's "current details": what is happening,
// what the deployment waits for and how to stop it.
func (d *deployment) updateDetails(ctx workflow.Context) {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s** %s — phase **%s**", d.rb.Service, d.in.Version, d.status.Phase)
	if d.status.CurrentStep != "" {
		fmt.Fprintf(&b, ", step `%s`", d.status.CurrentStep)
	}
	b.WriteString("\n\n")
	if d.status.Reason != "" {
		fmt.Fprintf(&b, "Reason: %s\n\n", d.status.Reason)
	}
	if w := d.waitingFor(); w != "" {
		fmt.Fprintf(&b, "Waiting for %s.\n\n", w)
	}
	if p := d.preservedNote(); p != "" {
		fmt.Fprintf(&b, "Data preserved: %s\n\n", clip.Ellipsis(p, 600))
	}
	for _, s := range d.status.Steps {
		fmt.Fprintf(&b, "- %s `%s` (%s)", stateMark(s.State), s.Name, s.Kind)
		if s.Detail != "" {
			fmt.Fprintf(&b, ": %s", clip.Ellipsis(s.Detail, 200))
		}
		b.WriteString("\n")
	}
	if !d.finished && !d.rollingBack {
		fmt.Fprintf(&b, "\nTo abort: `rollbook abort %s --reason \"…\"`, or send the signal `abort` with input `{\"reason\":\"…\"}`.\n", d.rb.Service)
	}
	if d.stuckStep != "" {
		fmt.Fprintf(&b, "\nTo continue: `rollbook retry %s` or `rollbook skip %s --step %s` (signals `retry` / `skip`).\n", d.rb.Service, d.rb.Service, d.stuckStep)
	}
	workflow.SetCurrentDetails(ctx, b.String())
}

func stateMark(s StepState) string {
	switch s {
	case StepPassed, StepApplied, StepCommitted:
		return "✔"
	case StepFailed:
		return "✘"
	case StepRunning:
		return "▶"
	case StepCompensated:
		return "↩"
	case StepCancelled, StepSkipped:
		return "■"
	}
	return "·"
}

func (d *deployment) beginStep(ctx workflow.Context, i int) {
	d.status.CurrentStep = d.rb.Steps[i].Name
	st := &d.status.Steps[i]
	st.State = StepRunning
	st.StartedAt = workflow.Now(ctx)
	d.log.Info("Step started", "step", st.Name, "kind", st.Kind)
	d.updateDetails(ctx)
}

func (d *deployment) endStep(ctx workflow.Context, i int, state StepState, detail string) {
	st := &d.status.Steps[i]
	st.State = state
	st.EndedAt = workflow.Now(ctx)
	d.timeStep(ctx, st.Kind, state, st.EndedAt.Sub(st.StartedAt))
	if detail != "" {
		st.Detail = detail
	}
	d.log.Info("Step ended", "step", st.Name, "state", state, "detail", detail)
	d.updateDetails(ctx)
}

func (d *deployment) stepIndex(name string) int {
	for i, s := range d.rb.Steps {
		if s.Name == name {
			return i
		}
	}
	return -1
}

func (d *deployment) recordRound(r Round) {
	d.status.Rounds = append(d.status.Rounds, r)
	if n := len(d.status.Rounds); n > maxRounds {
		d.status.Rounds = append([]Round(nil), d.status.Rounds[n-maxRounds:]...)
	}
}

func (d *deployment) ignore(ctx workflow.Context, signal, why string) {
	d.log.Info("Ignoring signal", "signal", signal, "why", why)
	d.status.Ignored = append(d.status.Ignored, IgnoredSignal{Signal: signal, At: workflow.Now(ctx), Why: why})
	if n := len(d.status.Ignored); n > maxIgnored {
		d.status.Ignored = append([]IgnoredSignal(nil), d.status.Ignored[n-maxIgnored:]...)
	}
}

func originString(o runbook.Origin) string {
	var parts []string
	if o.User != "" {
		parts = append(parts, o.User)
	}
	if o.CIJob != "" {
		parts = append(parts, "ci:"+o.CIJob)
	}
	if o.Host != "" {
		parts = append(parts, "@"+o.Host)
	}
	return strings.Join(parts, " ")
}
