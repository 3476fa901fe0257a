package tests

// End-to-end tests of the migrate step's onRollback policies on the real
// stack: rows written into the tables and columns a migration created
// while the canary ran survive an abort, in the live tables (keep) or in
// the rollbook_archive schema (archive), on PostgreSQL and SQLite; an
// archive that cannot be written stops the rollback before the Down; a
// worker killed between a file's archive and its Down loses and
// duplicates nothing.

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkpb "go.temporal.io/api/sdk/v1"
	sdkworker "go.temporal.io/sdk/worker"
	_ "modernc.org/sqlite"

	"github.com/rollbook/rollbook/activities"
	"github.com/rollbook/rollbook/internal/worker"
	"github.com/rollbook/rollbook/workflows"
)

// archiveQueue is the task queue of this file's workers: their
// configuration adds a SQLite database ("local") to the dev stack's.
const archiveQueue = "rollbook-archive-e2e"

// archiveWorkerConfig is examples/dev-worker.yaml on queue, plus the SQLite
// database "local" at sqliteFile.
func archiveWorkerConfig(t *testing.T, queue, sqliteFile string) *worker.Config {
	t.Helper()
	cfg, err := worker.LoadConfig(filepath.Join(repoRoot, "examples", "dev-worker.yaml"))
	require.NoError(t, err)
	cfg.TaskQueue = queue
	cfg.Metrics.Listen = ""
	cfg.Databases["local"] = worker.DatabaseConfig{Dialect: "sqlite", DSN: sqliteFile}
	return cfg
}

type archiveEnv struct {
	sqliteFile string
}

func newArchiveEnv(t *testing.T) *archiveEnv {
	e := &archiveEnv{sqliteFile: filepath.Join(t.TempDir(), "local.db")}
	acts, err := worker.BuildActivities(archiveWorkerConfig(t, archiveQueue, e.sqliteFile))
	require.NoError(t, err)
	w := sdkworker.New(tclient, archiveQueue, sdkworker.Options{})
	worker.Register(w, acts)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	return e
}

type archiveRunbook struct {
	database, phase, onRollback string
	// approval pauses after the canary gets 50 %: the test writes rows,
	// then aborts or approves.
	approval bool
}

func (f *fixture) archiveRunbook(o archiveRunbook) string {
	if o.database == "" {
		o.database = "payments"
	}
	migrate := fmt.Sprintf("{database: %s, dir: migrations", o.database)
	if o.phase != "" {
		migrate += ", phase: " + o.phase
	}
	if o.onRollback != "" {
		migrate += ", onRollback: " + o.onRollback
	}
	migrate += "}"
	pause := ""
	if o.approval {
		pause = "\n  - name: approval\n    pause: {approval: true}"
	}
	y := fmt.Sprintf(`apiVersion: rollbook/v1
service: %s
routes:
  - {name: api, router: edge, backend: payments_api, subsets: [stable, canary], stable: stable, canary: canary}
steps:
  - name: expand-schema
    migrate: %s
  - name: canary-50
    traffic: {route: api, weights: {stable: 50, canary: 50}}%s
`, f.service, migrate, pause)
	p := filepath.Join(f.dir, f.service+".yaml")
	require.NoError(f.t, os.WriteFile(p, []byte(y), 0o644))
	return p
}

// paymentID is the id of the i-th payment a test writes.
func paymentID(i int) string { return fmt.Sprintf("pay-%d", i) }

// writePayments writes payments from .. from+n-1 as the two versions of the
// demo API do during the canary (examples/demoapi/payments.go): odd ones as
// v1 (the caller's reference in payments.memo), even ones as v2 (the
// reference in payments.external_reference, added by file 2, and a
// ledger_entries row, a table file 1 created, in the same transaction).
func writePayments(t *testing.T, db *sql.DB, from, n int, sqlite bool) {
	t.Helper()
	v1 := `INSERT INTO payments (id, account_id, amount_cents, currency, memo, status) VALUES ($1, $2, $3, 'EUR', $4, 'succeeded')`
	v2 := `INSERT INTO payments (id, account_id, amount_cents, currency, external_reference, status) VALUES ($1, $2, $3, 'EUR', $4, 'succeeded')`
	ledger := `INSERT INTO ledger_entries (payment_id, account_id, amount_cents, currency) VALUES ($1, $2, $3, 'EUR')`
	if sqlite {
		v1, v2, ledger = strings.ReplaceAll(v1, "$", "?"), strings.ReplaceAll(v2, "$", "?"), strings.ReplaceAll(ledger, "$", "?")
	}
	for i := from; i < from+n; i++ {
		id, acct, amount := paymentID(i), fmt.Sprintf("acct-%d", i%7), i*100
		if i%2 == 1 {
			_, err := db.Exec(v1, id, acct, amount, fmt.Sprintf("v1 memo %d", i))
			require.NoError(t, err, "writing payment %s as v1", id)
			continue
		}
		tx, err := db.Begin()
		require.NoError(t, err)
		_, err = tx.Exec(v2, id, acct, amount, fmt.Sprintf("v2-ref-%d", i))
		require.NoError(t, err, "writing payment %s as v2", id)
		_, err = tx.Exec(ledger, id, acct, amount)
		require.NoError(t, err, "booking the ledger entry of %s as v2", id)
		require.NoError(t, tx.Commit())
	}
}

// sqliteBaseSchema is internal/devstack/demoschema.sql (the payments
// database at version 0) in SQLite's dialect: that file's column defaults
// call now(), which SQLite does not have. The migrations build on it:
// file 2 alters payments.
const sqliteBaseSchema = `CREATE TABLE payments (
    id           VARCHAR(64)  PRIMARY KEY,
    account_id   VARCHAR(64)  NOT NULL,
    amount_cents BIGINT       NOT NULL,
    currency     CHAR(3)      NOT NULL,
    memo         VARCHAR(256),
    status       VARCHAR(16)  NOT NULL DEFAULT 'pending',
    created_at   TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX payments_created_at_idx ON payments (created_at);
CREATE TABLE idempotency_keys (
    key          VARCHAR(255) PRIMARY KEY,
    request_hash CHAR(64)     NOT NULL,
    payment_id   VARCHAR(64)  NOT NULL,
    status_code  INTEGER      NOT NULL,
    response     TEXT         NOT NULL,
    created_at   TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP
)`

func deploymentResult(t *testing.T, service string) (workflows.Result, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run := tclient.GetWorkflow(ctx, workflows.WorkflowID(service), "")
	var r workflows.Result
	require.NoError(t, run.Get(ctx, &r))
	return r, workflows.WorkflowID(service) + "/" + run.GetRunID()
}

func currentDetails(t *testing.T, service string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := tclient.QueryWorkflow(ctx, workflows.WorkflowID(service), "", "__temporal_workflow_metadata")
	require.NoError(t, err)
	var md sdkpb.WorkflowMetadata
	require.NoError(t, v.Get(&md))
	return md.GetCurrentDetails()
}

// archivedByDeployment reads the archive catalog rows of one deployment.
func archivedByDeployment(t *testing.T, db *sql.DB, sqlite bool, deploymentID string) map[string]activities.ArchivedObject {
	t.Helper()
	table, q := "rollbook_archive.archives", "$1"
	if sqlite {
		table, q = "rollbook_archive__archives", "?"
	}
	var exists bool
	if sqlite {
		require.NoError(t, db.QueryRow(`SELECT count(*) > 0 FROM sqlite_master WHERE name = 'rollbook_archive__archives'`).Scan(&exists))
	} else {
		require.NoError(t, db.QueryRow(`SELECT to_regclass('rollbook_archive.archives') IS NOT NULL`).Scan(&exists))
	}
	out := map[string]activities.ArchivedObject{}
	if !exists {
		return out
	}
	rows, err := db.Query(`SELECT version, kind, source_table, coalesce(source_column, ''), archive_table, rows FROM `+table+` WHERE deployment_id = `+q+` AND step = 'expand-schema'`, deploymentID)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var a activities.ArchivedObject
		require.NoError(t, rows.Scan(&a.Version, &a.Kind, &a.Table, &a.Column, &a.ArchiveTable, &a.Rows))
		key := a.Table
		if a.Column != "" {
			key += "." + a.Column
		}
		out[key] = a
	}
	require.NoError(t, rows.Err())
	return out
}

// abortAfterWrites deploys with an approval pause, writes n rows while the
// canary takes 50 %, aborts, and returns the CLI's output and exit code.
func (f *fixture) abortAfterWrites(rb string, db *sql.DB, n int, sqlite bool) (string, int) {
	f.t.Helper()
	a := startCLI(f.t, "deploy", rb, "--version", "v2", "--wait", "--task-queue", archiveQueue)
	waitPhase(f.t, f.service, workflows.PhasePaused, 90*time.Second)
	writePayments(f.t, db, 1, n, sqlite)
	out, code := cli(f.t, "abort", f.service, "--reason", "bad canary: payments failing")
	require.Equal(f.t, 0, code, out)
	return a.wait(f.t, 2*time.Minute)
}

func TestArchiveE2E(t *testing.T) {
	env := newArchiveEnv(t)
	t.Run("ArchivePostgres", func(t *testing.T) { testArchivePostgres(t) })
	t.Run("KeepThenSecondDeployment", func(t *testing.T) { testKeepThenSecondDeployment(t) })
	t.Run("DropPostgres", func(t *testing.T) { testDropPostgres(t) })
	t.Run("ArchiveSQLite", func(t *testing.T) { testArchiveSQLite(t, env) })
	t.Run("UnwritableArchiveIsStuck", func(t *testing.T) { testUnwritableArchive(t) })
}

// restoreFromArchive brings the archived rows back the way docs/archive.md
// shows, once a deployment has created the tables and columns again: the
// same statements on PostgreSQL and SQLite.
func restoreFromArchive(t *testing.T, db *sql.DB, ledgerArchive, referenceArchive string) {
	t.Helper()
	tx, err := db.Begin()
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	_, err = tx.Exec(`INSERT INTO ledger_entries (payment_id, account_id, amount_cents, currency, created_at)
SELECT payment_id, account_id, amount_cents, currency, created_at
FROM ` + ledgerArchive + `
WHERE true
ON CONFLICT (payment_id) DO NOTHING`)
	require.NoError(t, err, "restoring ledger_entries from %s as docs/archive.md shows", ledgerArchive)
	_, err = tx.Exec(`UPDATE payments AS p SET external_reference = a.external_reference
FROM ` + referenceArchive + ` a
WHERE p.id = a.id AND p.external_reference IS NULL`)
	require.NoError(t, err, "restoring payments.external_reference from %s as docs/archive.md shows", referenceArchive)
	require.NoError(t, tx.Commit())
}

// columnNames reads one column of names.
func columnNames(t *testing.T, db *sql.DB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(query, args...)
	require.NoError(t, err, query)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		require.NoError(t, rows.Scan(&c))
		out = append(out, c)
	}
	require.NoError(t, rows.Err())
	return out
}

// countIn runs a query that counts, on db (PostgreSQL or SQLite).
func countIn(t *testing.T, db *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow(query, args...).Scan(&n), query)
	return n
}

func testArchivePostgres(t *testing.T) {
	f := newFixture(t, "e2e-archive")
	db := openDB(t)
	out, code := f.abortAfterWrites(f.archiveRunbook(archiveRunbook{approval: true}), db, 100, false)
	require.Equal(t, 3, code, out)
	assert.EqualValues(t, 0, schemaVersion(t), "migrated down")
	assert.False(t, tableExists(t, "ledger_entries"))
	assert.False(t, columnExists(t, "payments", "external_reference"))
	// payments is the platform's table: the Downs do not touch its rows,
	// and what v1 wrote stays where v1 reads it.
	assert.Equal(t, 100, countIn(t, db, `SELECT count(*) FROM payments`))
	var memo string
	require.NoError(t, db.QueryRow(`SELECT memo FROM payments WHERE id = $1`, paymentID(41)).Scan(&memo))
	assert.Equal(t, "v1 memo 41", memo)

	r, depID := deploymentResult(t, f.service)
	require.Equal(t, workflows.OutcomeAborted, r.Outcome)
	arch := archivedByDeployment(t, db, false, depID)
	require.Len(t, arch, 2, "the table of file 1 and the column of file 2 (file 3 is an index): %v", arch)
	tbl, col := arch["ledger_entries"], arch["payments.external_reference"]
	assert.Equal(t, activities.ArchivedObject{Version: 1, Kind: "table", Table: "ledger_entries", ArchiveTable: tbl.ArchiveTable, Rows: 50}, tbl)
	assert.Equal(t, activities.ArchivedObject{Version: 2, Kind: "column", Table: "payments", Column: "external_reference", ArchiveTable: col.ArchiveTable, Rows: 100}, col)
	assert.True(t, strings.HasPrefix(tbl.ArchiveTable, "rollbook_archive."), tbl.ArchiveTable)
	assert.True(t, strings.HasPrefix(col.ArchiveTable, "rollbook_archive."), col.ArchiveTable)

	// Every ledger entry v2 booked, with the values the callers sent.
	var account string
	var amount int64
	require.NoError(t, db.QueryRow(`SELECT account_id, amount_cents FROM `+tbl.ArchiveTable+` WHERE payment_id = $1`, paymentID(42)).Scan(&account, &amount))
	assert.Equal(t, "acct-0", account)
	assert.EqualValues(t, 4200, amount)
	assert.Equal(t, 50, countIn(t, db, `SELECT count(DISTINCT payment_id) FROM `+tbl.ArchiveTable+` WHERE payment_id IN (SELECT id FROM payments)`),
		"one entry per v2 payment, each naming a live payment")
	// Every payment's external_reference: v2's filled, v1's null.
	var n, distinct, refs int
	require.NoError(t, db.QueryRow(`SELECT count(*), count(DISTINCT id), count(external_reference) FROM `+col.ArchiveTable).Scan(&n, &distinct, &refs))
	assert.Equal(t, []int{100, 100, 50}, []int{n, distinct, refs})
	var ref string
	require.NoError(t, db.QueryRow(`SELECT external_reference FROM `+col.ArchiveTable+` WHERE id = $1`, paymentID(42)).Scan(&ref))
	assert.Equal(t, "v2-ref-42", ref)
	var v1ref sql.NullString
	require.NoError(t, db.QueryRow(`SELECT external_reference FROM `+col.ArchiveTable+` WHERE id = $1`, paymentID(41)).Scan(&v1ref))
	assert.False(t, v1ref.Valid, "v1 did not write external_reference")
	// The column archive holds the primary key and the column only.
	assert.Equal(t, []string{"id", "external_reference"},
		columnNames(t, db, `SELECT column_name FROM information_schema.columns WHERE table_schema = 'rollbook_archive' AND table_name = $1 ORDER BY ordinal_position`,
			strings.TrimPrefix(col.ArchiveTable, "rollbook_archive.")))

	// The catalog diff of each file, on PostgreSQL, kept in the
	// compensation record.
	c := r.Compensations[0]
	require.Equal(t, "expand-schema", c.Step)
	assert.Equal(t, []activities.FileObjects{
		{Version: 1, Created: []activities.CatalogObject{{Kind: "table", Table: "ledger_entries"}}},
		{Version: 2, Created: []activities.CatalogObject{{Kind: "column", Table: "payments", Column: "external_reference"}}},
		{Version: 3},
	}, c.Migrate.Created)
	// The result, the step detail and the Web UI say what was kept where.
	assert.Len(t, c.Preserved, 2)
	assert.Contains(t, r.Steps[0].Detail, "rollback preserved")
	assert.Contains(t, r.Steps[0].Detail, "ledger_entries (50 rows) → "+tbl.ArchiveTable)
	assert.Contains(t, r.Steps[0].Detail, "payments.external_reference (100 rows) → "+col.ArchiveTable)
	assert.Contains(t, currentDetails(t, f.service), "Data preserved: payments archived by expand-schema")

	// Bringing the data back: a deployment creates the table and the
	// column again, the statements of docs/archive.md copy the rows back.
	out, code = cli(t, "deploy", f.archiveRunbook(archiveRunbook{}), "--version", "v2", "--wait", "--task-queue", archiveQueue)
	require.Equal(t, 0, code, out)
	restoreFromArchive(t, db, tbl.ArchiveTable, col.ArchiveTable)
	assert.Equal(t, 50, countIn(t, db, `SELECT count(*) FROM ledger_entries l JOIN payments p ON p.id = l.payment_id WHERE p.external_reference = 'v2-ref-' || substr(p.id, 5) AND l.amount_cents = p.amount_cents`))
	assert.Equal(t, 50, countIn(t, db, `SELECT count(*) FROM payments WHERE memo IS NOT NULL AND external_reference IS NULL`), "v1's payments keep their memo")
}

func testKeepThenSecondDeployment(t *testing.T) {
	f := newFixture(t, "e2e-keep")
	db := openDB(t)
	out, code := f.abortAfterWrites(f.archiveRunbook(archiveRunbook{phase: "expand", approval: true}), db, 100, false)
	require.Equal(t, 3, code, out)
	assert.EqualValues(t, 3, schemaVersion(t), "expand keeps the schema")
	assert.Equal(t, 50, countIn(t, db, `SELECT count(*) FROM ledger_entries`), "the ledger entries stay in the live table")
	assert.Equal(t, 50, countIn(t, db, `SELECT count(*) FROM payments WHERE external_reference LIKE 'v2-ref-%'`), "v2's references stay in the live column")
	assert.Equal(t, 50, countIn(t, db, `SELECT count(*) FROM payments WHERE memo LIKE 'v1 memo %' AND external_reference IS NULL`))
	r, depID := deploymentResult(t, f.service)
	assert.True(t, r.Compensations[0].Kept)
	assert.Contains(t, r.Compensations[0].Detail, "kept as migrated (onRollback: keep)")
	assert.Empty(t, archivedByDeployment(t, db, false, depID))
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t), "traffic rolled back")

	// The next deployment goes on top of the kept schema: the same files
	// are a no-op, the new one applies.
	require.NoError(t, os.WriteFile(filepath.Join(f.dir, "migrations", "00004_add_settled_at.sql"),
		[]byte("-- +goose Up\nALTER TABLE ledger_entries ADD COLUMN settled_at TIMESTAMP;\n\n-- +goose Down\nALTER TABLE ledger_entries DROP COLUMN settled_at;\n"), 0o644))
	out, code = cli(t, "deploy", f.archiveRunbook(archiveRunbook{phase: "expand"}), "--version", "v3", "--wait", "--task-queue", archiveQueue)
	require.Equal(t, 0, code, out)
	assert.EqualValues(t, 4, schemaVersion(t))
	r2, _ := deploymentResult(t, f.service)
	assert.Contains(t, r2.Steps[0].Detail, "schema payments: 3 → 4; created ledger_entries.settled_at")
	assert.Equal(t, 50, countIn(t, db, `SELECT count(*) FROM ledger_entries WHERE settled_at IS NULL`))
}

func testDropPostgres(t *testing.T) {
	f := newFixture(t, "e2e-drop")
	db := openDB(t)
	rb := f.archiveRunbook(archiveRunbook{onRollback: "drop", approval: true})
	plan, code := cli(t, "plan", rb)
	require.Equal(t, 0, code, plan)
	assert.Contains(t, plan, "WARNING: onRollback: drop DESTROYS DATA")
	out, code := f.abortAfterWrites(rb, db, 20, false)
	require.Equal(t, 3, code, out)
	assert.False(t, tableExists(t, "ledger_entries"))
	assert.False(t, columnExists(t, "payments", "external_reference"))
	assert.Equal(t, 20, countIn(t, db, `SELECT count(*) FROM payments`), "drop reverts the migrations, not the platform's table")
	r, depID := deploymentResult(t, f.service)
	assert.Empty(t, archivedByDeployment(t, db, false, depID), "drop preserves nothing")
	assert.Empty(t, r.Compensations[0].Preserved)
	assert.Contains(t, r.Compensations[0].Detail, "nothing preserved (onRollback: drop)")
}

func testArchiveSQLite(t *testing.T, env *archiveEnv) {
	f := newFixture(t, "e2e-archive-sqlite")
	db, err := sql.Open("sqlite", env.sqliteFile)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	_, err = db.Exec(sqliteBaseSchema)
	require.NoError(t, err, "creating the base tables in %s", env.sqliteFile)
	// The same tables and columns as demoschema.sql, which newFixture has
	// just created in PostgreSQL: the SQLite copy must not drift from it.
	for _, table := range []string{"payments", "idempotency_keys"} {
		assert.Equal(t, columnNames(t, openDB(t), `SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position`, table),
			columnNames(t, db, `SELECT name FROM pragma_table_info(?) ORDER BY cid`, table), "columns of %s: sqliteBaseSchema against internal/devstack/demoschema.sql", table)
	}
	out, code := f.abortAfterWrites(f.archiveRunbook(archiveRunbook{database: "local", approval: true}), db, 30, true)
	require.Equal(t, 3, code, out)
	assert.Zero(t, countIn(t, db, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'ledger_entries'`), "migrated down")
	assert.Zero(t, countIn(t, db, `SELECT count(*) FROM pragma_table_info('payments') WHERE name = 'external_reference'`), "migrated down")
	assert.Equal(t, 30, countIn(t, db, `SELECT count(*) FROM payments`))
	var memo string
	require.NoError(t, db.QueryRow(`SELECT memo FROM payments WHERE id = ?`, paymentID(7)).Scan(&memo))
	assert.Equal(t, "v1 memo 7", memo)

	r, depID := deploymentResult(t, f.service)
	arch := archivedByDeployment(t, db, true, depID)
	require.Len(t, arch, 2, "%v", arch)
	tbl, col := arch["ledger_entries"], arch["payments.external_reference"]
	assert.True(t, strings.HasPrefix(tbl.ArchiveTable, "rollbook_archive__"), tbl.ArchiveTable)
	assert.True(t, strings.HasPrefix(col.ArchiveTable, "rollbook_archive__"), col.ArchiveTable)
	assert.EqualValues(t, 15, tbl.Rows)
	assert.EqualValues(t, 30, col.Rows)
	var amount int64
	var ref string
	require.NoError(t, db.QueryRow(`SELECT amount_cents FROM `+tbl.ArchiveTable+` WHERE payment_id = ?`, paymentID(8)).Scan(&amount))
	require.NoError(t, db.QueryRow(`SELECT external_reference FROM `+col.ArchiveTable+` WHERE id = ?`, paymentID(8)).Scan(&ref))
	assert.EqualValues(t, 800, amount)
	assert.Equal(t, "v2-ref-8", ref)
	assert.Equal(t, 15, countIn(t, db, `SELECT count(external_reference) FROM `+col.ArchiveTable))
	assert.Len(t, r.Compensations[0].Preserved, 2)
	assert.Equal(t, []activities.FileObjects{
		{Version: 1, Created: []activities.CatalogObject{{Kind: "table", Table: "ledger_entries"}}},
		{Version: 2, Created: []activities.CatalogObject{{Kind: "column", Table: "payments", Column: "external_reference"}}},
		{Version: 3},
	}, r.Compensations[0].Migrate.Created, "the catalog diff on SQLite")

	// The statements of docs/archive.md work on SQLite too.
	out, code = cli(t, "deploy", f.archiveRunbook(archiveRunbook{database: "local"}), "--version", "v2", "--wait", "--task-queue", archiveQueue)
	require.Equal(t, 0, code, out)
	restoreFromArchive(t, db, tbl.ArchiveTable, col.ArchiveTable)
	assert.Equal(t, 15, countIn(t, db, `SELECT count(*) FROM ledger_entries l JOIN payments p ON p.id = l.payment_id WHERE p.external_reference = 'v2-ref-' || substr(p.id, 5) AND l.amount_cents = p.amount_cents`))
}

func testUnwritableArchive(t *testing.T) {
	f := newFixture(t, "e2e-archive-stuck")
	db := openDB(t)
	// The stack's user is the database's superuser: it may create event
	// triggers (per database, so on the payments database itself).
	admin := db
	a := startCLI(t, "deploy", f.archiveRunbook(archiveRunbook{approval: true}), "--version", "v2", "--wait", "--task-queue", archiveQueue)
	waitPhase(t, f.service, workflows.PhasePaused, 90*time.Second)
	writePayments(t, db, 1, 10, false)
	// The archive cannot be written, as with a full disk: the database
	// refuses to create the archive tables.
	_, err := admin.Exec(`CREATE OR REPLACE FUNCTION rollbook_e2e_deny_archive() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'could not extend file: No space left on device (simulated by the e2e test)'; END $$;
CREATE EVENT TRIGGER rollbook_e2e_deny_archive ON ddl_command_start WHEN TAG IN ('CREATE TABLE AS') EXECUTE FUNCTION rollbook_e2e_deny_archive()`)
	require.NoError(t, err)
	dropTrigger := func() {
		_, _ = admin.Exec(`DROP EVENT TRIGGER IF EXISTS rollbook_e2e_deny_archive; DROP FUNCTION IF EXISTS rollbook_e2e_deny_archive()`)
	}
	t.Cleanup(dropTrigger)

	out, code := cli(t, "abort", f.service, "--reason", "bad canary")
	require.Equal(t, 0, code, out)
	st := waitPhase(t, f.service, workflows.PhaseRollbackStuck, 90*time.Second)
	assert.Contains(t, st.Reason, "compensation of expand-schema is stuck")
	assert.Contains(t, st.Reason, "No space left on device")
	assert.Contains(t, st.Reason, "the Down was not run")
	// File 3 (an index) had nothing to preserve and was reverted; file 2's
	// column could not be archived, so its Down did not run.
	assert.EqualValues(t, 2, schemaVersion(t), "no Down without its archive")
	assert.True(t, columnExists(t, "payments", "external_reference"))
	assert.Equal(t, 5, countIn(t, db, `SELECT count(external_reference) FROM payments`))
	assert.Equal(t, 5, countIn(t, db, `SELECT count(*) FROM ledger_entries`))

	// The operator frees the disk and retries: archive, then Down.
	dropTrigger()
	out, code = cli(t, "retry", f.service)
	require.Equal(t, 0, code, out)
	out, code = a.wait(t, 2*time.Minute)
	require.Equal(t, 3, code, out)
	assert.EqualValues(t, 0, schemaVersion(t))
	_, depID := deploymentResult(t, f.service)
	arch := archivedByDeployment(t, db, false, depID)
	assert.EqualValues(t, 5, arch["ledger_entries"].Rows)
	assert.EqualValues(t, 10, arch["payments.external_reference"].Rows)
}

// A worker killed after file 2's column values were archived and before
// its Down: the next worker archives again, with the rows written in
// between, without a duplicate, then runs the Downs.
func TestArchiveCrashBetweenPreserveAndDown(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "rollbook-worker")
	build := exec.Command("go", "build", "-o", bin, "./workers/rollbook-worker")
	build.Dir = repoRoot
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build ./workers/rollbook-worker: %s", out)
	const queue = "rollbook-archive-crash-e2e"
	cfg := archiveWorkerConfig(t, queue, filepath.Join(dir, "local.db"))
	cfg.Log = worker.LogConfig{Level: "info", Format: "json"}
	data, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	cfgPath := filepath.Join(dir, "worker.yaml")
	require.NoError(t, os.WriteFile(cfgPath, data, 0o644))

	f := newFixture(t, "e2e-archive-crash")
	db := openDB(t)
	first := startWorkerProcess(t, bin, cfgPath, "archived2:MigrateDown@expand-schema")
	a := startCLI(t, "deploy", f.archiveRunbook(archiveRunbook{approval: true}), "--version", "v2", "--wait", "--task-queue", queue)
	waitPhase(t, f.service, workflows.PhasePaused, 90*time.Second)
	writePayments(t, db, 1, 40, false)
	out2, code := cli(t, "abort", f.service, "--reason", "bad canary")
	require.Equal(t, 0, code, out2)

	select {
	case line := <-first.reached:
		t.Logf("crash point reached: %s", line)
	case <-time.After(90 * time.Second):
		t.Fatal("the crash point archived2:MigrateDown@expand-schema was not reached")
	}
	first.kill()
	// The column's values are archived, its Down has not run.
	assert.True(t, columnExists(t, "payments", "external_reference"))
	assert.True(t, tableExists(t, "ledger_entries"))
	// Writes while no worker runs: new payments (v1 and v2) and a changed
	// reference.
	writePayments(t, db, 41, 10, false)
	_, err = db.Exec(`UPDATE payments SET external_reference = 'changed-after-archive' WHERE id = $1`, paymentID(2))
	require.NoError(t, err)

	startWorkerProcess(t, bin, cfgPath, "")
	out3, code := a.wait(t, 3*time.Minute)
	require.Equal(t, 3, code, out3)
	assert.EqualValues(t, 0, schemaVersion(t))
	assert.Equal(t, 50, countIn(t, db, `SELECT count(*) FROM payments`))

	_, depID := deploymentResult(t, f.service)
	arch := archivedByDeployment(t, db, false, depID)
	require.Len(t, arch, 2, "%v", arch)
	// Every row, those written between the archive and the Down included,
	// none twice: 25 ledger entries (the even payments), 50 references.
	for key, want := range map[string]struct {
		id   string
		rows int
	}{"ledger_entries": {"payment_id", 25}, "payments.external_reference": {"id", 50}} {
		o := arch[key]
		var n, distinct int
		require.NoError(t, db.QueryRow(`SELECT count(*), count(DISTINCT `+want.id+`) FROM `+o.ArchiveTable).Scan(&n, &distinct))
		assert.Equal(t, want.rows, n, "%s: every row, those written between the archive and the Down included", o.ArchiveTable)
		assert.Equal(t, want.rows, distinct, "%s: no duplicates", o.ArchiveTable)
		assert.EqualValues(t, want.rows, o.Rows, key)
	}
	col := arch["payments.external_reference"].ArchiveTable
	var ref string
	require.NoError(t, db.QueryRow(`SELECT external_reference FROM `+col+` WHERE id = $1`, paymentID(2)).Scan(&ref))
	assert.Equal(t, "changed-after-archive", ref, "the latest value is archived")
	require.NoError(t, db.QueryRow(`SELECT external_reference FROM `+col+` WHERE id = $1`, paymentID(44)).Scan(&ref))
	assert.Equal(t, "v2-ref-44", ref)
	assert.Equal(t, 1, countIn(t, db, `SELECT count(*) FROM `+arch["ledger_entries"].ArchiveTable+` WHERE payment_id = $1`, paymentID(44)))
}
