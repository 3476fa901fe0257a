// Command rollbook is the CLI used from CI and by operators. It only wires
// the process to internal/cli. It lives in starter/rollbook, not starter/,
// so that `go install` names the binary rollbook.
package main

import (
	"context"
	"os"

	"github.com/rollbook/rollbook/internal/cli"
)

func main() {
	os.Exit(cli.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
