package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rollbook/rollbook/runbook"
)

func (a *app) planCommand() *cobra.Command {
	var markdown bool
	cmd := &cobra.Command{
		Use:   "plan FILE",
		Short: "Print each forward step and its compensation, touching nothing",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rb, err := runbook.Load(args[0])
			if err != nil {
				fmt.Fprintln(a.errOut, err)
				return exitf(ExitBadInput, "%s is invalid; nothing planned", args[0])
			}
			if markdown {
				writePlanMarkdown(a.out, rb)
			} else {
				writePlan(a.out, rb)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&markdown, "markdown", false, "render the plan as Markdown (for a pull-request comment)")
	return cmd
}

// PlanLine is one step of a plan: what it does and how it is undone.
type PlanLine struct {
	Step         string
	Kind         string
	Forward      string
	Compensation string
	// PointOfNoReturn is set on the irreversible step after which failures
	// no longer roll back.
	PointOfNoReturn bool
}

// BuildPlan describes every step and its compensation.
func BuildPlan(rb *runbook.Runbook) []PlanLine {
	routes := map[string]runbook.Route{}
	for _, r := range rb.Routes {
		routes[r.Name] = r
	}
	var lines []PlanLine
	pivotSeen := false
	for _, s := range rb.Steps {
		l := PlanLine{Step: s.Name, Kind: s.Kind()}
		switch s.Kind() {
		case runbook.KindMigrate:
			m := s.Migrate
			target := "the latest version"
			if m.Version > 0 {
				target = fmt.Sprintf("version %d", m.Version)
			}
			phase := ""
			if m.Phase != "" {
				phase = " [" + m.Phase + "]"
			}
			l.Forward = fmt.Sprintf("migrate database %s up to %s from %s%s", m.Database, target, m.Dir, phase)
			l.Compensation = fmt.Sprintf("migrate %s down to the version captured before", m.Database)
		case runbook.KindConsul:
			var parts []string
			for _, op := range s.Consul.Ops() {
				if op.Delete {
					parts = append(parts, "delete "+op.Key)
				} else {
					parts = append(parts, fmt.Sprintf("set %s=%q", op.Key, truncateText(op.Value, 40)))
				}
			}
			l.Forward = "Consul KV, one transaction: " + strings.Join(parts, ", ")
			l.Compensation = "restore the captured values (delete keys that did not exist), check-and-set"
		case runbook.KindTraffic:
			r := routes[s.Traffic.Route]
			var parts []string
			for _, w := range runbook.SortedWeights(s.Traffic.Weights) {
				parts = append(parts, fmt.Sprintf("%s=%d%%", w.Subset, w.Percent))
			}
			l.Forward = fmt.Sprintf("route %s (%s on router %s): %s", r.Name, r.Backend, r.Router, strings.Join(parts, " "))
			l.Compensation = "restore the captured weights"
		case runbook.KindVerify:
			var names []string
			for _, c := range s.Verify.Checks {
				names = append(names, c.Name+" ("+c.Kind()+")")
			}
			interval := s.Verify.Interval
			if interval == 0 {
				interval = runbook.Duration(10e9)
			}
			l.Forward = fmt.Sprintf("verify for %s every %s: %s", s.Verify.Duration, interval, strings.Join(names, ", "))
			l.Compensation = "none; a failure rolls back"
		case runbook.KindPause:
			if s.Pause.Approval {
				l.Forward = "wait for approval"
				if s.Pause.Timeout > 0 {
					l.Forward += " (at most " + s.Pause.Timeout.String() + ")"
				}
			} else {
				l.Forward = "wait " + s.Pause.Duration.String()
			}
			l.Compensation = "none"
		}
		if pivotSeen {
			l.Compensation = "none: after the point of no return, a failure waits for a human"
		}
		if s.Irreversible {
			l.PointOfNoReturn = true
			l.Compensation = "none: irreversible; once applied, earlier steps are no longer rolled back"
			pivotSeen = true
		}
		lines = append(lines, l)
	}
	return lines
}

func writePlan(w io.Writer, rb *runbook.Runbook) {
	fmt.Fprintf(w, "Plan for %s (%d steps)\n", rb.Service, len(rb.Steps))
	if rb.Deadline > 0 {
		fmt.Fprintf(w, "Deadline: %s (then roll back)\n", rb.Deadline)
	}
	if a := rb.Analysis; a != nil {
		fmt.Fprintf(w, "Background analysis from step %s: %d checks\n", a.From, len(a.Checks))
	}
	fmt.Fprintln(w)
	for i, l := range BuildPlan(rb) {
		fmt.Fprintf(w, "%2d. %s [%s]\n    do:   %s\n    undo: %s\n", i+1, l.Step, l.Kind, l.Forward, l.Compensation)
		if l.PointOfNoReturn {
			fmt.Fprintln(w, "    ---- POINT OF NO RETURN ----")
		}
	}
	fmt.Fprintln(w, "\nOn failure or abort, the undo actions of applied steps run in reverse order.")
}

func writePlanMarkdown(w io.Writer, rb *runbook.Runbook) {
	fmt.Fprintf(w, "### rollbook plan: `%s`\n\n| # | step | kind | do | undo |\n|---|---|---|---|---|\n", rb.Service)
	for i, l := range BuildPlan(rb) {
		name := "`" + l.Step + "`"
		if l.PointOfNoReturn {
			name += " ⚠️ point of no return"
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s |\n", i+1, name, l.Kind, mdEscape(l.Forward), mdEscape(l.Compensation))
	}
	fmt.Fprintln(w, "\nOn failure or abort, the undo actions of applied steps run in reverse order.")
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
