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

func writePlan(w io.Writer, rb *runbook.Runbook) {
	fmt.Fprintf(w, "Plan for %s (%d steps)\n", rb.Service, len(rb.Steps))
	if rb.Deadline > 0 {
		fmt.Fprintf(w, "Deadline: %s (then roll back)\n", rb.Deadline)
	}
	if a := rb.Analysis; a != nil {
		fmt.Fprintf(w, "Background analysis from step %s: %d checks\n", a.From, len(a.Checks))
	}
	fmt.Fprintln(w)
	for i, l := range plan(rb) {
		fmt.Fprintf(w, "%2d. %s [%s]\n    do:   %s\n    undo: %s\n", i+1, l.Name, l.Kind, l.Forward, l.Compensation)
		if l.Warning != "" {
			fmt.Fprintf(w, "    WARNING: %s\n", l.Warning)
		}
		if l.PointOfNoReturn {
			fmt.Fprintln(w, "    ---- POINT OF NO RETURN: from here on a failure waits for a human instead of rolling back ----")
		}
	}
	fmt.Fprintln(w, "\nOn failure or abort, the undo actions of applied steps run in reverse order.")
}

func writePlanMarkdown(w io.Writer, rb *runbook.Runbook) {
	fmt.Fprintf(w, "### rollbook plan: `%s`\n\n| # | step | kind | do | undo |\n|---|---|---|---|---|\n", rb.Service)
	for i, l := range plan(rb) {
		name := "`" + l.Name + "`"
		if l.PointOfNoReturn {
			name += " ⚠️ point of no return"
		}
		undo := mdEscape(l.Compensation)
		if l.Warning != "" {
			undo = "⚠️ **" + mdEscape(l.Warning) + "** " + undo
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s |\n", i+1, name, l.Kind, mdEscape(l.Forward), undo)
	}
	fmt.Fprintln(w, "\nOn failure or abort, the undo actions of applied steps run in reverse order.")
}

// plan is runbook.Plan, with the steps after the point of no return marked:
// their compensations never run.
func plan(rb *runbook.Runbook) []runbook.PlanStep {
	steps := runbook.Plan(rb)
	pivot := false
	for i := range steps {
		if pivot && !steps[i].Irreversible && steps[i].Compensation != "none" {
			steps[i].Compensation = "none after the point of no return (would have been: " + steps[i].Compensation + ")"
		}
		if steps[i].PointOfNoReturn {
			pivot = true
		}
	}
	return steps
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
