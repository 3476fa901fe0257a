package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rollbook/rollbook/runbook"
)

func (a *app) validateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check runbooks offline: syntax, fields, rules and migration files",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bad := 0
			for _, f := range args {
				rb, err := runbook.Load(f)
				if err != nil {
					bad++
					fmt.Fprintln(a.errOut, err)
					continue
				}
				fmt.Fprintf(a.out, "%s: ok (service %s, %d steps)\n", f, rb.Service, len(rb.Steps))
			}
			if bad > 0 {
				return exitf(ExitBadInput, "%d of %d runbooks are invalid", bad, len(args))
			}
			return nil
		},
	}
}
