// Command demo-release is the dev stack's release command: what rollbook's exec release
// driver runs to put a version of the demo API onto a target (examples/dev-worker.yaml).
// It asks the stack's release supervisor (internal/devstack/supervisor.go) over the unix
// socket release.sock in its working directory, the stack directory.
//
//	demo-release current <target>                 print the version the target runs
//	demo-release deploy  <target> <version> [key] replace the target's instance; returns once it answers
//	demo-release health  <target>                 exit 0 when the instance answers with its version and HAProxy has it UP
//	demo-release supervise -dir D -demoapi BIN -target stable=PORT:v1 -target canary=PORT:v1
//	                                              run the supervisor (the dev stack starts it)
//
// How a version behaves is chosen here, at release time: the versions table in the
// environment (DEMO_RELEASE_FLAGS_<version>, set by the worker's exec configuration) gives
// the demo API flags of a version, for example DEMO_RELEASE_FLAGS_v3="-error-rate=0.5
// -write-failure=both" for a v3 that fails half of its reads and writes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rollbook/rollbook/internal/devstack"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "demo-release:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: demo-release current|deploy|health|supervise ...")
	}
	if args[0] == "supervise" {
		return supervise(args[1:])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := devstack.NewReleaseClient(".")
	switch {
	case args[0] == "current" && len(args) == 2:
		st, err := c.Current(ctx, args[1])
		if err != nil {
			return err
		}
		fmt.Println(st.Version)
		return nil
	case args[0] == "deploy" && (len(args) == 3 || len(args) == 4):
		req := devstack.DeployRequest{Version: args[2], Flags: devstack.ReleaseFlagsFor(os.Getenv, args[2])}
		if len(args) == 4 {
			req.Key = args[3]
		}
		fmt.Printf("deploying %s onto %s (flags %q)\n", req.Version, args[1], strings.Join(req.Flags, " "))
		st, err := c.Deploy(ctx, args[1], req)
		if err != nil {
			return err
		}
		fmt.Printf("%s runs %s (pid %d)\n", st.Target, st.Version, st.PID)
		return nil
	case args[0] == "health" && len(args) == 2:
		st, err := c.Health(ctx, args[1])
		if err != nil {
			return err
		}
		if !st.Healthy {
			return fmt.Errorf("%s (%s) is not healthy: %s", args[1], st.Version, st.Detail)
		}
		fmt.Printf("%s runs %s, healthy\n", st.Target, st.Version)
		return nil
	}
	return fmt.Errorf("usage: demo-release current <target> | deploy <target> <version> [key] | health <target> | supervise ... (got %q)", strings.Join(args, " "))
}

type specs []string

func (s *specs) String() string     { return strings.Join(*s, ",") }
func (s *specs) Set(v string) error { *s = append(*s, v); return nil }

func supervise(args []string) error {
	fs := flag.NewFlagSet("supervise", flag.ContinueOnError)
	dir := fs.String("dir", ".", "stack directory (socket, release/ state, logs/)")
	demo := fs.String("demoapi", "", "the demo API binary")
	sock := fs.String("haproxy-socket", "", "HAProxy runtime API socket (health reads the server's state)")
	backend := fs.String("backend", devstack.Backend, "HAProxy backend of the targets")
	var targets specs
	fs.Var(&targets, "target", "name=port:version, the target and the version it starts with when nothing was released yet (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ts, err := devstack.ParseTargetSpecs(targets)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return devstack.RunSupervisor(ctx, devstack.SupervisorConfig{
		Dir: *dir, DemoBinary: *demo, HAProxySocket: *sock, Backend: *backend, Targets: ts,
	})
}
