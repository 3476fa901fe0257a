package runbook

import (
	"strings"
	"testing"
)

func TestRollbackPolicyDefaults(t *testing.T) {
	for _, tt := range []struct{ phase, onRollback, want string }{
		{"", "", OnRollbackArchive},
		{PhaseExpand, "", OnRollbackKeep},
		{PhaseContract, "", OnRollbackArchive},
		{PhaseExpand, OnRollbackArchive, OnRollbackArchive},
		{"", OnRollbackKeep, OnRollbackKeep},
		{"", OnRollbackDrop, OnRollbackDrop},
	} {
		m := MigrateStep{Phase: tt.phase, OnRollback: tt.onRollback}
		if got := m.RollbackPolicy(); got != tt.want {
			t.Errorf("phase %q onRollback %q: policy %q, want %q", tt.phase, tt.onRollback, got, tt.want)
		}
	}
}

func TestOnRollbackValidation(t *testing.T) {
	steps := `steps:
  - name: schema
    migrate:
      database: payments
      dir: m
      onRollback: delete-everything
  - name: contract
    irreversible: true
    migrate: {database: payments, dir: c, onRollback: keep}
`
	_, err := Parse("t.yaml", []byte(header+steps))
	requireMessages(t, err,
		`t.yaml:10: steps[0].migrate.onRollback: unknown onRollback policy "delete-everything" (use keep, archive or drop, or leave it out: expand keeps, other phases archive)`,
		`t.yaml:13: steps[1].migrate.onRollback: an irreversible step is never rolled back; onRollback "keep" would not be used: remove it`,
	)
	for _, p := range OnRollbackPolicies {
		if _, err := Parse("t.yaml", []byte(header+"steps:\n  - name: schema\n    migrate: {database: payments, dir: m, onRollback: "+p+"}\n")); err != nil {
			t.Errorf("onRollback %s refused: %v", p, err)
		}
	}
}

func TestPlanShowsOnRollback(t *testing.T) {
	rb := &Runbook{Service: "s", Steps: []Step{
		{Name: "expand", Migrate: &MigrateStep{Database: "payments", Dir: "m", Phase: PhaseExpand}},
		{Name: "plain", Migrate: &MigrateStep{Database: "payments", Dir: "m2"}},
		{Name: "drop", Migrate: &MigrateStep{Database: "payments", Dir: "m3", OnRollback: OnRollbackDrop}},
	}}
	p := Plan(rb)
	if p[0].OnRollback != OnRollbackKeep || !strings.Contains(p[0].Compensation, "keep the schema of database payments") || !strings.Contains(p[0].Compensation, "the default for phase expand") {
		t.Errorf("expand: %+v", p[0])
	}
	if p[1].OnRollback != OnRollbackArchive || !strings.Contains(p[1].Compensation, "rollbook_archive") || p[1].DataDestroying {
		t.Errorf("plain: %+v", p[1])
	}
	if p[2].OnRollback != OnRollbackDrop || !p[2].DataDestroying || !strings.Contains(p[2].Warning, "DESTROYS DATA") ||
		!strings.HasPrefix(p[2].Compensation, "DATA-DESTROYING") {
		t.Errorf("drop: %+v", p[2])
	}
}
