package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rollbook/rollbook/runbook"
)

// v3's runbook is the payments-api runbook, unchanged, plus v3's own migration 00005 in the
// expand step's folder: it validates and bundles like the committed one, its expand step
// goes to version 5, every Down is there, and the bundle differs from v2's by that one file.
func TestNextReleaseRunbook(t *testing.T) {
	const committed = "../../runbooks/payments-api.yaml"
	path, err := nextRelease(committed, "v3-release", filepath.Join(t.TempDir(), "v3-runbooks"))
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(committed)
	copied, _ := os.ReadFile(path)
	if string(orig) != string(copied) {
		t.Fatal("v3's runbook file differs from runbooks/payments-api.yaml")
	}
	rb, err := runbook.Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := runbook.Validate(rb); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	v2, err := runbook.BuildBundle(committed, "v2", runbook.Origin{})
	if err != nil {
		t.Fatal(err)
	}
	v3, err := runbook.BuildBundle(path, "v3", runbook.Origin{})
	if err != nil {
		t.Fatalf("BuildBundle: %v", err)
	}
	if !reflect.DeepEqual(v2.Runbook, v3.Runbook) {
		t.Error("the runbooks of v2 and v3 differ")
	}
	var added []string
	for _, f := range v3.Files {
		if !containsFile(v2.Files, f) {
			added = append(added, f.Path)
		}
	}
	if len(added) != 1 || added[0] != "payments-api/migrations/00005_create_payment_events.sql" || len(v3.Files) != len(v2.Files)+1 {
		t.Fatalf("v3's bundle adds %v to v2's (%d files, v2 %d); want only its migration 00005", added, len(v3.Files), len(v2.Files))
	}
	expand := *v3.Runbook.Steps[0].Migrate
	if v, err := runbook.TargetVersion(expand, v3.Files); err != nil || v != 5 {
		t.Errorf("the expand step's target = %d, %v; want 5", v, err)
	}
	migs, err := runbook.ParseMigrations(v3.Files, expand.Dir)
	if err != nil {
		t.Fatal(err)
	}
	last := migs[len(migs)-1]
	if last.Version != 5 || !last.HasDown {
		t.Errorf("migration 00005: %+v, want version 5 with a Down", last)
	}
	if expand.OnRollback != runbook.OnRollbackArchive {
		t.Errorf("the expand step's onRollback is %q: the demo relies on archive", expand.OnRollback)
	}
	plan := runbook.Plan(rb)
	if !strings.Contains(plan[0].Compensation, "archive") {
		t.Errorf("the plan's undo of expand-schema does not say it archives: %q", plan[0].Compensation)
	}
}

// An overlay that would replace a file of the runbook's folder is refused.
func TestNextReleaseRefusesToReplaceAFile(t *testing.T) {
	overlay := t.TempDir()
	f := filepath.Join(overlay, "payments-api", "migrations", "00001_create_ledger_entries.sql")
	if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, []byte("-- +goose Up\nSELECT 1;\n-- +goose Down\nSELECT 1;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := nextRelease("../../runbooks/payments-api.yaml", overlay, filepath.Join(t.TempDir(), "rb"))
	if err == nil || !strings.Contains(err.Error(), "would replace the runbook folder's own payments-api/migrations/00001_create_ledger_entries.sql") {
		t.Fatalf("err = %v", err)
	}
}

func containsFile(fs []runbook.File, f runbook.File) bool {
	for _, g := range fs {
		if g == f {
			return true
		}
	}
	return false
}
