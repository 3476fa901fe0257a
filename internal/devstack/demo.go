package devstack

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

const modulePath = "github.com/rollbook/rollbook"

// EnvDemoDSN is the variable the demo API reads its PostgreSQL DSN from.
const EnvDemoDSN = "DEMOAPI_DATABASE_URL"

// DemoSchema is the payments database before any rollbook migration (goose version 0): the
// tables payments and idempotency_keys the demo API writes. Start creates it; the compose
// file's PostgreSQL init script holds the same statements.
//
//go:embed demoschema.sql
var DemoSchema string

// EnsureDemoSchema creates the demo's base tables in the database of dsn when they are
// missing. It changes nothing that exists.
func EnsureDemoSchema(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("creating the demo schema: connecting: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, DemoSchema); err != nil {
		return fmt.Errorf("creating the demo schema (payments, idempotency_keys): %w", err)
	}
	return nil
}

// ResetDemoSchema puts the database of dsn back to an empty version 0: it drops every table
// the payments-api runbook's migrations create (and payment_events, from the demo's v3
// migration), goose's version table, rollbook's archive schema and the demo's own tables with
// their rows, then creates the base tables again. The demo, the benchmark and the crash
// campaign call it between runs; it destroys data, so it is for the dev stack only.
func ResetDemoSchema(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("resetting the demo schema: connecting: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `DROP TABLE IF EXISTS ledger_entries, payment_events, goose_db_version, payments, idempotency_keys CASCADE;
		DROP SCHEMA IF EXISTS rollbook_archive CASCADE`); err != nil {
		return fmt.Errorf("resetting the demo schema: dropping tables: %w", err)
	}
	if _, err := conn.Exec(ctx, DemoSchema); err != nil {
		return fmt.Errorf("resetting the demo schema: creating payments, idempotency_keys: %w", err)
	}
	return nil
}

// startDemo builds examples/demoapi and the release command (unless Options.DemoBinary and
// Options.ReleaseBinary are set) and starts the release supervisor, which runs the demo API
// twice: "stable" (StableVersion) and "canary" (CanaryVersion), or what was released there
// last when the stack directory has a release state (a stack started again without Fresh),
// once PostgreSQL is up (s.pgUp closed) and the base schema exists: both write to the stack's
// first database. Releases replace the instances through the supervisor (supervisor.go).
func (s *Stack) startDemo(ctx context.Context, b binaries, pt stackPorts) error {
	demoBin, releaseBin := s.opts.DemoBinary, s.opts.ReleaseBinary
	var pkgs []string
	if demoBin == "" {
		demoBin = filepath.Join(s.Dir, "bin", "demoapi")
		pkgs = append(pkgs, "./examples/demoapi")
	}
	if releaseBin == "" {
		releaseBin = filepath.Join(s.Dir, "bin", "demo-release")
		pkgs = append(pkgs, "./internal/devstack/cmd/demo-release")
	}
	if len(pkgs) > 0 {
		root := s.opts.ModuleRoot
		if root == "" {
			var err error
			if root, err = FindModuleRoot(); err != nil {
				return fmt.Errorf("building %s: %w (or set Options.ModuleRoot / Options.DemoBinary and ReleaseBinary)", strings.Join(pkgs, " "), err)
			}
		}
		// One go build for both: -o a directory names each binary after its package.
		cmd := exec.CommandContext(ctx, b.goTool, append([]string{"build", "-o", filepath.Join(s.Dir, "bin") + "/"}, pkgs...)...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s in %s: %w\n%s", strings.Join(pkgs, " "), root, err, out)
		}
	}
	// The exec release driver runs bin/demo-release relative to the stack directory.
	if want := filepath.Join(s.Dir, "bin", "demo-release"); releaseBin != want {
		if err := copyFile(releaseBin, want); err != nil {
			return fmt.Errorf("installing the release command: %w", err)
		}
	}
	if s.pgUp != nil { // nil on a restart of a running stack: PostgreSQL is up
		select {
		case <-s.pgUp:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := EnsureDemoSchema(ctx, s.PGDSN); err != nil {
		return err
	}
	if s.opts.Fresh {
		_ = os.RemoveAll(filepath.Join(s.Dir, "release"))
	}
	p, err := s.spawn(spawnSpec{name: ComponentDemoSupervisor, exe: releaseBin, dir: s.Dir, args: []string{
		"supervise", "-dir", s.Dir, "-demoapi", demoBin,
		"-haproxy-socket", s.HAProxySocket, "-backend", Backend,
		"-target", fmt.Sprintf("%s=%d:%s", StableServer, pt.DemoStable, s.opts.StableVersion),
		"-target", fmt.Sprintf("%s=%d:%s", CanaryServer, pt.DemoCanary, s.opts.CanaryVersion),
	}, env: []string{EnvDemoDSN + "=" + s.PGDSN}})
	if err != nil {
		return err
	}
	for _, url := range []string{s.DemoStableURL, s.DemoCanaryURL} {
		if err := waitFor(ctx, p, 50*time.Millisecond, func(ctx context.Context) error {
			return httpOK(ctx, url+"/healthz")
		}); err != nil {
			return err
		}
	}
	return waitFor(ctx, p, 50*time.Millisecond, func(ctx context.Context) error {
		_, err := NewReleaseClient(s.Dir).Current(ctx, StableServer)
		return err
	})
}

// ComponentDemoSupervisor is the process name of the release supervisor in the pids file.
const ComponentDemoSupervisor = "demo-supervisor"

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return writeFileAtomic(to, b, 0o755)
}

// FindModuleRoot walks up from the working directory to rollbook's go.mod and returns its
// directory (the demo API, the benchmark and the crash campaign build from there).
func FindModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.Contains(data, []byte("module "+modulePath+"\n")) {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", errors.New("cannot find the rollbook module (go.mod of " + modulePath + ") above " + dir + ": run from the repository")
		}
	}
}
