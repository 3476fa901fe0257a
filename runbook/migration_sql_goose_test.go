package runbook_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"testing/fstest"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite"

	"github.com/rollbook/rollbook/runbook"
)

// TestMigrationSQLAgreesWithGoose runs every file through the real goose
// (the version in go.mod, on an in-memory SQLite) and through
// CheckMigrationSQL: goose's column is what goose does, so the table cannot
// drift from goose silently; rollbook's column may only be stricter, and
// only where the reason column says why.
func TestMigrationSQLAgreesWithGoose(t *testing.T) {
	const down = "-- +goose Down\nDROP TABLE t;\n"
	const upSQL = "CREATE TABLE t (id INTEGER);\n"
	tests := []struct {
		name     string
		content  string
		goose    bool // goose parses and applies it
		rollbook bool // CheckMigrationSQL accepts it
		stricter string
	}{
		{"canonical", "-- +goose Up\n" + upSQL + down, true, true, ""},
		{"lower case, no spaces", "--+goose up\n" + upSQL + "--+goose down\nDROP TABLE t;\n", true, true, ""},
		{"doubled dashes", "---- +goose Up\n" + upSQL + down, true, true, ""},
		{"statement block", "-- +goose Up\n-- +goose StatementBegin\nCREATE TABLE t (id INTEGER);\n-- +goose StatementEnd\n" + down, true, true, ""},
		{"upper-case GOOSE is only a comment", "-- +goose Up\n" + upSQL + "-- +GOOSE Down\n", true, true, ""},
		{"indented Down (spaces)", "-- +goose Up\n" + upSQL + "  -- +goose Down\nDROP TABLE t;\n", false, false, ""},
		{"indented Down (tab)", "-- +goose Up\n" + upSQL + "\t-- +goose Down\nDROP TABLE t;\n", false, false, ""},
		{"indented Down (no-break space)", "-- +goose Up\n" + upSQL + "\u00a0-- +goose Down\nDROP TABLE t;\n", true, false, "indented annotation"},
		{"ENVSUB ON", "-- +goose Up\n-- +goose ENVSUB ON\nCREATE TABLE t (id INTEGER, s TEXT DEFAULT '${HOME}');\n" + down, true, false, "envsub"},
		{"envsub on, lower case", "-- +goose Up\n-- +goose envsub on\n" + upSQL + down, true, false, "envsub"},
		{"ENVSUB glued", "-- +goose Up\n--+gooseENVSUB ON\n" + upSQL + down, true, false, "envsub"},
		{"ENVSUB with a long s", "-- +goose Up\n-- +goose ENV\u017fUB ON\n" + upSQL + down, true, false, "envsub"},
		{"ENVSUB OFF", "-- +goose Up\n-- +goose ENVSUB OFF\n" + upSQL + down, true, false, "envsub"},
		{"ENVSUB two spaces", "-- +goose Up\n-- +goose ENVSUB  ON\n" + upSQL + down, false, false, ""},
		{"NO TRANSACTION", "-- +goose NO TRANSACTION\n-- +goose Up\n" + upSQL + down, true, false, "no transaction"},
		{"misspelt Up", "-- +goose Upp\n" + upSQL + down, false, false, ""},
		{"+goose in a comment", "-- +goose Up\n-- see the +goose docs\n" + upSQL + down, false, false, ""},
		{"trailing comment on annotation", "-- +goose Up -- create t\n" + upSQL + down, false, false, ""},
		{"two +goose", "-- +goose Up +goose\n" + upSQL + down, false, false, ""},
		{"empty annotation", "-- +goose\n" + upSQL + down, false, false, ""},
		{"no Up", upSQL + down, false, false, ""},
		{"Down before Up", "-- +goose Down\nDROP TABLE t;\n-- +goose Up\n" + upSQL, false, false, ""},
		{"two Ups", "-- +goose Up\n" + upSQL + "-- +goose Up\nSELECT 1;\n" + down, false, false, ""},
		{"missing semicolon before Down", "-- +goose Up\nCREATE TABLE t (id INTEGER)\n" + down, false, false, ""},
		{"missing semicolon at the end", "-- +goose Up\n" + upSQL + "-- +goose Down\nDROP TABLE t\n", false, false, ""},
		{"StatementBegin without End", "-- +goose Up\n-- +goose StatementBegin\n" + upSQL + down, false, false, ""},
		{"StatementEnd without Begin", "-- +goose Up\n" + upSQL + "-- +goose StatementEnd\n" + down, false, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gooseErr := runGoose(t, tt.content)
			if (gooseErr == nil) != tt.goose {
				t.Fatalf("goose: err = %v, the table says ok=%v", gooseErr, tt.goose)
			}
			err := runbook.CheckMigrationSQL("db/00001_t.sql", []byte(tt.content))
			if (err == nil) != tt.rollbook {
				t.Fatalf("CheckMigrationSQL: err = %v, want ok=%v", err, tt.rollbook)
			}
			if err != nil && !errors.Is(err, runbook.ErrMigration) {
				t.Errorf("error does not wrap ErrMigration: %v", err)
			}
			if tt.goose != tt.rollbook && (tt.rollbook || tt.stricter == "") {
				t.Errorf("rollbook may only be stricter than goose, and must say why")
			}
		})
	}
}

// runGoose applies content as migration 1 and rolls it back, with goose.
func runGoose(t *testing.T, content string) error {
	t.Helper()
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	fsys := fstest.MapFS{"00001_t.sql": {Data: []byte(content)}}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := p.Up(ctx); err != nil {
		return err
	}
	_, err = p.DownTo(ctx, 0)
	return err
}
