package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rollbook/rollbook/internal/workerconfig"
	"github.com/rollbook/rollbook/runbook"
)

func (a *app) validateCommand() *cobra.Command {
	var workerConfig string
	cmd := &cobra.Command{
		Use:   "validate FILE... [--worker-config FILE]",
		Short: "Check runbooks offline: syntax, fields, rules, migration files, and names against a worker config",
		Long: `Check runbooks offline: syntax, fields, rules and migration files.

With --worker-config, also check every name a runbook uses against that worker
configuration, as the worker's preflight does before the first change:
databases, routers and their allowedBackends, Consul keys against
consul.allowedPrefixes, http endpoints, Prometheus servers and the webhook.
The live half of the preflight (the database answers, the backend and its
servers exist) runs only on the worker.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg *workerconfig.Config
			if workerConfig != "" {
				var err error
				if cfg, err = workerconfig.LoadConfig(workerConfig); err != nil {
					return exitf(ExitBadInput, "%v", err)
				}
			}
			bad := 0
			for _, f := range args {
				rb, err := runbook.Load(f)
				if err != nil {
					bad++
					fmt.Fprintln(a.errOut, err)
					continue
				}
				if cfg != nil {
					if problems := workerconfig.CheckNames(cfg, rb); len(problems) > 0 {
						bad++
						for _, p := range problems {
							fmt.Fprintf(a.errOut, "%s: %s (worker config %s)\n", f, p, workerConfig)
						}
						continue
					}
				}
				fmt.Fprintf(a.out, "%s: ok (service %s, %d steps)\n", f, rb.Service, len(rb.Steps))
			}
			if bad > 0 {
				return exitf(ExitBadInput, "%d of %d runbooks are invalid", bad, len(args))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&workerConfig, "worker-config", "", "also check the runbooks' names against this worker configuration")
	return cmd
}
