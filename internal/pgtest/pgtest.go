// Package pgtest starts a throwaway PostgreSQL 15 cluster for unit tests that need a real
// database but not the whole dev stack (the demo API's handlers, the write checker): initdb
// into a temporary directory, postgres on a free 127.0.0.1 port with trust authentication,
// stopped and removed by t.Cleanup. It never touches the system cluster.
//
// When the stack is started by root, the cluster runs as the "postgres" account (PostgreSQL
// refuses to run as root), in a directory that account owns.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Start starts a cluster and returns the DSN of its database "test". It skips the test when
// PostgreSQL 15 is not installed (ROLLBOOK_PG_BINDIR overrides /usr/lib/postgresql/15/bin).
func Start(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("ROLLBOOK_PG_BINDIR")
	if bin == "" {
		bin = "/usr/lib/postgresql/15/bin"
	}
	if _, err := os.Stat(filepath.Join(bin, "initdb")); err != nil {
		t.Skipf("PostgreSQL 15 not installed (%v): apt-get install postgresql-15", err)
	}
	var cred *syscall.Credential
	dir, err := os.MkdirTemp("", "rollbook-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root and there is no postgres account to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		// MkdirTemp makes it 0700; the postgres account must reach it through /tmp only.
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "test", "--auth", "trust",
		"-E", "UTF8", "--locale", "C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb in %s: %v\n%s", data, err, out)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	pg := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=100")
	pg.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	pg.Stdout, pg.Stderr = logf, logf
	if err := pg.Start(); err != nil {
		t.Fatalf("starting postgres: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = pg.Wait(); close(done) }()
	t.Cleanup(func() {
		// SIGINT is PostgreSQL's fast shutdown: it rolls back open sessions and exits.
		_ = pg.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = pg.Process.Kill()
			<-done
		}
		logf.Close()
	})

	admin := fmt.Sprintf("postgres://test@127.0.0.1:%d/postgres?sslmode=disable", port)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var conn *pgx.Conn
	for {
		conn, err = pgx.Connect(ctx, admin)
		if err == nil {
			break
		}
		select {
		case <-done:
			out, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
			t.Fatalf("postgres exited: %s", out)
		case <-ctx.Done():
			t.Fatalf("postgres on port %d did not answer: %v", port, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE test"); err != nil {
		t.Fatalf("create database test: %v", err)
	}
	return fmt.Sprintf("postgres://test@127.0.0.1:%d/test?sslmode=disable", port)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
