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
// the payments-api runbook's migrations create, goose's version table, rollbook's archive
// schema and the demo's own tables with their rows, then creates the base tables again. The
// demo, the benchmark and the crash campaign call it between runs; it destroys data, so it is
// for the dev stack only.
func ResetDemoSchema(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("resetting the demo schema: connecting: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `DROP TABLE IF EXISTS ledger_entries, goose_db_version, payments, idempotency_keys CASCADE;
		DROP SCHEMA IF EXISTS rollbook_archive CASCADE`); err != nil {
		return fmt.Errorf("resetting the demo schema: dropping tables: %w", err)
	}
	if _, err := conn.Exec(ctx, DemoSchema); err != nil {
		return fmt.Errorf("resetting the demo schema: creating payments, idempotency_keys: %w", err)
	}
	return nil
}

// startDemo builds examples/demoapi (unless Options.DemoBinary is set) and starts it twice:
// "stable" (StableVersion) and "canary" (CanaryVersion), once PostgreSQL is up (s.pgUp closed)
// and the base schema exists: both write to the stack's first database.
func (s *Stack) startDemo(ctx context.Context, b binaries, pt stackPorts) error {
	bin := s.opts.DemoBinary
	if bin == "" {
		root := s.opts.ModuleRoot
		if root == "" {
			var err error
			if root, err = FindModuleRoot(); err != nil {
				return fmt.Errorf("building examples/demoapi: %w (or set Options.ModuleRoot / Options.DemoBinary)", err)
			}
		}
		bin = filepath.Join(s.Dir, "bin", "demoapi")
		cmd := exec.CommandContext(ctx, b.goTool, "build", "-o", bin, "./examples/demoapi")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./examples/demoapi in %s: %w\n%s", root, err, out)
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
	instances := []struct {
		name, version, url string
		port               int
	}{
		{"demo-stable", s.opts.StableVersion, s.DemoStableURL, pt.DemoStable},
		{"demo-canary", s.opts.CanaryVersion, s.DemoCanaryURL, pt.DemoCanary},
	}
	procs := make([]*proc, len(instances))
	for i, in := range instances {
		p, err := s.spawn(spawnSpec{name: in.name, exe: bin, dir: s.Dir, args: []string{
			"-listen", hostPort(in.port), "-version", in.version, "-name", in.name[len("demo-"):],
		}, env: []string{EnvDemoDSN + "=" + s.PGDSN}})
		if err != nil {
			return err
		}
		procs[i] = p
	}
	for i, in := range instances {
		if err := waitFor(ctx, procs[i], 50*time.Millisecond, func(ctx context.Context) error {
			return httpOK(ctx, in.url+"/healthz")
		}); err != nil {
			return err
		}
	}
	return nil
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
