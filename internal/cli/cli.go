// Package cli implements the rollbook command line (the binary is built
// from starter/rollbook): what CI and operators call to validate, plan,
// deploy and steer deployments.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/rollbook/rollbook/internal/temporalconn"
	"github.com/rollbook/rollbook/internal/zapadapter"
)

// Exit codes (DESIGN.md §4); CI branches on them.
const (
	ExitOK          = 0
	ExitBadInput    = 1
	ExitRolledBack  = 2
	ExitAborted     = 3
	ExitNeedsHuman  = 4
	ExitBusy        = 5
	ExitUnreachable = 6
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitf(code int, format string, a ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, a...)}
}

// app holds what every command needs.
type app struct {
	out, errOut io.Writer
	dialTimeout time.Duration
	taskQueue   string
	uiURL       string
	logger      *zap.Logger
}

// Run executes the CLI with args and returns the process exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{out: stdout, errOut: stderr, dialTimeout: 5 * time.Second}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(stderr, "rollbook:", ee.err)
		}
		return ee.code
	}
	// Anything else is a usage error reported by cobra (unknown flag…).
	fmt.Fprintln(stderr, "rollbook:", err)
	return ExitBadInput
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "rollbook",
		Short: "Deploy → verify → rollback runbooks as Temporal workflows",
		Long: `rollbook runs deployment runbooks (migrations, Consul KV, traffic weights,
verification) as Temporal workflows that roll back durably when anything fails.

Temporal connection: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
TEMPORAL_TLS_* (Temporal's own conventions).

Exit codes: 0 succeeded, 1 bad input or refused by the preflight (nothing
changed), 2 rolled back, 3 aborted,
4 a human is needed, 5 another deployment is running, 6 Temporal unreachable
or gave up waiting.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.taskQueue, "task-queue", envOr("ROLLBOOK_TASK_QUEUE", "rollbook"), "task queue the rollbook workers poll")
	root.PersistentFlags().StringVar(&a.uiURL, "ui-url", envOr("ROLLBOOK_WEB_UI", "http://localhost:8233"), "Temporal Web UI base URL, for links")
	root.PersistentFlags().DurationVar(&a.dialTimeout, "connect-timeout", 5*time.Second, "how long to wait for Temporal to answer")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return exitf(ExitBadInput, "%v (see %s --help)", err, c.CommandPath())
	})
	root.AddCommand(
		a.validateCommand(),
		a.planCommand(),
		a.deployCommand(),
		a.statusCommand(),
		a.revertCommand(),
		a.codecServerCommand(),
		a.alertReceiverCommand(),
		a.keygenCommand(),
	)
	for _, c := range a.signalCommands() {
		root.AddCommand(c)
	}
	return root
}

// dial connects to Temporal; failures map to exit code 6.
func (a *app) dial(ctx context.Context) (client.Client, client.Options, error) {
	if a.logger == nil {
		a.logger = zap.NewNop()
	}
	c, opts, err := temporalconn.Dial(ctx, zapadapter.New(a.logger), a.dialTimeout, nil)
	if err != nil {
		if errors.Is(err, temporalconn.ErrUnreachable) {
			return nil, opts, &exitError{code: ExitUnreachable, err: err}
		}
		return nil, opts, &exitError{code: ExitBadInput, err: err}
	}
	return c, opts, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// webLink is the Web UI page of a workflow run.
func (a *app) webLink(namespace, id, runID string) string {
	return fmt.Sprintf("%s/namespaces/%s/workflows/%s/%s/history", a.uiURL, namespace, id, runID)
}
