package cli

import (
	"fmt"
	"strings"
	"time"

	"charm.land/lipgloss/v2"

	"github.com/rollbook/rollbook/runbook"
	"github.com/rollbook/rollbook/workflows"
)

// The live view's panels below the step list: the running verification or
// pause, the routes' weights, the last measurement and the rollback.

func (m liveModel) rbStep(name string) *runbook.Step {
	if m.rb == nil {
		return nil
	}
	for i := range m.rb.Steps {
		if m.rb.Steps[i].Name == name {
			return &m.rb.Steps[i]
		}
	}
	return nil
}

func (m liveModel) runningStep() *workflows.StepStatus {
	for i := range m.st.Steps {
		if m.st.Steps[i].State == workflows.StepRunning {
			return &m.st.Steps[i]
		}
	}
	return nil
}

// verification shows the running verify or pause step against its
// duration (the runbook's, which the CLI holds), with its rounds.
func (m liveModel) verification(b *strings.Builder) {
	s := m.runningStep()
	if s == nil || s.StartedAt.IsZero() {
		return
	}
	rs := m.rbStep(s.Name)
	if rs == nil || (rs.Verify == nil && rs.Pause == nil) {
		return
	}
	elapsed := m.now.Sub(s.StartedAt)
	var total time.Duration
	title := "Verifying " + s.Name
	switch {
	case rs.Verify != nil:
		total = rs.Verify.Duration.D()
	case rs.Pause.Approval:
		title, total = "Waiting for approval of "+s.Name, rs.Pause.Timeout.D()
	default:
		title, total = "Pausing at "+s.Name, rs.Pause.Duration.D()
	}
	fmt.Fprintf(b, "\n%s\n  ", m.sty.bold.Render(title))
	if total > 0 {
		fmt.Fprintf(b, "%s %s / %s", m.bar.ViewAs(min(1, float64(elapsed)/float64(total))), shortDur(elapsed), total)
	} else {
		fmt.Fprintf(b, "%s (no timeout)", shortDur(elapsed))
	}
	if rs.Verify != nil {
		passed, failed, other := m.roundCounts(s.Name)
		fmt.Fprintf(b, "  rounds: %s passed, %s failed", m.sty.ok.Render(fmt.Sprint(passed)), m.failStyle(failed).Render(fmt.Sprint(failed)))
		if other > 0 {
			fmt.Fprintf(b, ", %d inconclusive", other)
		}
	}
	b.WriteString("\n")
}

func (m liveModel) failStyle(n int) lipgloss.Style {
	if n > 0 {
		return m.sty.bad
	}
	return m.sty.ok
}

// roundCounts counts the measured rounds of a step by verdict. They are
// counted from every status seen, so rounds the workflow trimmed from its
// bounded list still count.
func (m liveModel) roundCounts(step string) (passed, failed, other int) {
	for _, v := range m.rounds[step] {
		switch v {
		case workflows.JudgePass:
			passed++
		case workflows.JudgeFail:
			failed++
		default:
			other++
		}
	}
	return passed, failed, other
}

// roundVerdict is a round's verdict: fail if any check failed, pass if all
// passed, inconclusive otherwise.
func roundVerdict(r workflows.Round) string {
	v := workflows.JudgePass
	for _, j := range r.Judgement {
		switch j.Verdict {
		case workflows.JudgeFail:
			return workflows.JudgeFail
		case workflows.JudgePass, workflows.JudgeBaseline:
		default:
			v = workflows.JudgeInconclusive
		}
	}
	return v
}

// routeWeights is one route's weights as the status last recorded them.
type routeWeights struct {
	route   string
	weights map[string]int
	note    string
}

// currentWeights derives each route's weights from the traffic steps'
// captured and applied weights: once a route's traffic step is compensated,
// the earliest compensated step's captured weights (compensations run last
// step first); else the last applied step's target; else, while the first
// step runs, the weights it captured. A gradual restore's intermediate
// stages are not in the status.
func (m liveModel) currentWeights() []routeWeights {
	var order []string
	byRoute := map[string]*routeWeights{}
	for _, s := range m.st.Steps {
		rs := m.rbStep(s.Name)
		if rs == nil || rs.Traffic == nil || s.Captured == nil || s.Captured.Weights == nil {
			continue
		}
		r := byRoute[rs.Traffic.Route]
		if r == nil {
			r = &routeWeights{route: rs.Traffic.Route}
			byRoute[r.route] = r
			order = append(order, r.route)
		}
		switch s.State {
		case workflows.StepCompensated:
			if r.note != "restored" {
				r.weights, r.note = s.Captured.Weights.Weights, "restored"
			}
		case workflows.StepApplied, workflows.StepPassed, workflows.StepCommitted:
			if r.note != "restored" {
				r.weights, r.note = s.Captured.WeightsSet, "set by "+s.Name
				if m.compState(s.Name) == workflows.CompRunning {
					r.note += ", being restored"
				}
			}
		default:
			if r.weights == nil {
				r.weights, r.note = s.Captured.Weights.Weights, "before "+s.Name
			}
		}
	}
	out := make([]routeWeights, 0, len(order))
	for _, name := range order {
		out = append(out, *byRoute[name])
	}
	return out
}

func (m liveModel) compState(step string) workflows.CompState {
	for _, c := range m.st.Compensations {
		if c.Step == step {
			return c.State
		}
	}
	return ""
}

func (m liveModel) weights(b *strings.Builder) {
	ws := m.currentWeights()
	if len(ws) == 0 {
		return
	}
	b.WriteString("\n" + m.sty.bold.Render("Weights") + "\n")
	for _, w := range ws {
		var parts []string
		for _, sw := range runbook.SortedWeights(w.weights) {
			parts = append(parts, fmt.Sprintf("%s %3d%%", sw.Subset, sw.Percent))
		}
		fmt.Fprintf(b, "  %-12s %s  %s\n", w.route, strings.Join(parts, "  "), m.sty.dim.Render("("+w.note+")"))
	}
}

func (m liveModel) measurement(b *strings.Builder) {
	if len(m.st.Rounds) == 0 {
		return
	}
	r := m.st.Rounds[len(m.st.Rounds)-1]
	round := fmt.Sprintf("round %d", r.Round)
	if r.Round <= 0 {
		round = "baseline"
	}
	fmt.Fprintf(b, "\n%s %s\n", m.sty.bold.Render("Last measurement"), m.sty.dim.Render(fmt.Sprintf("(%s, %s, %s)", r.Step, round, r.At.Local().Format("15:04:05"))))
	for _, j := range r.Judgement {
		sty := m.sty.dim
		switch j.Verdict {
		case workflows.JudgePass:
			sty = m.sty.ok
		case workflows.JudgeFail:
			sty = m.sty.bad
		case workflows.JudgeInconclusive:
			sty = m.sty.warn
		}
		fmt.Fprintf(b, "  %s %-20s %s", sty.Render(fmt.Sprintf("%-12s", j.Verdict)), j.Check, fmt.Sprintf("%.4g", j.Value))
		if j.Reason != "" {
			fmt.Fprintf(b, "  %s", j.Reason)
		}
		b.WriteString("\n")
	}
}

// compensations shows the rollback once one has begun, in the order the
// compensations run (the last step's first). Compensations discarded at
// the point of no return are no rollback: they are left out (the final
// summary lists them).
func (m liveModel) compensations(b *strings.Builder) {
	started := false
	for _, c := range m.st.Compensations {
		started = started || (c.State != workflows.CompPending && c.State != workflows.CompDiscarded)
	}
	if !started {
		return
	}
	b.WriteString("\n" + m.sty.bold.Render("Rollback") + "\n")
	for i := len(m.st.Compensations) - 1; i >= 0; i-- {
		c := m.st.Compensations[i]
		if c.State == workflows.CompDiscarded {
			continue
		}
		mark, sty := m.compMark(c.State)
		fmt.Fprintf(b, "  %s %-*s %-8s %s", sty.Render(mark), m.nameWidth(), c.Step, c.Kind, sty.Render(fmt.Sprintf("%-16s", c.State)))
		if !c.StartedAt.IsZero() && !c.EndedAt.IsZero() {
			fmt.Fprintf(b, " %7s", shortDur(c.EndedAt.Sub(c.StartedAt)))
		}
		if c.Attempts > 1 {
			fmt.Fprintf(b, "  attempt %d", c.Attempts)
		}
		if c.Error != "" {
			fmt.Fprintf(b, "  %s", m.sty.bad.Render(c.Error))
		} else if c.Detail != "" {
			fmt.Fprintf(b, "  %s", m.sty.dim.Render(c.Detail))
		}
		b.WriteString("\n")
	}
}

func (m liveModel) compMark(s workflows.CompState) (string, lipgloss.Style) {
	switch s {
	case workflows.CompDone, workflows.CompAlreadyRestored:
		return "↩", m.sty.ok
	case workflows.CompRunning:
		return "▶", m.sty.run
	case workflows.CompStuck:
		return "✘", m.sty.bad
	case workflows.CompSkipped, workflows.CompDiscarded:
		return "■", m.sty.dim
	}
	return "·", m.sty.dim
}
