// Command rollbook is the CLI used from CI and by operators. It only wires
// the process to internal/cli. It lives in starter/rollbook, not starter/,
// so that `go install` names the binary rollbook.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/rollbook/rollbook/internal/cli"
	"github.com/rollbook/rollbook/internal/tracing"
)

func main() {
	// Tracing is off unless OTEL_* variables turn it on (docs/operations.md).
	shutdown, err := tracing.Setup(context.Background(), tracing.Options{ServiceName: "rollbook"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "rollbook: tracing:", err)
		os.Exit(cli.ExitBadInput)
	}
	code := cli.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := shutdown(ctx); err != nil {
		// The deployment's outcome stands; only its trace is incomplete.
		fmt.Fprintln(os.Stderr, "rollbook: tracing:", err)
	}
	cancel()
	os.Exit(code)
}
