// Command stack starts, inspects and stops rollbook's dev stack (see internal/devstack).
//
//	go run ./internal/devstack/cmd/stack up     [--dir .stack] [--headless] [--fresh]
//	go run ./internal/devstack/cmd/stack status [--dir .stack]
//	go run ./internal/devstack/cmd/stack down   [--dir .stack] [--purge]
//	go run ./internal/devstack/cmd/stack restart [--dir .stack] [--lose-state] temporal|consul|postgres|haproxy
//
// up starts the stack detached (it keeps running after this command exits) on free ports,
// writes <dir>/env as KEY=VALUE lines and prints them; a component that loses one of its
// ports to another program while starting is started again on new ones, and env tells the
// final ones. When a live stack is already in <dir>, up only prints its env. down stops
// exactly the processes listed in <dir>/pids, after saving HAProxy's server state. restart
// stops one component and starts it again on the same ports with the same data (for outage
// drills); when another program holds one of them, it tries again for a few seconds, then
// fails naming the holder. HAProxy's runtime weights are saved to its server-state-file
// first unless --lose-state.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rollbook/rollbook/internal/devstack"
)

const usage = `usage: stack <command> [flags]

commands:
  up      start the dev stack in the background and write <dir>/env
  status  show the stack's processes and whether each component answers
  down    stop the stack's processes
  restart restart one component (temporal, consul, postgres, haproxy) on the same ports and data

run "stack <command> -h" for the flags of a command
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "up":
		err = up(args)
	case "down":
		err = down(args)
	case "status":
		err = status(args)
	case "restart":
		err = restart(args)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "stack: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stack:", err)
		os.Exit(1)
	}
}

func up(args []string) error {
	fs := flag.NewFlagSet("stack up", flag.ExitOnError)
	dir := fs.String("dir", ".stack", "directory for the stack's env, pids, logs and data")
	headless := fs.Bool("headless", false, "do not start the Temporal Web UI")
	fresh := fs.Bool("fresh", false, "delete the Temporal database and PostgreSQL cluster of a previous run")
	timeout := fs.Duration("timeout", 90*time.Second, "give up starting after this long")
	_ = fs.Parse(args)

	envFile := filepath.Join(*dir, "env")
	if s, err := devstack.Attach(envFile); err == nil {
		fmt.Fprintf(os.Stderr, "stack: already running in %s\n", s.Dir)
		printEnv(os.Stdout, s, envFile)
		return nil
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := devstack.Start(ctx, devstack.Options{
		Dir:   *dir,
		WebUI: !*headless,
		// Stable runs v1 and the canary is idle: the same version at weight 0, which a
		// deployment's release step replaces with the new one (runbooks/payments-api.yaml).
		StableVersion: "v1",
		CanaryVersion: "v1",
		Detach:        true,
		Fresh:         *fresh,
		Log:           os.Stderr,
		Timeout:       *timeout,
	})
	if err != nil {
		return err
	}
	printEnv(os.Stdout, s, envFile)
	return nil
}

func printEnv(w io.Writer, s *devstack.Stack, envFile string) {
	env := s.Env()
	for _, k := range slices.Sorted(maps.Keys(env)) {
		fmt.Fprintf(w, "%s=%s\n", k, env[k])
	}
	fmt.Fprintf(os.Stderr, "\nstack: env written to %s — load it with:  set -a; . %s; set +a\n", envFile, envFile)
	if s.WebUI != "" {
		fmt.Fprintf(os.Stderr, "stack: Temporal Web UI   %s\n", s.WebUI)
	}
	fmt.Fprintf(os.Stderr, "stack: Consul UI         %s/ui/\n", s.ConsulHTTPAddr)
	fmt.Fprintf(os.Stderr, "stack: HAProxy stats     %s\n", s.HAProxyStatsURL)
	fmt.Fprintf(os.Stderr, "stack: Prometheus        %s\n", s.PrometheusURL)
	fmt.Fprintf(os.Stderr, "stack: Alertmanager      %s\n", s.AlertmanagerURL)
	fmt.Fprintf(os.Stderr, "stack: logs              %s\n", filepath.Join(s.Dir, "logs"))
	fmt.Fprintf(os.Stderr, "stack: stop it with      make stack-down\n")
}

func down(args []string) error {
	fs := flag.NewFlagSet("stack down", flag.ExitOnError)
	dir := fs.String("dir", ".stack", "the stack's directory")
	purge := fs.Bool("purge", false, "also delete the directory (data, logs) and the PostgreSQL cluster")
	_ = fs.Parse(args)

	s, err := devstack.Load(*dir)
	if errors.Is(err, devstack.ErrNotRunning) {
		fmt.Fprintf(os.Stderr, "stack: nothing to stop in %s\n", *dir)
		if *purge {
			return os.RemoveAll(*dir)
		}
		return nil
	}
	if err != nil {
		return err
	}
	pids := s.PIDs()
	start := time.Now()
	if err := s.Stop(); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(pids)) {
		fmt.Fprintf(os.Stderr, "stack: stopped %-12s pid %d\n", name, pids[name])
	}
	fmt.Fprintf(os.Stderr, "stack: down in %.1fs\n", time.Since(start).Seconds())
	if *purge {
		if err := s.Remove(); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "stack: removed %s\n", s.Dir)
	}
	return nil
}

func status(args []string) error {
	fs := flag.NewFlagSet("stack status", flag.ExitOnError)
	dir := fs.String("dir", ".stack", "the stack's directory")
	_ = fs.Parse(args)

	s, err := devstack.Load(*dir)
	if err != nil {
		return err
	}
	dead := map[string]bool{}
	for _, d := range s.Dead() {
		dead[d] = true
	}
	pids := s.PIDs()
	for _, name := range slices.Sorted(maps.Keys(pids)) {
		state := "running"
		if dead[fmt.Sprintf("%s (pid %d)", name, pids[name])] {
			state = "NOT RUNNING"
		}
		fmt.Printf("%-12s pid %-8d %s\n", name, pids[name], state)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Check(ctx); err != nil {
		return fmt.Errorf("not healthy:\n%v", err)
	}
	if s.PrometheusURL != "" {
		fmt.Printf("prometheus   %s\nalertmanager %s\n", s.PrometheusURL, s.AlertmanagerURL)
	}
	fmt.Println("all components answer; env:", filepath.Join(s.Dir, "env"))
	return nil
}

func restart(args []string) error {
	fs := flag.NewFlagSet("stack restart", flag.ExitOnError)
	dir := fs.String("dir", ".stack", "the stack's directory")
	loseState := fs.Bool("lose-state", false, "haproxy: do not save the server state first (the runtime weights are lost, as in a crash)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: stack restart [flags] %s\n", strings.Join(devstack.Components, "|"))
		fs.PrintDefaults()
	}
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		fs.Usage()
		os.Exit(2)
	}
	name := fs.Arg(0)
	s, err := devstack.Load(*dir)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	if *loseState && name == devstack.ComponentHAProxy {
		if err := s.StopComponent(name); err != nil {
			return err
		}
		err = s.StartComponent(ctx, name)
	} else {
		err = s.Restart(ctx, name)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "stack: %s restarted in %.1fs (pid %d)\n", name, time.Since(start).Seconds(), s.PIDs()[name])
	return nil
}
