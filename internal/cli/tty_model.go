package cli

import (
	"fmt"
	"strings"
	"time"

	progressbar "charm.land/bubbles/v2/progress"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/rollbook/rollbook/runbook"
	"github.com/rollbook/rollbook/workflows"
)

// statusMsg carries a status query answer into the live view.
type statusMsg struct{ st workflows.Status }

// resultMsg carries the run's result: the view shows it and stops.
type resultMsg struct{ res workflows.Result }

// liveModel is the bubbletea model of the live view. It only ever receives
// statuses, the result and the window size: it takes no keyboard input.
type liveModel struct {
	rb    *runbook.Runbook
	link  string
	st    workflows.Status
	seen  bool
	now   time.Time
	width int
	done  bool
	bar   progressbar.Model
	sty   liveStyles
	// rounds holds each step's round verdicts by round number, from
	// every status seen.
	rounds map[string]map[int]string
}

type liveStyles struct {
	title, dim, bold, ok, bad, run, warn lipgloss.Style
}

// newLiveModel styles with the 16 basic colours; Bubble Tea adapts them to
// what the terminal supports (none with NO_COLOR or TERM=dumb).
func newLiveModel(rb *runbook.Runbook, link string) liveModel {
	r := lipgloss.NewStyle()
	return liveModel{
		rb: rb, link: link, width: 100, now: time.Now(), rounds: map[string]map[int]string{},
		bar: progressbar.New(progressbar.WithColors(lipgloss.Color("6")), progressbar.WithoutPercentage(), progressbar.WithWidth(32),
			progressbar.WithFillCharacters('█', '░')),
		sty: liveStyles{
			title: r.Bold(true).Foreground(lipgloss.Color("6")),
			dim:   r.Faint(true),
			bold:  r.Bold(true),
			ok:    r.Foreground(lipgloss.Color("2")),
			bad:   r.Foreground(lipgloss.Color("1")).Bold(true),
			run:   r.Foreground(lipgloss.Color("3")),
			warn:  r.Foreground(lipgloss.Color("5")),
		},
	}
}

func (m liveModel) Init() tea.Cmd { return nil }

func (m liveModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		if msg.Width > 0 {
			m.width = msg.Width
		}
	case statusMsg:
		m.st, m.seen, m.now = msg.st, true, time.Now()
		m.countRounds()
	case resultMsg:
		m.st, m.seen, m.now, m.done = fromResult(m.st, msg.res), true, time.Now(), true
		return m, tea.Quit
	}
	return m, nil
}

func (m liveModel) countRounds() {
	for _, r := range m.st.Rounds {
		if r.Round <= 0 {
			continue
		}
		if m.rounds[r.Step] == nil {
			m.rounds[r.Step] = map[int]string{}
		}
		m.rounds[r.Step][r.Round] = roundVerdict(r)
	}
}

// fromResult folds the result into the last status, so the last frame shows
// the final step and compensation states and the outcome as the phase.
func fromResult(st workflows.Status, r workflows.Result) workflows.Status {
	st.Service, st.Version, st.Phase, st.Outcome = r.Service, r.Version, r.Outcome, r.Outcome
	st.Reason, st.WaitingFor, st.CurrentStep, st.Paused = r.Reason, "", "", false
	if len(r.Steps) > 0 {
		st.Steps = r.Steps
	}
	st.Compensations = r.Compensations
	if !r.StartedAt.IsZero() {
		st.StartedAt = r.StartedAt
	}
	return st
}

// View renders the frame. It ends with an empty line because bubbletea
// erases the line under the cursor when it stops.
func (m liveModel) View() tea.View {
	var b strings.Builder
	m.header(&b)
	if m.seen {
		m.steps(&b)
		m.verification(&b)
		m.weights(&b)
		m.measurement(&b)
		m.compensations(&b)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	for i, l := range lines {
		lines[i] = lipgloss.NewStyle().MaxWidth(m.width).Render(l)
	}
	return tea.NewView(strings.Join(lines, "\n") + "\n\n")
}

func (m liveModel) header(b *strings.Builder) {
	service, version := m.st.Service, m.st.Version
	if service == "" && m.rb != nil {
		service = m.rb.Service
	}
	fmt.Fprintf(b, "%s %s %s  %s", m.sty.title.Render("rollbook"), m.sty.bold.Render(service), version, m.phaseStyle(m.st.Phase).Render(string(orPhase(m.st.Phase))))
	if !m.st.StartedAt.IsZero() {
		fmt.Fprintf(b, "  %s", m.sty.dim.Render(shortDur(m.now.Sub(m.st.StartedAt))))
	}
	b.WriteString("\n")
	// A link longer than the line goes on a line of its own, so that it
	// is cut as little as possible.
	sep := " "
	if len("Web UI: "+m.link) > m.width {
		sep = "\n"
	}
	fmt.Fprintf(b, "%s%s%s\n", m.sty.dim.Render("Web UI:"), sep, m.link)
	if m.st.WaitingFor != "" {
		fmt.Fprintf(b, "%s %s\n", m.sty.warn.Render("waiting for"), m.st.WaitingFor)
	}
	if m.st.Reason != "" {
		fmt.Fprintf(b, "%s %s\n", m.sty.bad.Render("reason:"), m.st.Reason)
	}
}

func orPhase(p workflows.Phase) workflows.Phase {
	if p == "" {
		return "starting"
	}
	return p
}

func (m liveModel) phaseStyle(p workflows.Phase) lipgloss.Style {
	switch p {
	case workflows.OutcomeSucceeded:
		return m.sty.ok.Bold(true)
	case workflows.PhaseRollingBack, workflows.PhaseRollbackStuck, workflows.OutcomeRolledBack, workflows.OutcomeAborted,
		workflows.OutcomeRollbackFailed, workflows.OutcomeFailedAfterCommit:
		return m.sty.bad
	case workflows.PhasePaused:
		return m.sty.warn
	}
	return m.sty.run.Bold(true)
}

func (m liveModel) steps(b *strings.Builder) {
	b.WriteString("\n" + m.sty.bold.Render("Steps") + "\n")
	nameW := m.nameWidth()
	for _, s := range m.st.Steps {
		mark, sty := m.stepMark(s.State)
		fmt.Fprintf(b, "  %s %-*s %-8s %s %7s", sty.Render(mark), nameW, s.Name, s.Kind, sty.Render(fmt.Sprintf("%-11s", s.State)), m.stepDur(s))
		if s.Detail != "" {
			fmt.Fprintf(b, "  %s", m.sty.dim.Render(s.Detail))
		}
		b.WriteString("\n")
	}
}

// nameWidth aligns the step and compensation lists on the longest name.
func (m liveModel) nameWidth() int {
	w := 4
	for _, s := range m.st.Steps {
		w = max(w, len(s.Name))
	}
	return w
}

func (m liveModel) stepMark(s workflows.StepState) (string, lipgloss.Style) {
	switch s {
	case workflows.StepPassed, workflows.StepApplied, workflows.StepCommitted:
		return "✔", m.sty.ok
	case workflows.StepFailed:
		return "✘", m.sty.bad
	case workflows.StepRunning:
		return "▶", m.sty.run
	case workflows.StepCompensated:
		return "↩", m.sty.warn
	case workflows.StepCancelled, workflows.StepSkipped:
		return "■", m.sty.dim
	}
	return "·", m.sty.dim
}

// stepDur is how long a step ran (so far). A compensated step shows none:
// its end time is the compensation's, which the rollback panel shows.
func (m liveModel) stepDur(s workflows.StepStatus) string {
	switch {
	case s.StartedAt.IsZero(), s.State == workflows.StepCompensated:
		return ""
	case s.EndedAt.IsZero() && s.State == workflows.StepRunning:
		return shortDur(m.now.Sub(s.StartedAt))
	case !s.EndedAt.IsZero():
		return shortDur(s.EndedAt.Sub(s.StartedAt))
	}
	return ""
}

// shortDur rounds a duration for the eye: tenths under a minute, seconds
// above.
func shortDur(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}
