package runbook

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseMigrationSQLSections(t *testing.T) {
	tests := []struct {
		name         string
		content      string
		ok, withDown bool
	}{
		{"up and down", gooseOK, true, true},
		{"no down", "-- +goose Up\nCREATE TABLE t (id INT);\n", true, false},
		{"down with comments only", "-- +goose Up\nSELECT 1;\n-- +goose Down\n-- nothing\n\n   \n", true, false},
		{"down with statement block", "-- +goose Up\nSELECT 1;\n-- +goose Down\n-- +goose StatementBegin\nDROP TABLE t;\n-- +goose StatementEnd\n", true, true},
		{"empty statement block", "-- +goose Up\nSELECT 1;\n-- +goose Down\n-- +goose StatementBegin\n-- +goose StatementEnd\n", true, false},
		{"lower case, extra spaces", "--   +goose   up\nSELECT 1;\n--+goose down\nDROP TABLE t;\n", true, true},
		{"no up", "CREATE TABLE t (id INT);\n-- +goose Down\nDROP TABLE t;\n", false, false},
		{"CRLF", "-- +goose Up\r\nSELECT 1;\r\n-- +goose Down\r\nDROP TABLE t;\r\n", true, true},
	}
	for _, tt := range tests {
		sql, err := ParseMigrationSQL("m.sql", []byte(tt.content))
		if (err == nil) != tt.ok {
			t.Errorf("%s: err = %v, want ok=%v", tt.name, err, tt.ok)
			continue
		}
		if err == nil && (len(sql.Down) > 0) != tt.withDown {
			t.Errorf("%s: down statements %q, want some=%v", tt.name, sql.Down, tt.withDown)
		}
	}
}

func TestParseMigrations(t *testing.T) {
	files := []File{
		{Path: "db/m/00010_c.sql", Content: gooseOK},
		{Path: "db/m/00002_b.sql", Content: "-- +goose Up\nSELECT 1;\n"},
		{Path: "db/m/README.md", Content: "not a migration"},
		{Path: "db/m/sub/00001_deeper.sql", Content: gooseOK},
		{Path: "db/other/00001_x.sql", Content: gooseOK},
	}
	migs, err := ParseMigrations(files, "db/m/")
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) != 2 || migs[0].Version != 2 || migs[1].Version != 10 || migs[0].HasDown || !migs[1].HasDown {
		t.Errorf("migrations = %+v", migs)
	}
	if got := FilesUnder(files, "db/m"); len(got) != 3 || got[0].Path != "db/m/00002_b.sql" {
		t.Errorf("FilesUnder = %+v", got)
	}
	for _, tt := range []struct {
		version int64
		want    int64
		err     bool
	}{{0, 10, false}, {2, 2, false}, {10, 10, false}, {3, 0, true}} {
		got, err := TargetVersion(MigrateStep{Dir: "db/m", Version: tt.version}, files)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("TargetVersion(%d) = %d, %v", tt.version, got, err)
		}
		if err != nil && !errors.Is(err, ErrMigration) {
			t.Errorf("error does not wrap ErrMigration: %v", err)
		}
	}
	if _, err := TargetVersion(MigrateStep{Dir: "nowhere"}, files); !errors.Is(err, ErrMigration) {
		t.Errorf("empty folder: %v", err)
	}
	bad := append(files, File{Path: "db/m/0_zero.sql", Content: gooseOK}, File{Path: "db/m/002_dup.sql", Content: gooseOK})
	_, err = ParseMigrations(bad, "db/m")
	if !errors.Is(err, ErrMigration) || !strings.Contains(err.Error(), "0_zero.sql is not named") || !strings.Contains(err.Error(), "have the same version 2") {
		t.Errorf("err = %v", err)
	}
}

// TestMigrationSymlinks: links that stay inside the runbook's folder are
// followed; a migration file linking outside it is refused.
func TestMigrationSymlinks(t *testing.T) {
	outside := writeTree(t, map[string]string{"secret.sql": gooseOK})
	dir := writeTree(t, map[string]string{
		"rb.yaml":                 "apiVersion: rollbook/v1\nservice: svc\nsteps:\n  - name: m\n    migrate: {database: db, dir: linked}\n",
		"real/00001_a.sql":        gooseOK,
		"escape.yaml":             "apiVersion: rollbook/v1\nservice: svc\nsteps:\n  - name: m\n    migrate: {database: db, dir: files}\n",
		"files/00001_a.sql":       gooseOK,
		"files/placeholder.txt":   "",
		"broken.yaml":             "apiVersion: rollbook/v1\nservice: svc\nsteps:\n  - name: m\n    migrate: {database: db, dir: dangling}\n",
		"notdir.yaml":             "apiVersion: rollbook/v1\nservice: svc\nsteps:\n  - name: m\n    migrate: {database: db, dir: real/00001_a.sql}\n",
		"irreversible.yaml":       "apiVersion: rollbook/v1\nservice: svc\nsteps:\n  - name: m\n    irreversible: true\n    migrate: {database: db, dir: nodown}\n",
		"nodown/00001_a.sql":      "-- +goose Up\nSELECT 1;\n",
		"nodown/00002_b.sql":      "-- +goose Up\nSELECT 2;\n-- +goose Down\n\n",
		"nodown/ignored.sql.orig": "junk",
	})
	mustLink := func(target, link string) {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Skipf("symlinks unavailable: %v", err)
		}
	}
	mustLink("real", "linked")
	mustLink(filepath.Join(outside, "secret.sql"), "files/00002_secret.sql")
	mustLink("nowhere", "dangling")

	b, err := BuildBundle(filepath.Join(dir, "rb.yaml"), "v1", Origin{})
	if err != nil {
		t.Fatalf("link inside the folder: %v", err)
	}
	if len(b.Files) != 1 || b.Files[0].Path != "linked/00001_a.sql" {
		t.Errorf("files = %+v", b.Files)
	}
	_, err = Load(filepath.Join(dir, "escape.yaml"))
	if err == nil || !strings.Contains(err.Error(), "migration file files/00002_secret.sql resolves to") {
		t.Errorf("file link outside: %v", err)
	}
	if _, err = Load(filepath.Join(dir, "broken.yaml")); err == nil || !strings.Contains(err.Error(), "broken symlink") {
		t.Errorf("dangling link: %v", err)
	}
	if _, err = Load(filepath.Join(dir, "notdir.yaml")); err == nil {
		t.Error("a file as migration folder was accepted")
	}
	// An irreversible step may lack Down sections.
	if _, err = Load(filepath.Join(dir, "irreversible.yaml")); err != nil {
		t.Errorf("irreversible step without Down: %v", err)
	}
}

func TestValidateWithDir(t *testing.T) {
	rb, err := Parse("payments-api.yaml", mustRead(t, "../runbooks/payments-api.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(rb, WithDir("../runbooks")); err != nil {
		t.Errorf("WithDir: %v", err)
	}
	err = Validate(rb, WithDir(t.TempDir()), WithFile("payments-api.yaml"))
	if err == nil || !strings.Contains(err.Error(), `payments-api.yaml: steps[0].migrate.dir: migration folder "payments-api/migrations" does not exist`) {
		t.Errorf("WithDir elsewhere: %v", err)
	}
	err = Validate(rb, WithFiles(nil))
	if err == nil || !strings.Contains(err.Error(), "holds no goose SQL migrations") {
		t.Errorf("WithFiles(nil): %v", err)
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
