package activities

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/runbook"
)

const migDir = "migrations/payments"

func migFiles(second string) []runbook.File {
	return []runbook.File{
		{Path: migDir + "/00001_accounts.sql", Content: `-- +goose Up
CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
-- +goose Down
DROP TABLE accounts;
`},
		{Path: migDir + "/00002_balance.sql", Content: second},
		{Path: migDir + "/00003_ledger.sql", Content: `-- +goose Up
CREATE TABLE ledger (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL, amount INTEGER NOT NULL);
-- +goose Down
DROP TABLE ledger;
`},
		// Files elsewhere in the bundle are not part of this step.
		{Path: "migrations/other/00009_other.sql", Content: "-- +goose Up\nSELECT 1;\n"},
		{Path: migDir + "/README.md", Content: "not a migration"},
	}
}

const goodSecond = `-- +goose Up
ALTER TABLE accounts ADD COLUMN balance INTEGER NOT NULL DEFAULT 0;
-- +goose Down
ALTER TABLE accounts DROP COLUMN balance;
`

const badSecond = `-- +goose Up
ALTER TABLE no_such_table ADD COLUMN balance INTEGER;
-- +goose Down
SELECT 1;
`

func newSQLiteMigrations(t *testing.T) (*Migrations, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "payments.db")
	m, err := NewMigrations(map[string]DatabaseTarget{"payments": {Dialect: DialectSQLite, DSN: file}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	return m, file
}

func tableExists(t *testing.T, file, table string) bool {
	t.Helper()
	db, err := sql.Open("sqlite", file)
	require.NoError(t, err)
	defer db.Close()
	var n int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?`, table).Scan(&n))
	return n == 1
}

func TestNewMigrationsChecksTargets(t *testing.T) {
	_, err := NewMigrations(nil)
	require.Error(t, err)
	_, err = NewMigrations(map[string]DatabaseTarget{"x": {Dialect: "mysql", DSN: "d"}})
	require.ErrorContains(t, err, "dialect")
	_, err = NewMigrations(map[string]DatabaseTarget{"x": {Dialect: DialectPostgres}})
	require.ErrorContains(t, err, "empty DSN")
}

func TestMigrationsSQLiteUpDown(t *testing.T) {
	m, file := newSQLiteMigrations(t)
	in := MigrateInput{StepRef: StepRef{DeploymentID: "d1", Step: "schema"}, Database: "payments", Dir: migDir, Files: migFiles(goodSecond)}

	captured, err := runActivity[SchemaState](t, m, m.CaptureSchema, in)
	require.NoError(t, err)
	require.Equal(t, SchemaState{Database: "payments", Version: 0}, captured)
	require.False(t, tableExists(t, file, gooseTable), "capture must not create goose's table")

	up, err := runActivity[MigrateResult](t, m, m.MigrateUp, MigrateUpInput{MigrateInput: in})
	require.NoError(t, err)
	require.Equal(t, MigrateResult{From: 0, To: 3, Applied: []int64{1, 2, 3}, Files: []FileObjects{
		{Version: 1, Created: []CatalogObject{{Kind: ObjectTable, Table: "accounts"}}},
		{Version: 2, Created: []CatalogObject{{Kind: ObjectColumn, Table: "accounts", Column: "balance"}}},
		{Version: 3, Created: []CatalogObject{{Kind: ObjectTable, Table: "ledger"}}},
	}}, up)
	require.True(t, tableExists(t, file, "ledger"))

	// Idempotent: a retry after a lost response changes nothing.
	again, err := runActivity[MigrateResult](t, m, m.MigrateUp, MigrateUpInput{MigrateInput: in})
	require.NoError(t, err)
	require.Equal(t, MigrateResult{From: 3, To: 3}, again)

	now, err := runActivity[SchemaState](t, m, m.CaptureSchema, in)
	require.NoError(t, err)
	require.EqualValues(t, 3, now.Version)

	down, err := runActivity[RestoreResult](t, m, m.MigrateDown, MigrateDownInput{MigrateInput: in, Captured: captured})
	require.NoError(t, err)
	require.False(t, down.AlreadyRestored)
	require.False(t, tableExists(t, file, "accounts"))

	down, err = runActivity[RestoreResult](t, m, m.MigrateDown, MigrateDownInput{MigrateInput: in, Captured: captured})
	require.NoError(t, err)
	require.True(t, down.AlreadyRestored)
}

func TestMigrationsSQLiteUpToTarget(t *testing.T) {
	m, _ := newSQLiteMigrations(t)
	in := MigrateInput{Database: "payments", Dir: migDir, Files: migFiles(goodSecond)}
	up, err := runActivity[MigrateResult](t, m, m.MigrateUp, MigrateUpInput{MigrateInput: in, Target: 2})
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2}, up.Applied)
	require.EqualValues(t, 2, up.To)

	// Down to a captured 1 reverts only 2.
	_, err = runActivity[RestoreResult](t, m, m.MigrateDown, MigrateDownInput{MigrateInput: in, Captured: SchemaState{Database: "payments", Version: 1}})
	require.NoError(t, err)
	now, err := runActivity[SchemaState](t, m, m.CaptureSchema, in)
	require.NoError(t, err)
	require.EqualValues(t, 1, now.Version)

	_, err = runActivity[MigrateResult](t, m, m.MigrateUp, MigrateUpInput{MigrateInput: in, Target: 7})
	requireErrType(t, err, ErrInvalid)

	// Captured above the current version: someone migrated down.
	_, err = runActivity[RestoreResult](t, m, m.MigrateDown, MigrateDownInput{MigrateInput: in, Captured: SchemaState{Version: 3}})
	requireErrType(t, err, ErrConflict)
}

func TestMigrationsSQLiteHalfFailing(t *testing.T) {
	m, file := newSQLiteMigrations(t)
	in := MigrateInput{Database: "payments", Dir: migDir, Files: migFiles(badSecond)}
	captured, err := runActivity[SchemaState](t, m, m.CaptureSchema, in)
	require.NoError(t, err)

	_, err = runActivity[MigrateResult](t, m, m.MigrateUp, MigrateUpInput{MigrateInput: in})
	requireErrType(t, err, ErrInvalid)
	require.ErrorContains(t, err, "migration 2 (00002_balance.sql) failed, schema left at version 1")

	now, err := runActivity[SchemaState](t, m, m.CaptureSchema, in)
	require.NoError(t, err)
	require.EqualValues(t, 1, now.Version)
	require.True(t, tableExists(t, file, "accounts"))
	require.False(t, tableExists(t, file, "ledger"))

	res, err := runActivity[RestoreResult](t, m, m.MigrateDown, MigrateDownInput{MigrateInput: in, Captured: captured})
	require.NoError(t, err)
	require.False(t, res.AlreadyRestored)
	require.False(t, tableExists(t, file, "accounts"))
}

func TestMigrationsInvalidInput(t *testing.T) {
	m, _ := newSQLiteMigrations(t)
	_, err := runActivity[SchemaState](t, m, m.CaptureSchema, MigrateInput{Database: "nope", Dir: migDir, Files: migFiles(goodSecond)})
	requireErrType(t, err, ErrInvalid)
	require.ErrorContains(t, err, `unknown database target "nope"`)

	_, err = runActivity[SchemaState](t, m, m.CaptureSchema, MigrateInput{Database: "payments", Dir: "migrations/empty", Files: migFiles(goodSecond)})
	requireErrType(t, err, ErrInvalid)

	dup := append(migFiles(goodSecond), runbook.File{Path: migDir + "/00002_again.sql", Content: goodSecond})
	_, err = runActivity[SchemaState](t, m, m.CaptureSchema, MigrateInput{Database: "payments", Dir: migDir, Files: dup})
	requireErrType(t, err, ErrInvalid)

	noUp := migFiles("SELECT 1;\n")
	_, err = runActivity[MigrateResult](t, m, m.MigrateUp, MigrateUpInput{MigrateInput: MigrateInput{Database: "payments", Dir: migDir, Files: noUp}})
	requireErrType(t, err, ErrInvalid)
}
