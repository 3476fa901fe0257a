package devstack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// osUser is the unprivileged account PostgreSQL runs as when the stack is started by root
// (PostgreSQL refuses to run as root).
type osUser struct {
	name     string
	uid, gid uint32
}

func (u *osUser) credential() *syscall.Credential {
	if u == nil {
		return nil
	}
	return &syscall.Credential{Uid: u.uid, Gid: u.gid}
}

// startPostgres runs a private PostgreSQL cluster: initdb on first use (superuser
// "rollbook" with a random password, scram-sha-256 over TCP), then postgres listening on
// 127.0.0.1 only, with its unix socket inside the cluster directory. The system cluster is
// never touched.
func (s *Stack) startPostgres(ctx context.Context, b binaries, pt stackPorts) error {
	u, err := postgresOSUser()
	if err != nil {
		return err
	}
	s.pgUser = u
	root, err := s.postgresDir(u)
	if err != nil {
		return err
	}
	s.PGDir = root
	data, run := filepath.Join(root, "data"), filepath.Join(root, "run")
	for _, d := range []string{root, run} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if err := chownTo(d, u); err != nil {
			return err
		}
	}

	pwFile := filepath.Join(s.Dir, "postgres.password")
	var password string
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err == nil {
		pw, err := os.ReadFile(pwFile)
		if err != nil {
			return fmt.Errorf("cluster %s exists but its password is unreadable (%v): start with Options.Fresh (stack up --fresh) to recreate it", data, err)
		}
		password = strings.TrimSpace(string(pw))
	} else {
		_ = os.RemoveAll(data)
		password = randomHex(12)
		if err := s.initdb(ctx, b, u, root, data, password); err != nil {
			return err
		}
		if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
			return err
		}
	}

	sockDir := run
	if len(run)+len("/.s.PGSQL.65535.lock") > 100 { // sun_path is 108 bytes
		sockDir = "" // TCP only
	}
	args := []string{
		"-D", data,
		"-p", strconv.Itoa(pt.PG),
		"-k", sockDir,
		"-c", "listen_addresses=127.0.0.1",
		// A throwaway dev cluster: durability against OS crashes is not needed, speed is.
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
	}
	p, err := s.spawn(spawnSpec{name: "postgres", exe: b.postgres, args: args, dir: root, cred: u.credential()})
	if err != nil {
		return err
	}
	s.PGAdminDSN = pgDSN(password, pt.PG, "postgres")
	s.PGDSN = pgDSN(password, pt.PG, s.opts.Databases[0])
	if err := waitFor(ctx, p, 100*time.Millisecond, func(ctx context.Context) error {
		return pgPing(ctx, s.PGAdminDSN)
	}); err != nil {
		return err
	}
	return createDatabases(ctx, s.PGAdminDSN, s.opts.Databases)
}

func pgDSN(password string, port int, db string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", pgUserName, password, port, db)
}

func (s *Stack) initdb(ctx context.Context, b binaries, u *osUser, root, data, password string) error {
	tmpPw := filepath.Join(root, ".initdb-password")
	if err := os.WriteFile(tmpPw, []byte(password+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(tmpPw)
	if err := chownTo(tmpPw, u); err != nil {
		return err
	}
	logPath := filepath.Join(s.Dir, "logs", "initdb.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, b.initdb,
		"-D", data,
		"-U", pgUserName,
		"--pwfile", tmpPw,
		"--auth-local", "trust", // the socket directory is private to the cluster's owner
		"--auth-host", "scram-sha-256",
		"-E", "UTF8", "--locale", "C",
		"--no-sync",
	)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.credential()}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("initdb: %w; last lines of %s:\n%s", err, logPath, tail(logPath, 15))
	}
	return nil
}

// postgresOSUser returns nil when not root (PostgreSQL runs as the current user). As root
// it returns the "postgres" account (Debian's postgresql package creates it), else a system
// account "rollbook", created once with useradd.
func postgresOSUser() (*osUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", pgUserName} {
		if u, err := lookupUser(name); err == nil {
			return u, nil
		}
	}
	out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
		"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", pgUserName).CombinedOutput()
	if u, lerr := lookupUser(pgUserName); lerr == nil {
		return u, nil // created now, or by a concurrent start
	}
	return nil, fmt.Errorf("PostgreSQL cannot run as root and there is no postgres user; useradd %s failed: %v: %s", pgUserName, err, out)
}

func lookupUser(name string) (*osUser, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	return &osUser{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
}

func chownTo(path string, u *osUser) error {
	if u == nil {
		return nil
	}
	return os.Lchown(path, int(u.uid), int(u.gid))
}

// postgresDir is <Dir>/postgres when the cluster's owner can reach it. When root runs the
// stack in a directory the postgres account cannot traverse (a 0700 temp dir, or under
// /root), the cluster lives in /tmp/rollbook-pg-<hash of Dir> instead and <Dir>/postgres
// is a symlink to it.
func (s *Stack) postgresDir(u *osUser) (string, error) {
	inDir := filepath.Join(s.Dir, "postgres")
	// Fresh is for Start only: a restart of PostgreSQL alone (StartComponent) keeps its data.
	fresh := s.opts.Fresh && !s.up
	if fi, err := os.Lstat(inDir); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		_ = os.Remove(inDir)
	}
	if u == nil || traversable(s.Dir, u) {
		if fresh {
			if err := os.RemoveAll(inDir); err != nil {
				return "", err
			}
		}
		return inDir, nil
	}
	sum := sha256.Sum256([]byte(s.Dir))
	alt := filepath.Join(os.TempDir(), "rollbook-pg-"+hex.EncodeToString(sum[:6]))
	if fresh {
		if err := os.RemoveAll(alt); err != nil {
			return "", err
		}
	}
	if fi, err := os.Lstat(alt); err == nil && (!fi.IsDir() || fi.Mode()&os.ModeSymlink != 0) {
		return "", fmt.Errorf("%s exists and is not a directory", alt)
	}
	if fi, err := os.Lstat(inDir); err == nil && fi.IsDir() {
		if err := os.RemoveAll(inDir); err != nil { // unusable leftover
			return "", err
		}
	}
	if err := os.Symlink(alt, inDir); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	return alt, nil
}

// traversable reports whether u can reach dir: search permission on dir and every parent.
func traversable(dir string, u *osUser) bool {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return false
		}
		perm := fi.Mode().Perm()
		switch {
		case st.Uid == u.uid:
			if perm&0o100 == 0 {
				return false
			}
		case st.Gid == u.gid:
			if perm&0o010 == 0 {
				return false
			}
		default:
			if perm&0o001 == 0 {
				return false
			}
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

func pgPing(ctx context.Context, dsn string) error {
	if dsn == "" {
		return errors.New("no DSN")
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.Ping(ctx)
}

func createDatabases(ctx context.Context, adminDSN string, names []string) error {
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, name := range names {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
			return err
		}
		if exists {
			continue
		}
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return fmt.Errorf("create database %s: %w", name, err)
		}
	}
	return nil
}
