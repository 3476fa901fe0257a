package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// plan marks onRollback: drop as data-destroying, in text and Markdown, and
// says what the other policies do.
func TestPlanWarnsAboutDrop(t *testing.T) {
	dir := t.TempDir()
	mig := "-- +goose Up\nCREATE TABLE t (id INTEGER PRIMARY KEY);\n-- +goose Down\nDROP TABLE t;\n"
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "m"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "m", "00001_t.sql"), []byte(mig), 0o644))
	rb := filepath.Join(dir, "rb.yaml")
	require.NoError(t, os.WriteFile(rb, []byte(`apiVersion: rollbook/v1
service: orders
steps:
  - name: expand
    migrate: {database: payments, dir: m, phase: expand}
  - name: risky
    migrate: {database: payments, dir: m, onRollback: drop}
`), 0o644))
	var out, errOut bytes.Buffer
	require.Equal(t, ExitOK, Run(context.Background(), []string{"plan", rb}, &out, &errOut), errOut.String())
	s := out.String()
	assert.Contains(t, s, "undo: keep the schema of database payments as migrated (onRollback: keep, the default for phase expand)")
	assert.Contains(t, s, "undo: DATA-DESTROYING: migrate database payments down")
	assert.Contains(t, s, "    WARNING: onRollback: drop DESTROYS DATA")
	assert.Equal(t, 1, bytes.Count(out.Bytes(), []byte("WARNING")), "only the drop step is warned about")

	out.Reset()
	require.Equal(t, ExitOK, Run(context.Background(), []string{"plan", "--markdown", rb}, &out, &errOut), errOut.String())
	assert.Contains(t, out.String(), `⚠️ **onRollback\: drop DESTROYS DATA\:`, "the warning is bold; its text is escaped like all runbook text")
}
