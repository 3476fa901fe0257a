package cli

import (
	"fmt"
	"time"

	"github.com/rollbook/rollbook/runbook"
	"github.com/rollbook/rollbook/workflows"
)

// progressView shows a followed deployment: plain or JSON lines
// (progress), or the live terminal view (ttyView).
type progressView interface {
	// update shows a status query answer.
	update(st workflows.Status)
	// final shows the run's result; the view is closed after it.
	final(r workflows.Result)
	// notice shows a message of the CLI itself (an interrupt).
	notice(msg string)
	// close stops a live view, leaving its last frame on the screen;
	// idempotent.
	close()
}

// newProgressView picks the live view on a terminal (unless --json or
// TERM=dumb), plain lines otherwise.
func (a *app) newProgressView(json bool, rb *runbook.Runbook, link string, src deploymentSource) progressView {
	if !json && a.liveTerminal() {
		return newTTYView(a, rb, link, src)
	}
	return newProgress(a, json)
}

// progress prints one line per change of phase, step state or compensation
// state — plain lines that read well in CI logs, or JSON lines.
type progress struct {
	a      *app
	json   bool
	phase  workflows.Phase
	steps  map[string]workflows.StepState
	comps  map[string]string
	rounds int
}

func newProgress(a *app, json bool) *progress {
	return &progress{a: a, json: json, steps: map[string]workflows.StepState{}, comps: map[string]string{}}
}

func (p *progress) emit(kind, name, state, detail string) {
	if p.json {
		p.a.jsonLine(map[string]any{"event": kind, "name": name, "state": state, "detail": detail, "at": time.Now().UTC().Format(time.RFC3339Nano)})
		return
	}
	line := fmt.Sprintf("%s %-13s %-24s %s", time.Now().Format("15:04:05"), kind, name, state)
	if detail != "" {
		line += "  " + detail
	}
	fmt.Fprintln(p.a.out, line)
}

func (p *progress) update(st workflows.Status) {
	if st.Phase != p.phase {
		p.phase = st.Phase
		p.emit("phase", string(st.Phase), "", st.WaitingFor)
	}
	for _, s := range st.Steps {
		if p.steps[s.Name] != s.State {
			p.steps[s.Name] = s.State
			if s.State != workflows.StepPending {
				p.emit("step", s.Name, string(s.State), s.Detail)
			}
		}
	}
	for _, c := range st.Compensations {
		if p.comps[c.Step] != string(c.State) {
			p.comps[c.Step] = string(c.State)
			if c.State != workflows.CompPending {
				detail := c.Detail
				if c.Error != "" {
					detail = c.Error
				}
				p.emit("undo", c.Step, string(c.State), detail)
			}
		}
	}
	for _, r := range st.Rounds {
		if r.Round <= 0 {
			continue
		}
		for _, j := range r.Judgement {
			if j.Verdict == workflows.JudgeFail {
				key := fmt.Sprintf("%s/%d/%s", r.Step, r.Round, j.Check)
				if p.comps["round:"+key] == "" {
					p.comps["round:"+key] = "seen"
					p.emit("check", j.Check, j.Verdict, j.Reason)
				}
			}
		}
	}
}

func (p *progress) notice(msg string) { fmt.Fprint(p.a.errOut, msg) }

func (p *progress) close() {}

func (p *progress) final(r workflows.Result) {
	if p.json {
		p.a.jsonLine(map[string]any{"event": "result", "result": r})
		return
	}
	fmt.Fprintf(p.a.out, "outcome: %s", r.Outcome)
	if r.FailedStep != "" {
		fmt.Fprintf(p.a.out, " (failed step %s)", r.FailedStep)
	}
	if r.Reason != "" {
		fmt.Fprintf(p.a.out, ": %s", r.Reason)
	}
	fmt.Fprintln(p.a.out)
	if !r.RollbackStartedAt.IsZero() {
		fmt.Fprintf(p.a.out, "rollback took %s\n", r.RollbackEndedAt.Sub(r.RollbackStartedAt).Round(time.Millisecond))
	}
	for _, c := range r.Compensations {
		fmt.Fprintf(p.a.out, "  undo %-24s %s %s\n", c.Step, c.State, c.Detail)
	}
	for _, pr := range r.Problems {
		fmt.Fprintf(p.a.out, "  preflight: %s\n", pr)
	}
}
