package activities

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/runbook"
)

func openSQLite(t *testing.T, file string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", file)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestDiffCatalog(t *testing.T) {
	before := catalog{"accounts": {"id", "name"}, "old": {"id"}}
	after := catalog{"accounts": {"id", "name", "balance", "currency"}, "ledger": {"id", "amount"}, "old": {"id"}}
	require.Equal(t, []CatalogObject{
		{Kind: ObjectColumn, Table: "accounts", Column: "balance"},
		{Kind: ObjectColumn, Table: "accounts", Column: "currency"},
		{Kind: ObjectTable, Table: "ledger"},
	}, diffCatalog(before, after))
	require.Empty(t, diffCatalog(after, after))
	// A dropped table or column is not "created".
	require.Empty(t, diffCatalog(after, before))
}

func TestArchiveName(t *testing.T) {
	ref := StepRef{DeploymentID: "rollbook-payments-api/0b6c", Step: "expand-schema"}
	n := archiveName(ref, 1, CatalogObject{Kind: ObjectTable, Table: "ledger_entries"}, DialectPostgres)
	require.Regexp(t, `^expand_schema__ledger_entries_v1_[0-9a-f]{8}$`, n)
	require.NotEqual(t, n, archiveName(StepRef{DeploymentID: "other", Step: ref.Step}, 1, CatalogObject{Kind: ObjectTable, Table: "ledger_entries"}, DialectPostgres),
		"another deployment gets another table")
	long := CatalogObject{Kind: ObjectColumn, Table: strings.Repeat("T", 60), Column: "Ref-Ünicode"}
	for _, d := range []string{DialectPostgres, DialectSQLite} {
		n := archiveName(ref, 12345, long, d)
		full := n
		if d == DialectSQLite {
			full = sqliteArchivePrefix + n
		}
		require.LessOrEqual(t, len(full), maxIdentifier, "%s: %s", d, full)
		require.Regexp(t, `^[a-z0-9_]+$`, n)
	}
	require.NotEqual(t, archiveName(ref, 1, CatalogObject{Kind: ObjectColumn, Table: long.Table, Column: "a"}, DialectPostgres),
		archiveName(ref, 1, CatalogObject{Kind: ObjectColumn, Table: long.Table, Column: "b"}, DialectPostgres),
		"cut names stay unique through the hash")
}

// The payments example's shape: file 1 creates a table, file 2 adds a
// column to it, file 3 adds an index (creates nothing to preserve).
var archiveFiles = []runbook.File{
	{Path: migDir + "/00001_ledger.sql", Content: `-- +goose Up
CREATE TABLE ledger_entries (id INTEGER PRIMARY KEY, account_id TEXT NOT NULL, amount_cents BIGINT NOT NULL, memo TEXT);
-- +goose Down
DROP TABLE ledger_entries;
`},
	{Path: migDir + "/00002_reference.sql", Content: `-- +goose Up
ALTER TABLE ledger_entries ADD COLUMN external_reference TEXT;
-- +goose Down
ALTER TABLE ledger_entries DROP COLUMN external_reference;
`},
	{Path: migDir + "/00003_index.sql", Content: `-- +goose Up
CREATE INDEX ledger_account ON ledger_entries (account_id);
-- +goose Down
DROP INDEX ledger_account;
`},
	// A table without a primary key: archived by copying it afresh.
	{Path: migDir + "/00004_events.sql", Content: `-- +goose Up
CREATE TABLE events (kind TEXT, payload TEXT);
-- +goose Down
DROP TABLE events;
`},
}

func insertLedger(t *testing.T, db *sql.DB, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		_, err := db.Exec(`INSERT INTO ledger_entries (id, account_id, amount_cents, memo, external_reference) VALUES (?, ?, ?, ?, ?)`,
			i, fmt.Sprintf("acct-%d", i%3), i*100, fmt.Sprintf("memo %d", i), fmt.Sprintf("ref-%d", i))
		require.NoError(t, err)
	}
}

func TestArchiveBeforeDownSQLite(t *testing.T) {
	m, file := newSQLiteMigrations(t)
	db := openSQLite(t, file)
	in := MigrateInput{StepRef: StepRef{DeploymentID: "rollbook-payments/run1", Step: "expand-schema"}, Database: "payments", Dir: migDir, Files: archiveFiles}
	captured, err := runActivity[SchemaState](t, m, m.CaptureSchema, in)
	require.NoError(t, err)

	up, err := runActivity[MigrateResult](t, m, m.MigrateUp, MigrateUpInput{MigrateInput: in, Policy: runbook.OnRollbackArchive})
	require.NoError(t, err)
	require.Equal(t, []FileObjects{
		{Version: 1, Created: []CatalogObject{{Kind: ObjectTable, Table: "ledger_entries"}}},
		{Version: 2, Created: []CatalogObject{{Kind: ObjectColumn, Table: "ledger_entries", Column: "external_reference"}}},
		{Version: 3},
		{Version: 4, Created: []CatalogObject{{Kind: ObjectTable, Table: "events"}}},
	}, up.Files)
	insertLedger(t, db, 1, 50)
	_, err = db.Exec(`INSERT INTO events VALUES ('a', 'x'), ('b', 'y')`)
	require.NoError(t, err)

	// The workflow lost the apply's answer: the down reads the record the
	// apply left in the database.
	res, err := runActivity[RestoreResult](t, m, m.MigrateDown, MigrateDownInput{MigrateInput: in, Captured: captured, Policy: runbook.OnRollbackArchive})
	require.NoError(t, err)
	require.False(t, tableExists(t, file, "ledger_entries"), "migrated down")
	require.Len(t, res.Archived, 3)
	byTable := map[string]ArchivedObject{}
	for _, a := range res.Archived {
		byTable[a.String()[:strings.Index(a.String(), " ")]] = a
		require.True(t, strings.HasPrefix(a.ArchiveTable, sqliteArchivePrefix), a.ArchiveTable)
	}
	tbl, col, ev := byTable["ledger_entries"], byTable["ledger_entries.external_reference"], byTable["events"]
	require.EqualValues(t, 50, tbl.Rows)
	require.EqualValues(t, 50, col.Rows)
	require.EqualValues(t, 2, ev.Rows)
	require.Contains(t, res.Detail, "preserved")
	require.Contains(t, res.Detail, tbl.ArchiveTable)

	// The table archive has every original column of its rows (as they
	// were when file 1's Down ran: file 2's column was already gone), the
	// column archive the primary key and the column.
	var memo string
	var amount int64
	require.NoError(t, db.QueryRow(`SELECT memo, amount_cents FROM `+tbl.ArchiveTable+` WHERE id = 7`).Scan(&memo, &amount))
	require.Equal(t, "memo 7", memo)
	require.EqualValues(t, 700, amount)
	var ref string
	require.NoError(t, db.QueryRow(`SELECT external_reference FROM `+col.ArchiveTable+` WHERE id = 7`).Scan(&ref))
	require.Equal(t, "ref-7", ref)
	cols := columnsOf(t, db, col.ArchiveTable)
	require.Equal(t, []string{"id", "external_reference"}, cols)

	// The catalog has the contract's columns.
	var n int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM rollbook_archive__archives WHERE deployment_id = ? AND step = ? AND kind = 'column' AND source_table = 'ledger_entries' AND source_column = 'external_reference' AND version = 2 AND rows = 50 AND archive_table = ? AND created_at IS NOT NULL`,
		in.DeploymentID, in.Step, col.ArchiveTable).Scan(&n))
	require.Equal(t, 1, n)
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM rollbook_archive__archives WHERE archive_table = ? AND source_column IS NULL AND kind = 'table'`, tbl.ArchiveTable).Scan(&n))
	require.Equal(t, 1, n)

	// A retry after a lost answer reports the same archive.
	again, err := runActivity[RestoreResult](t, m, m.MigrateDown, MigrateDownInput{MigrateInput: in, Captured: captured, Policy: runbook.OnRollbackArchive})
	require.NoError(t, err)
	require.True(t, again.AlreadyRestored)
	require.ElementsMatch(t, res.Archived, again.Archived)
}

func columnsOf(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := db.Query(`SELECT name FROM pragma_table_info(?) ORDER BY cid`, table)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		out = append(out, n)
	}
	return out
}

// A crash between a file's archive and its Down: the retry archives again
// without duplicating a row, and keeps rows (and values) written between.
func TestArchiveRetryAfterCrashSQLite(t *testing.T) {
	m, file := newSQLiteMigrations(t)
	db := openSQLite(t, file)
	in := MigrateInput{StepRef: StepRef{DeploymentID: "d/2", Step: "schema"}, Database: "payments", Dir: migDir, Files: archiveFiles[:2]}
	up, err := runActivity[MigrateResult](t, m, m.MigrateUp, MigrateUpInput{MigrateInput: in, Policy: runbook.OnRollbackArchive})
	require.NoError(t, err)
	insertLedger(t, db, 1, 10)

	// What the killed attempt did: file 2's column archived and committed.
	arch := &archiver{db: db, dialect: DialectSQLite}
	first, err := arch.archiveFile(context.Background(), in.StepRef, 2, up.Files[1].Created)
	require.NoError(t, err)
	require.EqualValues(t, 10, first[0].Rows)
	// Writes in between: a new row and a changed value.
	insertLedger(t, db, 11, 12)
	_, err = db.Exec(`UPDATE ledger_entries SET external_reference = 'changed' WHERE id = 3`)
	require.NoError(t, err)

	res, err := runActivity[RestoreResult](t, m, m.MigrateDown, MigrateDownInput{MigrateInput: in, Captured: SchemaState{Database: "payments"}, Policy: runbook.OnRollbackArchive, Created: up.Files})
	require.NoError(t, err)
	require.Len(t, res.Archived, 2)
	for _, a := range res.Archived {
		require.EqualValues(t, 12, a.Rows, "%s", a)
		var n, distinct int
		require.NoError(t, db.QueryRow(`SELECT count(*), count(DISTINCT id) FROM `+a.ArchiveTable).Scan(&n, &distinct))
		require.Equal(t, 12, n)
		require.Equal(t, 12, distinct, "no duplicates in %s", a.ArchiveTable)
	}
	var ref string
	require.NoError(t, db.QueryRow(`SELECT external_reference FROM `+first[0].ArchiveTable+` WHERE id = 3`).Scan(&ref))
	require.Equal(t, "changed", ref, "the latest value is kept")
}

// A file applied by a killed attempt whose diff was not recorded (the kill
// came right after the file's commit): the retry of the apply, or else the
// down, derives it from the catalog recorded before the file.
func TestArchiveDiffLostInCrashSQLite(t *testing.T) {
	m, file := newSQLiteMigrations(t)
	db := openSQLite(t, file)
	in := MigrateInput{StepRef: StepRef{DeploymentID: "d/3", Step: "schema"}, Database: "payments", Dir: migDir, Files: archiveFiles[:2]}
	_, err := runActivity[MigrateResult](t, m, m.MigrateUp, MigrateUpInput{MigrateInput: in, Target: 1, Policy: runbook.OnRollbackArchive})
	require.NoError(t, err)
	// Simulate the kill after file 2's commit, before its diff was
	// recorded: file 2 applied by hand, its record holds only "before".
	arch := &archiver{db: db, dialect: DialectSQLite}
	before, err := readCatalog(context.Background(), db, DialectSQLite)
	require.NoError(t, err)
	require.NoError(t, arch.recordBefore(context.Background(), in.StepRef, 2, before))
	_, err = db.Exec(`ALTER TABLE ledger_entries ADD COLUMN external_reference TEXT; INSERT INTO goose_db_version (version_id, is_applied) VALUES (2, 1)`)
	require.NoError(t, err)
	insertLedger(t, db, 1, 4)

	res, err := runActivity[RestoreResult](t, m, m.MigrateDown, MigrateDownInput{MigrateInput: in, Captured: SchemaState{Database: "payments"}, Policy: runbook.OnRollbackArchive})
	require.NoError(t, err)
	require.Len(t, res.Archived, 2)
	require.Equal(t, "external_reference", res.Archived[0].Column)
	require.EqualValues(t, 4, res.Archived[0].Rows)

	// The apply's retry reports file 1 and completes file 2's diff.
	_, err = runActivity[MigrateResult](t, m, m.MigrateUp, MigrateUpInput{MigrateInput: in, Target: 1, Policy: runbook.OnRollbackArchive})
	require.NoError(t, err)
	require.NoError(t, arch.recordBefore(context.Background(), in.StepRef, 2, before))
	_, err = db.Exec(`ALTER TABLE ledger_entries ADD COLUMN external_reference TEXT; INSERT INTO goose_db_version (version_id, is_applied) VALUES (2, 1)`)
	require.NoError(t, err)
	up, err := runActivity[MigrateResult](t, m, m.MigrateUp, MigrateUpInput{MigrateInput: in, Policy: runbook.OnRollbackArchive})
	require.NoError(t, err)
	require.Equal(t, []FileObjects{
		{Version: 1, Created: []CatalogObject{{Kind: ObjectTable, Table: "ledger_entries"}}},
		{Version: 2, Created: []CatalogObject{{Kind: ObjectColumn, Table: "ledger_entries", Column: "external_reference"}}},
	}, up.Files)
}

// The Down never runs without its archive.
func TestArchiveUnwritableStopsTheDownSQLite(t *testing.T) {
	m, file := newSQLiteMigrations(t)
	db := openSQLite(t, file)
	in := MigrateInput{StepRef: StepRef{DeploymentID: "d/4", Step: "schema"}, Database: "payments", Dir: migDir, Files: archiveFiles[:1]}
	_, err := runActivity[MigrateResult](t, m, m.MigrateUp, MigrateUpInput{MigrateInput: in, Policy: runbook.OnRollbackArchive})
	require.NoError(t, err)
	_, err = db.Exec(`INSERT INTO ledger_entries (id, account_id, amount_cents) VALUES (1, 'a', 1), (2, 'a', 2), (3, 'b', 3)`)
	require.NoError(t, err)
	// The archive cannot be written: a trigger refuses it, as a permission
	// or a full disk would.
	_, err = db.Exec(`CREATE TRIGGER no_archive BEFORE INSERT ON rollbook_archive__archives BEGIN SELECT RAISE(ABORT, 'archive refused (simulated full disk)'); END`)
	require.NoError(t, err)

	_, err = runActivity[RestoreResult](t, m, m.MigrateDown, MigrateDownInput{MigrateInput: in, Captured: SchemaState{Database: "payments"}, Policy: runbook.OnRollbackArchive})
	requireErrType(t, err, ErrArchive)
	require.ErrorContains(t, err, "archive refused")
	require.ErrorContains(t, err, "the Down was not run")
	require.True(t, tableExists(t, file, "ledger_entries"), "no Down without its archive")
	var n int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM ledger_entries`).Scan(&n))
	require.Equal(t, 3, n)

	// A file whose diff was never recorded is not migrated down blindly.
	in2 := in
	in2.Step = "other-step"
	_, err = db.Exec(`DROP TRIGGER no_archive`)
	require.NoError(t, err)
	_, err = runActivity[RestoreResult](t, m, m.MigrateDown, MigrateDownInput{MigrateInput: in2, Captured: SchemaState{Database: "payments"}, Policy: runbook.OnRollbackArchive})
	requireErrType(t, err, ErrArchive)
	require.ErrorContains(t, err, "never recorded")
	require.True(t, tableExists(t, file, "ledger_entries"))

	// drop is explicit: the Down runs, nothing is preserved.
	res, err := runActivity[RestoreResult](t, m, m.MigrateDown, MigrateDownInput{MigrateInput: in2, Captured: SchemaState{Database: "payments"}, Policy: runbook.OnRollbackDrop})
	require.NoError(t, err)
	require.Empty(t, res.Archived)
	require.Contains(t, res.Detail, "nothing preserved")
	require.False(t, tableExists(t, file, "ledger_entries"))
}

// The demo's chain (runbooks/payments-api + make demo): an earlier
// deployment applied files 1-2 from the step's folder and file 3 from
// another folder (the runbook's contract step), so the database holds a
// version this folder does not have. The next deployment brings file 4 in
// the step's folder; its rollback archives and reverts file 4 alone and
// stops at 3, never reaching for the other folder's file.
func TestArchiveOnTopOfAnotherFoldersVersionSQLite(t *testing.T) {
	m, file := newSQLiteMigrations(t)
	db := openSQLite(t, file)
	const contractDir = "migrations/contract"
	expand := archiveFiles[:2]
	contract := []runbook.File{{Path: contractDir + "/00003_drop_memo.sql", Content: "-- +goose Up\nALTER TABLE ledger_entries DROP COLUMN memo;\n"}}
	first := StepRef{DeploymentID: "rollbook-payments/run1", Step: "expand-schema"}
	_, err := runActivity[MigrateResult](t, m, m.MigrateUp, MigrateUpInput{MigrateInput: MigrateInput{StepRef: first, Database: "payments", Dir: migDir, Files: expand}, Policy: runbook.OnRollbackArchive})
	require.NoError(t, err)
	_, err = runActivity[MigrateResult](t, m, m.MigrateUp, MigrateUpInput{MigrateInput: MigrateInput{StepRef: StepRef{DeploymentID: first.DeploymentID, Step: "contract-schema"}, Database: "payments", Dir: contractDir, Files: contract}})
	require.NoError(t, err)

	next := append(slices.Clone(expand), runbook.File{Path: migDir + "/00004_events.sql", Content: `-- +goose Up
CREATE TABLE payment_events (payment_id TEXT NOT NULL, event TEXT NOT NULL, amount_cents BIGINT NOT NULL, PRIMARY KEY (payment_id, event));
-- +goose Down
DROP TABLE payment_events;
`})
	for _, policy := range []string{runbook.OnRollbackArchive, runbook.OnRollbackDrop} {
		t.Run(policy, func(t *testing.T) {
			in := MigrateInput{StepRef: StepRef{DeploymentID: "rollbook-payments/run2-" + policy, Step: "expand-schema"}, Database: "payments", Dir: migDir, Files: next}
			captured, err := runActivity[SchemaState](t, m, m.CaptureSchema, in)
			require.NoError(t, err)
			require.EqualValues(t, 3, captured.Version, "the contract folder's file counts")
			up, err := runActivity[MigrateResult](t, m, m.MigrateUp, MigrateUpInput{MigrateInput: in, Policy: policy})
			require.NoError(t, err)
			require.Equal(t, []int64{4}, up.Applied)
			_, err = db.Exec(`INSERT INTO payment_events VALUES ('pay_1', 'created', 100), ('pay_2', 'created', 200)`)
			require.NoError(t, err)

			down, err := runActivity[RestoreResult](t, m, m.MigrateDown, MigrateDownInput{MigrateInput: in, Captured: captured, Policy: policy})
			require.NoError(t, err)
			require.False(t, tableExists(t, file, "payment_events"))
			var v int64
			require.NoError(t, db.QueryRow(`SELECT max(version_id) FROM goose_db_version`).Scan(&v))
			require.EqualValues(t, 3, v, "back at the captured version, the contract still applied")
			require.Equal(t, []string{"id", "account_id", "amount_cents", "external_reference"}, columnsOf(t, db, "ledger_entries"))
			if policy == runbook.OnRollbackDrop {
				require.Empty(t, down.Archived)
				return
			}
			require.Len(t, down.Archived, 1)
			a := down.Archived[0]
			require.EqualValues(t, 2, a.Rows)
			require.EqualValues(t, 4, a.Version)
			var amount int64
			require.NoError(t, db.QueryRow(`SELECT amount_cents FROM `+a.ArchiveTable+` WHERE payment_id = 'pay_2' AND event = 'created'`).Scan(&amount))
			require.EqualValues(t, 200, amount)
		})
	}
}
