package runbook

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTree writes files (slash paths → contents) under a new temporary
// folder and returns it.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// messages returns the lines of err, or nil.
func messages(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// requireMessages fails unless every want is one of err's lines.
func requireMessages(t *testing.T, err error, want ...string) {
	t.Helper()
	got := messages(err)
	if err == nil {
		t.Fatalf("no error; want %q", want)
	}
	for _, w := range want {
		if !contains(got, w) {
			t.Errorf("missing message\n  want: %s\n  got:\n    %s", w, strings.Join(got, "\n    "))
		}
	}
}

const gooseOK = "-- +goose Up\nCREATE TABLE t (id INTEGER);\n\n-- +goose Down\nDROP TABLE t;\n"

// header is the start of every runbook in the table tests (4 lines).
const header = `apiVersion: rollbook/v1
service: payments-api
routes:
  - {name: api, router: edge, backend: payments_api, subsets: [stable, canary], stable: stable, canary: canary}
`
