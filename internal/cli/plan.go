package cli

import (
	"fmt"
	"io"
	"strings"
	"unicode"

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
		fmt.Fprintf(w, "Background analysis from step %s: %s\n", a.From, runbook.DescribeChecks(a.Checks))
	}
	if rv := rollbackVerify(rb); rv != nil {
		fmt.Fprintf(w, "After a rollback, verify: %s\n", runbook.DescribeChecks(rv.Checks))
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
	fmt.Fprintf(w, "### rollbook plan: %s\n\n", mdEscape(rb.Service))
	if a := rb.Analysis; a != nil {
		fmt.Fprintf(w, "Background analysis from step %s: %s\n\n", mdEscape(a.From), mdEscape(runbook.DescribeChecks(a.Checks)))
	}
	if rv := rollbackVerify(rb); rv != nil {
		fmt.Fprintf(w, "After a rollback, verify: %s\n\n", mdEscape(runbook.DescribeChecks(rv.Checks)))
	}
	fmt.Fprint(w, "| # | step | kind | do | undo |\n|---|---|---|---|---|\n")
	for i, l := range plan(rb) {
		name := mdEscape(l.Name)
		if l.PointOfNoReturn {
			name += " ⚠️ point of no return"
		}
		undo := mdEscape(l.Compensation)
		if l.Warning != "" {
			undo = "⚠️ **" + mdEscape(l.Warning) + "** " + undo
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s |\n", i+1, name, mdEscape(l.Kind), mdEscape(l.Forward), undo)
	}
	fmt.Fprintln(w, "\nOn failure or abort, the undo actions of applied steps run in reverse order.")
}

func rollbackVerify(rb *runbook.Runbook) *runbook.VerifyStep {
	if rb.Rollback == nil {
		return nil
	}
	return rb.Rollback.Verify
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

// mdEscape makes s literal text inside a Markdown table cell (GitHub
// Flavored Markdown): a runbook comes from a pull request, and its plan is
// posted as a comment there, so nothing in it may become a link, an image,
// HTML, code, emphasis or a new table row.
//
//   - every ASCII punctuation character is backslash-escaped (CommonMark
//     allows it for all of them; "\|" also keeps a cell in one piece),
//   - '&', '<' and '>' become entities, so no HTML or entity survives,
//   - line breaks become spaces (a newline would end the table row),
//   - control and invisible format characters (bidi overrides, zero-width
//     spaces) are written as their U+XXXX code.
func mdEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '\n' || r == '\r' || r == '\t' || r == '\u0085' || r == '\u2028' || r == '\u2029':
			b.WriteByte(' ')
		case r < 0x80 && (unicode.IsPunct(r) || unicode.IsSymbol(r)):
			b.WriteByte('\\')
			b.WriteRune(r)
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			fmt.Fprintf(&b, "U+%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
