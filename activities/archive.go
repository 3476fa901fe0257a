package activities

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"go.temporal.io/sdk/temporal"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// The archive: before a migration file's Down runs, the rows of the tables
// its Up created and the values of the columns it added (with the primary
// key) are copied where the Down cannot reach them.
//
// Layout (a contract: the write checker and docs/archive.md rely on it):
//
//   - PostgreSQL: schema rollbook_archive in the target database. The catalog
//     is rollbook_archive.archives; each archived object is a table
//     rollbook_archive.<step>__<table>[__<column>]_v<version>_<hash>.
//   - SQLite: the same tables in the same database file, with the schema
//     name as a prefix: rollbook_archive__archives and
//     rollbook_archive__<step>__…; an attached file would not survive a
//     copy of the database file, and one file is what SQLite users back up.
//
// The catalog's archive_table column holds the name to put after FROM as is
// (rollbook_archive.x on PostgreSQL, rollbook_archive__x on SQLite). Names
// are lower-case [a-z0-9_] and at most 63 bytes (PostgreSQL's identifier
// limit); the hash of deployment, step, version and object keeps them
// unique when the readable part is cut.
//
// rollbook_archive.migration_files (SQLite: rollbook_archive__migration_files)
// records each file's catalog diff as the migration applies it, so that a
// rollback knows what to preserve even when the apply's answer never reached
// the workflow (a crash, a failure half-way).
const (
	ArchiveSchema       = "rollbook_archive"
	sqliteArchivePrefix = "rollbook_archive__"
	maxIdentifier       = 63
)

func archivef(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), ErrArchive, nil)
}

// archiveError classifies a failure to write the archive: a lost connection
// or a lock conflict is retried; anything the database refused (permissions,
// disk full, a read-only database) stops the rollback for an operator.
func archiveError(what string, err error) error {
	if transientDBError(err) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return archivef("%s: %v; the Down was not run, so nothing is lost", what, err)
}

func transientDBError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, driver.ErrBadConn) {
		return true
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code[:2] {
		case "08", "40", "57":
			return true
		}
		return false
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		switch lite.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
		return false
	}
	// Not an answer from the database: the network or the driver.
	return true
}

// archiver reads and writes the archive of one database target.
type archiver struct {
	db      *sql.DB
	dialect string
}

func (a *archiver) sqlite() bool { return a.dialect == DialectSQLite }

// q adapts a query written with $n placeholders to the dialect.
func (a *archiver) q(query string) string {
	if a.sqlite() {
		return strings.ReplaceAll(query, "$", "?")
	}
	return query
}

// table returns the usable name of a rollbook archive table.
func (a *archiver) table(name string) string {
	if a.sqlite() {
		return sqliteArchivePrefix + name
	}
	return ArchiveSchema + "." + name
}

// ensure creates the archive schema and its two bookkeeping tables.
func (a *archiver) ensure(ctx context.Context) error {
	ts, now := "timestamptz", "now()"
	var stmts []string
	if a.sqlite() {
		ts, now = "text", "CURRENT_TIMESTAMP"
	} else {
		stmts = append(stmts, "CREATE SCHEMA IF NOT EXISTS "+ArchiveSchema)
	}
	stmts = append(stmts,
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
    deployment_id text NOT NULL,
    step          text NOT NULL,
    version       bigint NOT NULL,
    kind          text NOT NULL,
    source_table  text NOT NULL,
    source_column text,
    archive_table text NOT NULL PRIMARY KEY,
    rows          bigint NOT NULL,
    created_at    %s NOT NULL DEFAULT %s,
    updated_at    %s NOT NULL DEFAULT %s
)`, a.table("archives"), ts, now, ts, now),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
    deployment_id  text NOT NULL,
    step           text NOT NULL,
    version        bigint NOT NULL,
    before_catalog text,
    created        text,
    recorded_at    %s NOT NULL DEFAULT %s,
    PRIMARY KEY (deployment_id, step, version)
)`, a.table("migration_files"), ts, now))
	for _, s := range stmts {
		if _, err := a.db.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// fileRecord is what migration_files holds for one applied file.
type fileRecord struct {
	Before  catalog
	Created []CatalogObject
	Known   bool // Created was recorded (it may be empty)
}

func (a *archiver) recordBefore(ctx context.Context, ref StepRef, version int64, before catalog) error {
	b, err := json.Marshal(before)
	if err != nil {
		return err
	}
	_, err = a.db.ExecContext(ctx, a.q(`INSERT INTO `+a.table("migration_files")+` (deployment_id, step, version, before_catalog)
VALUES ($1, $2, $3, $4)
ON CONFLICT (deployment_id, step, version) DO UPDATE SET before_catalog = excluded.before_catalog, created = NULL`),
		ref.DeploymentID, ref.Step, version, string(b))
	return err
}

func (a *archiver) recordCreated(ctx context.Context, ref StepRef, version int64, created []CatalogObject) error {
	b, err := json.Marshal(created)
	if err != nil {
		return err
	}
	_, err = a.db.ExecContext(ctx, a.q(`INSERT INTO `+a.table("migration_files")+` (deployment_id, step, version, created)
VALUES ($1, $2, $3, $4)
ON CONFLICT (deployment_id, step, version) DO UPDATE SET created = excluded.created`),
		ref.DeploymentID, ref.Step, version, string(b))
	return err
}

// exists reports whether the bookkeeping tables exist (a database that never
// saw an archive policy has none), without creating anything.
func (a *archiver) exists(ctx context.Context) (bool, error) {
	var ok bool
	var err error
	if a.sqlite() {
		err = a.db.QueryRowContext(ctx, `SELECT count(*) = 2 FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)`,
			a.table("archives"), a.table("migration_files")).Scan(&ok)
	} else {
		err = a.db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL`,
			a.table("archives"), a.table("migration_files")).Scan(&ok)
	}
	return ok, err
}

// files returns the records of one step's files by version.
func (a *archiver) files(ctx context.Context, ref StepRef) (map[int64]fileRecord, error) {
	out := map[int64]fileRecord{}
	if ok, err := a.exists(ctx); err != nil || !ok {
		return out, err
	}
	rows, err := a.db.QueryContext(ctx, a.q(`SELECT version, before_catalog, created FROM `+a.table("migration_files")+`
WHERE deployment_id = $1 AND step = $2`), ref.DeploymentID, ref.Step)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var v int64
		var before, created sql.NullString
		if err := rows.Scan(&v, &before, &created); err != nil {
			return nil, err
		}
		var r fileRecord
		if before.Valid {
			if err := json.Unmarshal([]byte(before.String), &r.Before); err != nil {
				return nil, fmt.Errorf("decoding the recorded catalog of migration %d: %w", v, err)
			}
		}
		if created.Valid {
			if err := json.Unmarshal([]byte(created.String), &r.Created); err != nil {
				return nil, fmt.Errorf("decoding the recorded catalog diff of migration %d: %w", v, err)
			}
			r.Known = true
		}
		out[v] = r
	}
	return out, rows.Err()
}

// archived lists what was preserved for one step, in the order it was
// archived (highest version first, as the Downs ran).
func (a *archiver) archived(ctx context.Context, ref StepRef) ([]ArchivedObject, error) {
	if ok, err := a.exists(ctx); err != nil || !ok {
		return nil, err
	}
	rows, err := a.db.QueryContext(ctx, a.q(`SELECT version, kind, source_table, source_column, archive_table, rows FROM `+a.table("archives")+`
WHERE deployment_id = $1 AND step = $2 ORDER BY version DESC, archive_table`), ref.DeploymentID, ref.Step)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ArchivedObject
	for rows.Next() {
		var o ArchivedObject
		var col sql.NullString
		if err := rows.Scan(&o.Version, &o.Kind, &o.Table, &col, &o.ArchiveTable, &o.Rows); err != nil {
			return nil, err
		}
		o.Column = col.String
		out = append(out, o)
	}
	return out, rows.Err()
}

// archiveName is the archive table of one object (unqualified).
func archiveName(ref StepRef, version int64, o CatalogObject, dialect string) string {
	sum := sha256.Sum256([]byte(strings.Join([]string{ref.DeploymentID, ref.Step, strconv.FormatInt(version, 10), o.Kind, o.Table, o.Column}, "\x00")))
	suffix := fmt.Sprintf("_v%d_%x", version, sum[:4])
	base := identPart(ref.Step) + "__" + identPart(o.Table)
	if o.Kind == ObjectColumn {
		base += "__" + identPart(o.Column)
	}
	room := maxIdentifier - len(suffix)
	if dialect == DialectSQLite {
		room -= len(sqliteArchivePrefix)
	}
	if len(base) > room {
		base = base[:room]
	}
	return base + suffix
}

// identPart keeps a name readable inside an identifier that needs no quoting.
func identPart(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "x"
	}
	return b.String()
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func quoteIdents(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = quoteIdent(c)
	}
	return strings.Join(q, ", ")
}

// sourceColumn is one column of a source table.
type sourceColumn struct {
	Name string
	Type string
	PK   int // position in the primary key, 0 when not part of it
}

// sourceColumns reads a table of the migrations' schema; nil when it does
// not exist.
func (a *archiver) sourceColumns(ctx context.Context, tx *sql.Tx, table string) ([]sourceColumn, error) {
	// int2vector subscripts start at 0: number the key columns with
	// ORDINALITY instead of array_position.
	query := `SELECT a.attname, format_type(a.atttypid, a.atttypmod),
       coalesce((SELECT k.ord FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) WHERE k.attnum = a.attnum), 0)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid
LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
WHERE n.nspname = current_schema() AND c.relname = $1 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`
	if a.sqlite() {
		query = `SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid`
	}
	rows, err := tx.QueryContext(ctx, query, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []sourceColumn
	for rows.Next() {
		var c sourceColumn
		if err := rows.Scan(&c.Name, &c.Type, &c.PK); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

// archiveFile preserves, in one transaction, the objects one migration file
// created, and records them in the catalog. Repeating it (a retry after a
// crash between the archive and the Down) neither duplicates a row nor
// loses one written since: rows are upserted on the source's primary key
// (with the latest values), and a table without a primary key is copied
// afresh.
func (a *archiver) archiveFile(ctx context.Context, ref StepRef, version int64, objs []CatalogObject) ([]ArchivedObject, error) {
	if len(objs) == 0 {
		return nil, nil
	}
	tx, err := a.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	var out []ArchivedObject
	for _, o := range objs {
		ao, ok, err := a.copyObject(ctx, tx, ref, version, o)
		if err != nil {
			return nil, fmt.Errorf("preserving %s of migration %d: %w", o, version, err)
		}
		if ok {
			out = append(out, ao)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return out, nil
}

func (a *archiver) copyObject(ctx context.Context, tx *sql.Tx, ref StepRef, version int64, o CatalogObject) (ArchivedObject, bool, error) {
	src, err := a.sourceColumns(ctx, tx, o.Table)
	if err != nil {
		return ArchivedObject{}, false, err
	}
	cols, pk, ok := archiveColumns(src, o)
	if !ok {
		// Gone already (a later file's Down, or by hand): nothing to keep.
		return ArchivedObject{}, false, nil
	}
	arch := a.table(archiveName(ref, version, o, a.dialect))
	source := quoteIdent(o.Table)
	if err := a.createArchive(ctx, tx, arch, source, cols, pk); err != nil {
		return ArchivedObject{}, false, err
	}
	if len(pk) == 0 {
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+arch); err != nil {
			return ArchivedObject{}, false, fmt.Errorf("emptying %s for a fresh copy: %w", arch, err)
		}
	}
	if _, err := tx.ExecContext(ctx, copySQL(arch, source, cols, pk)); err != nil {
		return ArchivedObject{}, false, fmt.Errorf("copying into %s: %w", arch, err)
	}
	ao := ArchivedObject{Version: version, Kind: o.Kind, Table: o.Table, Column: o.Column, ArchiveTable: arch}
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM "+arch).Scan(&ao.Rows); err != nil {
		return ArchivedObject{}, false, err
	}
	if err := a.recordArchive(ctx, tx, ref, ao); err != nil {
		return ArchivedObject{}, false, err
	}
	return ao, true, nil
}

// archiveColumns chooses what to copy of o: a whole table, or a column with
// the primary key that identifies its rows (without one, the whole row is
// the only identification there is). ok is false when o is gone.
func archiveColumns(src []sourceColumn, o CatalogObject) (cols, pk []sourceColumn, ok bool) {
	if len(src) == 0 {
		return nil, nil, false
	}
	for _, c := range src {
		if c.PK > 0 {
			pk = append(pk, c)
		}
	}
	slices.SortFunc(pk, func(x, y sourceColumn) int { return x.PK - y.PK })
	cols = src
	if o.Kind == ObjectColumn {
		i := slices.IndexFunc(src, func(c sourceColumn) bool { return c.Name == o.Column })
		if i < 0 {
			return nil, nil, false
		}
		if len(pk) > 0 && src[i].PK == 0 {
			cols = append(slices.Clone(pk), src[i])
		} else if len(pk) > 0 {
			cols = slices.Clone(pk)
		}
	}
	return cols, pk, true
}

func columnNames(cols []sourceColumn) []string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return names
}

// createArchive creates the archive table arch for cols of source, with
// the source's primary key, unless it exists (a retry).
func (a *archiver) createArchive(ctx context.Context, tx *sql.Tx, arch, source string, cols, pk []sourceColumn) error {
	pkNames := columnNames(pk)
	if a.sqlite() {
		defs := make([]string, len(cols))
		for i, c := range cols {
			defs[i] = strings.TrimSpace(quoteIdent(c.Name) + " " + c.Type)
		}
		if len(pk) > 0 {
			defs = append(defs, "PRIMARY KEY ("+quoteIdents(pkNames)+")")
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (%s)", arch, strings.Join(defs, ", "))); err != nil {
			return fmt.Errorf("creating %s: %w", arch, err)
		}
		return nil
	}
	var exists bool
	if err := tx.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, arch).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s AS SELECT %s FROM %s WITH NO DATA", arch, quoteIdents(columnNames(cols)), source)); err != nil {
		return fmt.Errorf("creating %s: %w", arch, err)
	}
	if len(pk) > 0 {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("ALTER TABLE %s ADD PRIMARY KEY (%s)", arch, quoteIdents(pkNames))); err != nil {
			return fmt.Errorf("adding the primary key to %s: %w", arch, err)
		}
	}
	return nil
}

// copySQL copies cols of source into arch. With a primary key a retry
// updates the rows it copied before; without one the caller empties arch
// first.
func copySQL(arch, source string, cols, pk []sourceColumn) string {
	names := columnNames(cols)
	q := fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s WHERE true", arch, quoteIdents(names), quoteIdents(names), source)
	if len(pk) == 0 {
		return q
	}
	var sets []string
	for _, c := range cols {
		if c.PK == 0 {
			sets = append(sets, fmt.Sprintf("%s = excluded.%s", quoteIdent(c.Name), quoteIdent(c.Name)))
		}
	}
	if len(sets) == 0 {
		return q + " ON CONFLICT (" + quoteIdents(columnNames(pk)) + ") DO NOTHING"
	}
	return q + " ON CONFLICT (" + quoteIdents(columnNames(pk)) + ") DO UPDATE SET " + strings.Join(sets, ", ")
}

// recordArchive writes ao into the archive catalog.
func (a *archiver) recordArchive(ctx context.Context, tx *sql.Tx, ref StepRef, ao ArchivedObject) error {
	var col sql.NullString
	if ao.Kind == ObjectColumn {
		col = sql.NullString{String: ao.Column, Valid: true}
	}
	now := "now()"
	if a.sqlite() {
		now = "CURRENT_TIMESTAMP"
	}
	if _, err := tx.ExecContext(ctx, a.q(`INSERT INTO `+a.table("archives")+` (deployment_id, step, version, kind, source_table, source_column, archive_table, rows)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (archive_table) DO UPDATE SET rows = excluded.rows, updated_at = `+now),
		ref.DeploymentID, ref.Step, ao.Version, ao.Kind, ao.Table, col, ao.ArchiveTable, ao.Rows); err != nil {
		return fmt.Errorf("recording %s in the archive catalog: %w", ao.ArchiveTable, err)
	}
	return nil
}
