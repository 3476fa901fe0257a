package activities

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"go.temporal.io/sdk/temporal"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/rollbook/rollbook/runbook"
)

// Database dialects a DatabaseTarget may name.
const (
	DialectPostgres = "postgres"
	DialectSQLite   = "sqlite"
)

// gooseTable is goose's default version table; CaptureSchema reads it
// without creating it.
const gooseTable = goose.DefaultTablename

// DatabaseTarget is a database the worker may migrate. The DSN is worker
// configuration (often from the environment); it never appears in runbooks,
// workflow history or logs.
type DatabaseTarget struct {
	// Dialect is "postgres" (pgx) or "sqlite" (modernc.org/sqlite).
	Dialect string `json:"dialect"`
	DSN     string `json:"-"`
}

// Migrations runs goose migrations carried in the bundle against database
// targets the worker knows by name.
//
// Each call builds a goose Provider over an in-memory file system holding the
// bundle's files (the worker's disk is never read). On PostgreSQL goose's
// session lock (pg_advisory_lock, taken by lockDatabase) serialises concurrent deployments to the
// same database; each migration file runs in its own transaction, so a
// failing file leaves the schema at the last good version.
type Migrations struct {
	// Targets maps database names used in runbooks to connections.
	Targets map[string]DatabaseTarget
	// LockTimeout bounds the wait for the PostgreSQL session lock
	// (default 5 minutes); the activity heartbeats while it waits.
	LockTimeout time.Duration
	// HeartbeatInterval is how often long calls heartbeat (default 2s).
	HeartbeatInterval time.Duration
	// Hooks are points a test harness stops the activity at; the zero
	// value (production) has none.
	Hooks MigrationHooks

	mu  sync.Mutex
	dbs map[string]*sql.DB
}

// MigrationHooks let the crash campaign stop a migration between two of its
// steps. The worker sets them only when a crash point is armed
// (ROLLBOOK_CRASHPOINT, internal/faults), so the activities carry no dev
// tooling of their own.
type MigrationHooks struct {
	// GooseOptions are added to every goose Provider (the campaign hooks
	// goose's log of each applied file).
	GooseOptions []goose.ProviderOption
	// ArchiveDone runs after a file's data was preserved and committed,
	// before that file's Down.
	ArchiveDone func(context.Context)
}

// NewMigrations checks the targets and returns the activities. Connections
// are opened lazily on first use and kept until Close.
func NewMigrations(targets map[string]DatabaseTarget) (*Migrations, error) {
	if len(targets) == 0 {
		return nil, errors.New("migrations: no database targets configured")
	}
	for _, name := range slices.Sorted(maps.Keys(targets)) {
		t := targets[name]
		if name == "" {
			return nil, errors.New("migrations: database target with an empty name")
		}
		if t.Dialect != DialectPostgres && t.Dialect != DialectSQLite {
			return nil, fmt.Errorf("migrations: database target %q: dialect %q is not %q or %q", name, t.Dialect, DialectPostgres, DialectSQLite)
		}
		if t.DSN == "" {
			return nil, fmt.Errorf("migrations: database target %q: empty DSN", name)
		}
	}
	return &Migrations{Targets: maps.Clone(targets)}, nil
}

// Close closes every connection pool opened so far.
func (m *Migrations) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for name, db := range m.dbs {
		if err := db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing database %q: %w", name, err))
		}
	}
	m.dbs = nil
	return errors.Join(errs...)
}

func (m *Migrations) db(name string) (*sql.DB, DatabaseTarget, error) {
	t, ok := m.Targets[name]
	if !ok {
		return nil, t, invalidf("unknown database target %q (this worker knows: %s)", name, strings.Join(slices.Sorted(maps.Keys(m.Targets)), ", "))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if db, ok := m.dbs[name]; ok {
		return db, t, nil
	}
	driver := "pgx"
	if t.Dialect == DialectSQLite {
		driver = "sqlite"
	}
	// sql.Open does not connect; it fails only on a bad driver name.
	db, err := sql.Open(driver, t.DSN)
	if err != nil {
		return nil, t, fmt.Errorf("opening database %q: %w", name, err)
	}
	if m.dbs == nil {
		m.dbs = map[string]*sql.DB{}
	}
	m.dbs[name] = db
	return db, t, nil
}

// migrationFS returns the bundle's .sql files directly under dir as an
// in-memory file system of their base names.
func migrationFS(dir string, files []runbook.File) (fs.FS, error) {
	dir = path.Clean(dir)
	fsys := fstest.MapFS{}
	for _, f := range files {
		p := path.Clean(f.Path)
		if path.Dir(p) != dir || path.Ext(p) != ".sql" {
			continue
		}
		if err := runbook.CheckMigrationSQL(f.Path, []byte(f.Content)); err != nil {
			return nil, invalidf("%v", err) // goose never sees ENVSUB or an annotation validation would refuse
		}
		fsys[path.Base(p)] = &fstest.MapFile{Data: []byte(f.Content), Mode: 0o444}
	}
	if len(fsys) == 0 {
		return nil, invalidf("no .sql migration files under %q in the bundle", dir)
	}
	return fsys, nil
}

// provider builds a goose Provider for one call. The Provider does not own
// the cached *sql.DB, so it is not closed.
func (m *Migrations) provider(in MigrateInput) (*goose.Provider, *sql.DB, DatabaseTarget, error) {
	db, t, err := m.db(in.Database)
	if err != nil {
		return nil, nil, t, err
	}
	fsys, err := migrationFS(in.Dir, in.Files)
	if err != nil {
		return nil, nil, t, err
	}
	dialect := goose.DialectPostgres
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	opts = append(opts, m.Hooks.GooseOptions...)
	if t.Dialect == DialectSQLite {
		dialect = goose.DialectSQLite3
	}
	// No goose session locker: MigrateUp and MigrateDown hold goose's
	// advisory lock themselves (lockDatabase) for the whole call, across
	// the files, the catalog reads and the archives between them.
	p, err := goose.NewProvider(dialect, db, fsys, opts...)
	if err != nil {
		// Only the file set can be wrong here (names, duplicate versions).
		return nil, nil, t, invalidf("migrations in %q for database %q: %v", in.Dir, in.Database, err)
	}
	return p, db, t, nil
}

// lockDatabase takes goose's PostgreSQL advisory lock (the ID goose's own
// session locker uses, so goose CLIs and older workers are excluded too) on
// a connection of its own, and holds it until unlock: concurrent
// deployments to the same database are serialised for a whole migrate call,
// not file by file. It waits up to LockTimeout (default 5 minutes) and
// gives up when ctx is cancelled. SQLite needs no lock (one writer).
func (m *Migrations) lockDatabase(ctx context.Context, db *sql.DB, t DatabaseTarget, database string) (unlock func(), err error) {
	if t.Dialect != DialectPostgres {
		return func() {}, nil
	}
	timeout := m.LockTimeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to database %s to take the migration lock: %w", database, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		var ok bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, lock.DefaultLockID).Scan(&ok); err != nil {
			conn.Close()
			return nil, fmt.Errorf("taking the migration lock of database %s: %w", database, err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			conn.Close()
			return nil, fmt.Errorf("database %s: another migration has held the lock for more than %s", database, timeout)
		}
		select {
		case <-ctx.Done():
			conn.Close()
			return nil, fmt.Errorf("waiting for the migration lock of database %s: %w", database, ctx.Err())
		case <-time.After(time.Second):
		}
	}
	return func() {
		// Closing the session would release it too; unlocking first lets
		// the pool reuse the connection.
		uctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(uctx, `SELECT pg_advisory_unlock($1)`, lock.DefaultLockID); err != nil {
			// The pool must not keep a session that may still hold the
			// lock: close it underneath (the driver then reports it
			// invalid and the pool discards it), which releases the lock.
			_ = conn.Raw(func(dc any) error {
				if c, ok := dc.(io.Closer); ok {
					return c.Close()
				}
				return nil
			})
		}
		conn.Close()
	}, nil
}

func (m *Migrations) heartbeatEvery() time.Duration {
	if m.HeartbeatInterval > 0 {
		return m.HeartbeatInterval
	}
	return 2 * time.Second
}

// versionTableExists reports whether goose's version table exists, without
// creating it (any goose call would).
func versionTableExists(ctx context.Context, db *sql.DB, dialect string) (bool, error) {
	var exists bool
	var err error
	if dialect == DialectSQLite {
		err = db.QueryRowContext(ctx, `SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?`, gooseTable).Scan(&exists)
	} else {
		err = db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, gooseTable).Scan(&exists)
	}
	return exists, err
}

// currentVersion is the database's version, 0 when goose never ran there.
func currentVersion(ctx context.Context, p *goose.Provider, db *sql.DB, t DatabaseTarget) (int64, error) {
	exists, err := versionTableExists(ctx, db, t.Dialect)
	if err != nil {
		return 0, err
	}
	if !exists {
		return 0, nil
	}
	// GetVersions does not take the session lock, so a capture is not
	// blocked by another deployment's migration.
	cur, _, err := p.GetVersions(ctx)
	return cur, err
}

// CaptureSchema returns the target's current schema version (0 when the
// goose version table does not exist). It creates nothing.
//
// Errors: ErrInvalid for an unknown target or unusable files; plain errors
// (retried) when the database cannot be reached.
func (m *Migrations) CaptureSchema(ctx context.Context, in MigrateInput) (SchemaState, error) {
	p, db, t, err := m.provider(in)
	if err != nil {
		return SchemaState{}, err
	}
	v, err := currentVersion(ctx, p, db, t)
	if err != nil {
		return SchemaState{}, fmt.Errorf("reading schema version of database %q: %w", in.Database, err)
	}
	logger(ctx).Info("captured schema version", "database", in.Database, "version", v)
	return SchemaState{Database: in.Database, Version: v}, nil
}

// MigrateUp applies migrations up to in.Target (0: the highest in the
// bundle), one file at a time, reading the catalog before and after each
// file to learn what it created (the result's Files). A database already at
// or above the target is left alone (the result has From == To and no
// Applied), so a retry after a lost response succeeds.
//
// With in.Policy "archive" each file's catalog diff is also written to
// rollbook_archive.migration_files before the next file runs (and the
// catalog before it, before it runs), so that a rollback knows what to
// preserve even when this activity's answer is lost or it fails half-way.
// When that bookkeeping cannot be written, nothing is migrated: a rollback
// could not preserve the data (non-retryable ErrArchive).
//
// A migration that fails leaves the schema at the last version that
// succeeded (each file runs in its own transaction) and returns the error:
// non-retryable ErrInvalid when the database rejected the SQL (or the file
// cannot be parsed), a plain error when the connection failed. The workflow
// then runs MigrateDown to the captured version.
func (m *Migrations) MigrateUp(ctx context.Context, in MigrateUpInput) (MigrateResult, error) {
	p, db, t, err := m.provider(in.MigrateInput)
	if err != nil {
		return MigrateResult{}, err
	}
	sources := p.ListSources()
	target := in.Target
	if target == 0 {
		target = sources[len(sources)-1].Version
	}
	if !slices.ContainsFunc(sources, func(s *goose.Source) bool { return s.Version == target }) {
		return MigrateResult{}, invalidf("target version %d of database %q is not among the migrations in %q", target, in.Database, in.Dir)
	}
	stop := keepAlive(ctx, m.heartbeatEvery(), func() any { return fmt.Sprintf("migrating %s up to %d", in.Database, target) })
	defer stop()
	unlock, err := m.lockDatabase(ctx, db, t, in.Database)
	if err != nil {
		return MigrateResult{}, err
	}
	defer unlock()
	from, err := currentVersion(ctx, p, db, t)
	if err != nil {
		return MigrateResult{}, fmt.Errorf("reading schema version of database %q: %w", in.Database, err)
	}
	arch := &archiver{db: db, dialect: t.Dialect}
	record := in.Policy == runbook.OnRollbackArchive
	res := MigrateResult{From: from, To: from}
	// Files an earlier attempt of this step applied (a crash, a lost
	// answer): their recorded diffs, completed for the last one if the
	// attempt died between its commit and the record.
	if record {
		if err := arch.ensure(ctx); err != nil {
			return MigrateResult{}, archiveError(fmt.Sprintf("creating the %s bookkeeping in database %s (needed to preserve data on rollback); nothing was migrated", ArchiveSchema, in.Database), err)
		}
		earlier, err := m.earlierFiles(ctx, arch, in.StepRef, from)
		if err != nil {
			return MigrateResult{}, archiveError(fmt.Sprintf("reading the recorded catalog diffs of step %s in database %s", in.Step, in.Database), err)
		}
		res.Files = earlier
	}
	if from >= target {
		logger(ctx).Info("schema already at or above target, nothing to apply", "database", in.Database, "version", from, "target", target)
		return res, nil
	}
	run := upRun{p: p, db: db, t: t, arch: arch, in: in, record: record}
	for cur := from; cur < target; {
		f, err := run.one(ctx, sources, cur)
		if f.Version > cur {
			cur = f.Version
			res.Applied = append(res.Applied, cur)
			res.To = cur
		}
		if err != nil {
			return res, err
		}
		res.Files = append(res.Files, f)
	}
	logger(ctx).Info("migrated schema up", "database", in.Database, "from", res.From, "to", res.To, "applied", res.Applied, "created", res.Files)
	return res, nil
}

// upRun is one MigrateUp call's state for applying its files one by one.
type upRun struct {
	p      *goose.Provider
	db     *sql.DB
	t      DatabaseTarget
	arch   *archiver
	in     MigrateUpInput
	record bool
}

// one applies the next file above cur and returns what it created (its
// Version is the version reached, set as soon as the file is applied, even
// when the bookkeeping after it fails). With record, the catalog before it and
// its diff are written to the archive bookkeeping around it. A failure of
// the file itself leaves the schema at cur.
func (u upRun) one(ctx context.Context, sources []*goose.Source, cur int64) (FileObjects, error) {
	next := int64(-1)
	for _, s := range sources {
		if s.Version > cur {
			next = s.Version
			break
		}
	}
	before, err := readCatalog(ctx, u.db, u.t.Dialect)
	if err != nil {
		return FileObjects{}, fmt.Errorf("migrating database %s up: before migration %d: %w", u.in.Database, next, err)
	}
	if u.record {
		if err := u.arch.recordBefore(ctx, u.in.StepRef, next, before); err != nil {
			return FileObjects{}, archiveError(fmt.Sprintf("recording the catalog of database %s before migration %d", u.in.Database, next), err)
		}
	}
	r, err := u.p.UpByOne(ctx)
	if err != nil {
		return FileObjects{}, migrationError(ctx, "up", u.in.Database, cur, err)
	}
	done := r.Source.Version
	after, err := readCatalog(ctx, u.db, u.t.Dialect)
	if err != nil {
		return FileObjects{Version: done}, fmt.Errorf("migrating database %s up: after migration %d: %w", u.in.Database, done, err)
	}
	f := FileObjects{Version: done, Created: diffCatalog(before, after)}
	if u.record {
		if err := u.arch.recordCreated(ctx, u.in.StepRef, done, f.Created); err != nil {
			return FileObjects{Version: done}, archiveError(fmt.Sprintf("recording what migration %d created in database %s", done, u.in.Database), err)
		}
	}
	return f, nil
}

// earlierFiles returns the recorded diffs of files this step applied in an
// earlier attempt, up to version cur. A file whose diff was not recorded
// (the attempt died right after its commit) but whose prior catalog was is
// the last one applied: its diff is the catalog now minus that one.
func (m *Migrations) earlierFiles(ctx context.Context, arch *archiver, ref StepRef, cur int64) ([]FileObjects, error) {
	recs, err := arch.files(ctx, ref)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	versions := make([]int64, 0, len(recs))
	for v := range recs {
		if v <= cur {
			versions = append(versions, v)
		}
	}
	slices.Sort(versions)
	var out []FileObjects
	for _, v := range versions {
		r := recs[v]
		if !r.Known {
			if v != cur || r.Before == nil {
				continue
			}
			now, err := readCatalog(ctx, arch.db, arch.dialect)
			if err != nil {
				return nil, err
			}
			r.Created = diffCatalog(r.Before, now)
			if err := arch.recordCreated(ctx, ref, v, r.Created); err != nil {
				return nil, err
			}
		}
		out = append(out, FileObjects{Version: v, Created: r.Created})
	}
	return out, nil
}

// MigrateDown reverts the target to in.Captured.Version. It reports
// AlreadyRestored when the schema is already there.
//
// With in.Policy "archive" it goes file by file, newest first: it copies the
// rows of the tables the file created and the values of the columns it
// added (with the primary key) into the archive, commits, and only then runs
// that file's Down. The result's Archived lists what was preserved. A file
// whose catalog diff is unknown, or an archive that cannot be written, stops
// before its Down with a non-retryable ErrArchive.
//
// Errors: ErrConflict when the schema is below the captured version, or
// holds versions this bundle does not know (another deployment migrated it);
// ErrInvalid when a Down section fails in the database; ErrArchive (see
// above); plain errors for connection problems.
func (m *Migrations) MigrateDown(ctx context.Context, in MigrateDownInput) (RestoreResult, error) {
	p, db, t, err := m.provider(in.MigrateInput)
	if err != nil {
		return RestoreResult{}, err
	}
	arch := &archiver{db: db, dialect: t.Dialect}
	want := in.Captured.Version
	stop := keepAlive(ctx, m.heartbeatEvery(), func() any { return fmt.Sprintf("migrating %s down to %d", in.Database, want) })
	defer stop()
	unlock, err := m.lockDatabase(ctx, db, t, in.Database)
	if err != nil {
		return RestoreResult{}, err
	}
	defer unlock()
	cur, err := currentVersion(ctx, p, db, t)
	if err != nil {
		return RestoreResult{}, fmt.Errorf("reading schema version of database %q: %w", in.Database, err)
	}
	switch {
	case cur == want:
		res := RestoreResult{AlreadyRestored: true, Detail: fmt.Sprintf("database %s already at version %d", in.Database, want)}
		if in.Policy == runbook.OnRollbackArchive {
			// An earlier attempt may have done the work and lost the answer.
			if res.Archived, err = arch.archived(ctx, in.StepRef); err != nil {
				return RestoreResult{}, fmt.Errorf("reading the archive catalog of database %s: %w", in.Database, err)
			}
			res.Detail += preservedDetail(res.Archived)
		}
		return res, nil
	case cur < want:
		return RestoreResult{}, conflictf("database %s is at version %d, below the captured version %d: someone migrated it down; not migrating up in a rollback", in.Database, cur, want)
	}
	if !slices.ContainsFunc(p.ListSources(), func(s *goose.Source) bool { return s.Version == cur }) {
		return RestoreResult{}, conflictf("database %s is at version %d and holds a migration that is not in %q of this bundle (another deployment?)", in.Database, cur, in.Dir)
	}
	var reverted []int64
	if in.Policy == runbook.OnRollbackArchive {
		reverted, err = m.archiveAndDown(ctx, p, arch, in, cur)
	} else {
		var results []*goose.MigrationResult
		results, err = p.DownTo(ctx, want)
		var partial *goose.PartialError
		if errors.As(err, &partial) {
			results = partial.Applied
		}
		for _, r := range results {
			reverted = append(reverted, r.Source.Version)
		}
	}
	if err != nil {
		if errors.Is(err, goose.ErrVersionNotFound) {
			return RestoreResult{}, conflictf("database %s is at version %d and holds a migration that is not in %q of this bundle (another deployment?): %v", in.Database, cur, in.Dir, err)
		}
		var app *temporal.ApplicationError
		if errors.As(err, &app) {
			return RestoreResult{}, err
		}
		left := cur
		if len(reverted) > 0 {
			left = reverted[len(reverted)-1] - 1
		}
		return RestoreResult{}, migrationError(ctx, "down", in.Database, left, err)
	}
	res := RestoreResult{Detail: fmt.Sprintf("database %s migrated down from %d to %d (reverted %v)", in.Database, cur, want, reverted)}
	switch in.Policy {
	case runbook.OnRollbackArchive:
		if res.Archived, err = arch.archived(ctx, in.StepRef); err != nil {
			return RestoreResult{}, fmt.Errorf("reading the archive catalog of database %s: %w", in.Database, err)
		}
		res.Detail += preservedDetail(res.Archived)
	case runbook.OnRollbackDrop:
		res.Detail += "; nothing preserved (onRollback: drop)"
	}
	logger(ctx).Info("migrated schema down", "database", in.Database, "from", cur, "to", want, "reverted", reverted, "archived", res.Archived)
	return res, nil
}

// archiveAndDown preserves then reverts each file above the captured
// version, newest first, and returns the versions reverted.
func (m *Migrations) archiveAndDown(ctx context.Context, p *goose.Provider, arch *archiver, in MigrateDownInput, cur int64) ([]int64, error) {
	want := in.Captured.Version
	if err := arch.ensure(ctx); err != nil {
		return nil, archiveError(fmt.Sprintf("creating the %s schema in database %s before migrating down", ArchiveSchema, in.Database), err)
	}
	recs, err := arch.files(ctx, in.StepRef)
	if err != nil {
		return nil, archiveError(fmt.Sprintf("reading the recorded catalog diffs of step %s in database %s", in.Step, in.Database), err)
	}
	var reverted []int64
	for cur > want {
		objs, err := m.createdBy(ctx, arch, in, recs, cur)
		if err != nil {
			return reverted, err
		}
		if _, err := arch.archiveFile(ctx, in.StepRef, cur, objs); err != nil {
			return reverted, archiveError(fmt.Sprintf("preserving the data of migration %d in database %s before its Down", cur, in.Database), err)
		}
		if m.Hooks.ArchiveDone != nil {
			m.Hooks.ArchiveDone(ctx)
		}
		// Exactly this file's Down: goose's Down walks every applied
		// version and fails on one from another folder of the runbook
		// (an earlier deployment's contract step) even though only the
		// newest would be reverted.
		r, err := p.ApplyVersion(ctx, cur, false)
		if err != nil {
			return reverted, err
		}
		reverted = append(reverted, r.Source.Version)
		if cur, err = p.GetDBVersion(ctx); err != nil {
			return reverted, err
		}
	}
	return reverted, nil
}

// createdBy is what migration v created: from the workflow's record of the
// apply, else the database's record, else (the apply died between the file
// and its record) the catalog now minus the one recorded before the file:
// at this point of a down, the schema is the one right after v's Up.
func (m *Migrations) createdBy(ctx context.Context, arch *archiver, in MigrateDownInput, recs map[int64]fileRecord, v int64) ([]CatalogObject, error) {
	for _, f := range in.Created {
		if f.Version == v {
			return f.Created, nil
		}
	}
	r, ok := recs[v]
	switch {
	case ok && r.Known:
		return r.Created, nil
	case ok && r.Before != nil:
		now, err := readCatalog(ctx, arch.db, arch.dialect)
		if err != nil {
			return nil, fmt.Errorf("reading the catalog of database %s before migration %d's Down: %w", in.Database, v, err)
		}
		return diffCatalog(r.Before, now), nil
	}
	return nil, archivef("migration %d of database %s: what it created was never recorded (it was not applied by step %s of this deployment, or the record was deleted), so its data cannot be preserved; the Down was not run. Preserve the data by hand and skip this compensation, or redeploy", v, in.Database, in.Step)
}

// preservedDetail is the archive summary appended to a compensation's
// detail.
func preservedDetail(objs []ArchivedObject) string {
	if len(objs) == 0 {
		return "; nothing to preserve"
	}
	parts := make([]string, len(objs))
	for i, o := range objs {
		parts[i] = o.String()
	}
	return "; preserved " + strings.Join(parts, ", ")
}

// migrationError classifies a goose failure: SQL the database rejected, or a
// file that does not parse, will fail again the same way (non-retryable
// ErrInvalid); connection-level failures are retried.
func migrationError(ctx context.Context, dir, database string, left int64, err error) error {
	var partial *goose.PartialError
	what := fmt.Sprintf("migrating database %s %s", database, dir)
	if errors.As(err, &partial) {
		what = fmt.Sprintf("migrating database %s %s: migration %d (%s) failed, schema left at version %d", database, dir,
			partial.Failed.Source.Version, path.Base(partial.Failed.Source.Path), left)
	}
	logger(ctx).Error("migration failed", "database", database, "direction", dir, "leftAt", left, "error", err)
	if permanentSQLError(err) {
		return invalidf("%s: %v", what, err)
	}
	if partial == nil && strings.Contains(err.Error(), "failed to prepare migration") {
		return invalidf("%s: %v", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// permanentSQLError reports whether the database refused a statement for a
// reason that a retry will not change.
func permanentSQLError(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code[:2] {
		case "08", "40", "53", "57", "58": // connection, rollback (deadlock, serialization), resources, operator, system
			return false
		}
		return true
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		switch lite.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN:
			return false
		}
		return true
	}
	return false
}
