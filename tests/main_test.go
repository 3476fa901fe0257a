// Package tests holds rollbook's end-to-end tests. They run against a real
// Temporal dev server, Consul agent, PostgreSQL cluster and HAProxy started
// by internal/devstack (or a stack already up: ROLLBOOK_STACK_ENV=.stack/env),
// a real worker (in-process, on its own task queue) and the real CLI binary.
// A missing component fails the run with a message saying what to install;
// nothing is skipped.
package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/internal/worker"
	"github.com/rollbook/rollbook/internal/zapadapter"
)

// taskQueue keeps the tests' workflows away from a demo worker polling
// the default queue of a shared stack.
const taskQueue = "rollbook-e2e"

var (
	stack    *devstack.Stack
	cliBin   string
	tclient  client.Client
	consul   *consulapi.Client
	repoRoot string
	// rulesDir is the private stack's Prometheus rules folder: a copy of
	// deploy/monitoring/rules a test may add rule files to (then
	// stack.ReloadPrometheus). Empty on an attached stack.
	rulesDir string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var err error
	repoRoot, err = filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "rollbook-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	if envFile := os.Getenv("ROLLBOOK_STACK_ENV"); envFile != "" {
		stack, err = devstack.Attach(envFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: ROLLBOOK_STACK_ENV=%s but no live stack there: %v (run `make stack-up`, or unset it to start a private stack)\n", envFile, err)
			return 1
		}
		// The tests expect a private stack's versions (stable v1, canary v2); `make stack-up`
		// starts the canary idle at v1, and `make demo` leaves both at v2.
		rc := devstack.NewReleaseClient(stack.Dir)
		for target, v := range map[string]string{devstack.StableServer: "v1", devstack.CanaryServer: "v2"} {
			if _, err := rc.Deploy(ctx, target, devstack.DeployRequest{Version: v}); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: putting %s on the attached stack's %s target: %v\n", v, target, err)
				return 1
			}
		}
	} else {
		if rulesDir, err = copyRules(tmp); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		stack, err = devstack.Start(ctx, devstack.Options{Dir: filepath.Join(tmp, "stack"), RemoveOnStop: true, ModuleRoot: repoRoot, Log: os.Stderr, RulesDir: rulesDir})
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: cannot start the dev stack: %v\n", err)
			return 1
		}
		defer func() {
			if err := stack.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "e2e: stopping the stack:", err)
			}
		}()
	}
	for k, v := range stack.Env() {
		os.Setenv(k, v)
	}
	os.Setenv("ROLLBOOK_TASK_QUEUE", taskQueue)

	cliBin = filepath.Join(tmp, "rollbook")
	if out, err := exec.Command("go", "build", "-o", cliBin, filepath.Join(repoRoot, "starter", "rollbook")).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building the CLI: %v\n%s", err, out)
		return 1
	}

	consul, err = consulapi.NewClient(consulapi.DefaultConfig())
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: consul client:", err)
		return 1
	}
	log := zap.NewNop()
	if os.Getenv("ROLLBOOK_E2E_VERBOSE") != "" {
		log, _ = zap.NewDevelopment()
	}
	tclient, err = client.Dial(client.Options{HostPort: stack.TemporalAddress, Namespace: devstack.Namespace, Logger: zapadapter.New(log)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temporal client:", err)
		return 1
	}
	defer tclient.Close()

	stopWorker, err := startWorker(log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: worker:", err)
		return 1
	}
	defer stopWorker()
	return m.Run()
}

// copyRules copies the shipped rule files into tmp/rules.
func copyRules(tmp string) (string, error) {
	dir := filepath.Join(tmp, "rules")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	files, err := filepath.Glob(filepath.Join(repoRoot, "deploy", "monitoring", "rules", "*.yml"))
	if err != nil {
		return "", err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// startWorker runs a real rollbook worker, configured exactly like the dev
// stack's (examples/dev-worker.yaml), on the tests' task queue.
func startWorker(log *zap.Logger) (func(), error) {
	cfg, err := worker.LoadConfig(filepath.Join(repoRoot, "examples", "dev-worker.yaml"))
	if err != nil {
		return nil, err
	}
	cfg.TaskQueue = taskQueue
	acts, err := worker.BuildActivities(cfg)
	if err != nil {
		return nil, err
	}
	w := sdkworker.New(tclient, taskQueue, sdkworker.Options{})
	worker.Register(w, acts)
	if err := w.Start(); err != nil {
		return nil, err
	}
	return w.Stop, nil
}
