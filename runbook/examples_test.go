package runbook

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestExamples: every runbook in runbooks/ loads, validates, bundles with
// a stable hash and survives the trip through JSON.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../runbooks/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("found %d example runbooks, want at least 2", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			rb, err := Load(f)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if err := Validate(rb); err != nil {
				t.Errorf("Validate: %v", err)
			}
			b1, err := BuildBundle(f, "v1.2.3", Origin{User: "ci"})
			if err != nil {
				t.Fatalf("BuildBundle: %v", err)
			}
			b2, err := BuildBundle(f, "v1.2.3", Origin{User: "someone-else", CIJob: "42"})
			if err != nil {
				t.Fatal(err)
			}
			if b1.Hash != b2.Hash || len(b1.Hash) != 64 {
				t.Errorf("hash not stable: %s vs %s", b1.Hash, b2.Hash)
			}
			b3, _ := BuildBundle(f, "v1.2.4", Origin{})
			if b3.Hash == b1.Hash {
				t.Error("hash does not depend on the version")
			}
			data, err := json.Marshal(b1)
			if err != nil {
				t.Fatal(err)
			}
			back, err := DecodeBundle(data)
			if err != nil {
				t.Fatalf("DecodeBundle: %v", err)
			}
			if back.Hash != b1.Hash {
				t.Errorf("hash changed through JSON")
			}
			if err := Validate(&back.Runbook, WithFiles(back.Files)); err != nil {
				t.Errorf("Validate with bundle files: %v", err)
			}
			plan := Plan(rb)
			if len(plan) != len(rb.Steps) {
				t.Fatalf("plan has %d steps, want %d", len(plan), len(rb.Steps))
			}
			for _, p := range plan {
				if p.Forward == "" || p.Compensation == "" || p.Kind == "" {
					t.Errorf("incomplete plan step %+v", p)
				}
			}
		})
	}
}

func TestPaymentsExample(t *testing.T) {
	b, err := BuildBundle("../runbooks/payments-api.yaml", "v2", Origin{})
	if err != nil {
		t.Fatal(err)
	}
	if b.Runbook.Service != "payments-api" {
		t.Errorf("service = %q", b.Runbook.Service)
	}
	step := b.Runbook.Steps[0]
	if step.Migrate == nil || step.Migrate.Phase != PhaseExpand || step.Irreversible {
		t.Fatalf("first step is not a reversible expand migration: %+v", step)
	}
	migs, err := ParseMigrations(b.Files, step.Migrate.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) != 3 {
		t.Fatalf("got %d migrations, want 3", len(migs))
	}
	for i, m := range migs {
		if m.Version != int64(i+1) || !m.HasDown {
			t.Errorf("migration %d: %+v", i, m)
		}
	}
	if v, err := TargetVersion(*step.Migrate, b.Files); err != nil || v != 3 {
		t.Errorf("TargetVersion = %d, %v; want 3", v, err)
	}
	var weights []int
	for _, s := range b.Runbook.Steps {
		if s.Traffic != nil {
			weights = append(weights, s.Traffic.Weights["canary"])
		}
	}
	// 10/50/100 on the canary, then back to the promoted stable.
	if len(weights) != 4 || weights[0] != 10 || weights[1] != 50 || weights[2] != 100 || weights[3] != 0 {
		t.Errorf("canary weights = %v, want [10 50 100 0]", weights)
	}
	var promotion []string
	for _, p := range Plan(&b.Runbook) {
		if p.Promotion {
			promotion = append(promotion, p.Name)
		}
	}
	if strings.Join(promotion, ",") != "promote-stable,stable-100" {
		t.Errorf("promotion steps in the plan = %v, want promote-stable, stable-100", promotion)
	}
}
