package workflows

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/rollbook/rollbook/activities"
	"github.com/rollbook/rollbook/runbook"
)

// policyRunbook is testRunbook with a failing verification, a webhook, and
// the schema step's phase and onRollback set.
func policyRunbook(phase, onRollback string) runbook.Runbook {
	rb := testRunbook()
	rb.Steps[0].Migrate.Phase = phase
	rb.Steps[0].Migrate.OnRollback = onRollback
	rb.Notify = &runbook.Notify{Webhook: "chat"}
	return rb
}

var createdFiles = []activities.FileObjects{
	{Version: 2, Created: []activities.CatalogObject{{Kind: activities.ObjectTable, Table: "u"}, {Kind: activities.ObjectColumn, Table: "t", Column: "ref"}}},
}

var archivedObjects = []activities.ArchivedObject{
	{Version: 2, Kind: activities.ObjectTable, Table: "u", ArchiveTable: "rollbook_archive.schema__u_v2_0a1b2c3d", Rows: 100},
	{Version: 2, Kind: activities.ObjectColumn, Table: "t", Column: "ref", ArchiveTable: "rollbook_archive.schema__t__ref_v2_4e5f6071", Rows: 40},
}

func policyHarness(t *testing.T) (*harness, *[]activities.MigrateUpInput, *[]activities.MigrateDownInput) {
	h := newHarness(t)
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) { return failing(in), nil }
	var ups []activities.MigrateUpInput
	var downs []activities.MigrateDownInput
	h.migrateUp = func(in activities.MigrateUpInput) (activities.MigrateResult, error) {
		ups = append(ups, in)
		return activities.MigrateResult{From: 1, To: 2, Applied: []int64{2}, Files: createdFiles}, nil
	}
	h.migrateDown = func(in activities.MigrateDownInput) (activities.RestoreResult, error) {
		downs = append(downs, in)
		if in.Policy == runbook.OnRollbackArchive {
			return activities.RestoreResult{Detail: "database db migrated down from 2 to 1", Archived: archivedObjects}, nil
		}
		return activities.RestoreResult{Detail: "database db migrated down from 2 to 1; nothing preserved (onRollback: drop)"}, nil
	}
	return h, &ups, &downs
}

// migrationCalls is calls(false) without the notifications.
func migrationCalls(h *harness) []string {
	var out []string
	for _, c := range h.calls(false) {
		if !strings.HasPrefix(c, "Notify:") {
			out = append(out, c)
		}
	}
	return out
}

func lastNotification(h *harness) activities.NotifyInput {
	h.mu.Lock()
	defer h.mu.Unlock()
	require.NotEmpty(h.t, h.notified)
	return h.notified[len(h.notified)-1]
}

func TestMigrateDefaultArchivesBeforeDown(t *testing.T) {
	h, ups, downs := policyHarness(t)
	r := h.run(policyRunbook("", ""))
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	assert.Equal(t, seq(forwardAll[:6], undoAll), migrationCalls(h))
	require.Len(t, *ups, 1)
	assert.Equal(t, runbook.OnRollbackArchive, (*ups)[0].Policy, "the apply records diffs in the database for the archive")
	require.Len(t, *downs, 1)
	d := (*downs)[0]
	assert.Equal(t, runbook.OnRollbackArchive, d.Policy)
	assert.Equal(t, createdFiles, d.Created, "the compensation carries the apply's catalog diff")
	assert.NotEmpty(t, d.Files, "the activity gets the files from the bundle")
	assert.Empty(t, r.Compensations[0].Migrate.Files, "files are not recorded in the compensation")

	c := r.Compensations[0]
	assert.Equal(t, CompDone, c.State)
	assert.Equal(t, archivedObjects, c.Preserved)
	assert.False(t, c.Kept)
	assert.Contains(t, r.Steps[0].Detail, "created u, t.ref")
	assert.Contains(t, r.Steps[0].Detail, "rollback preserved u (100 rows) → rollbook_archive.schema__u_v2_0a1b2c3d, t.ref (40 rows) → rollbook_archive.schema__t__ref_v2_4e5f6071")

	n := lastNotification(h)
	assert.Equal(t, string(OutcomeRolledBack), n.Phase)
	assert.Contains(t, n.Preserved, "db archived by schema: u (100 rows) → rollbook_archive.schema__u_v2_0a1b2c3d")
}

func TestMigrateExpandKeepsTheSchema(t *testing.T) {
	h, ups, downs := policyHarness(t)
	r := h.run(policyRunbook(runbook.PhaseExpand, ""))
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	assert.Equal(t, seq(forwardAll[:6], []string{"RestoreWeights:canary-10", "RestoreKV:flags"}), migrationCalls(h), "no MigrateDown")
	assert.Empty(t, *downs)
	assert.Equal(t, runbook.OnRollbackKeep, (*ups)[0].Policy)
	c := r.Compensations[0]
	assert.Equal(t, CompDone, c.State)
	assert.True(t, c.Kept)
	assert.Contains(t, c.Detail, "kept as migrated (onRollback: keep)")
	assert.Equal(t, StepCompensated, r.Steps[0].State)
	assert.Contains(t, r.Steps[0].Detail, "rollback kept the schema")
	assert.Contains(t, lastNotification(h).Preserved, "schema of db kept by schema")
}

func TestMigrateExplicitPolicyOverridesPhase(t *testing.T) {
	h, _, downs := policyHarness(t)
	r := h.run(policyRunbook(runbook.PhaseExpand, runbook.OnRollbackArchive))
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	require.Len(t, *downs, 1)
	assert.Equal(t, runbook.OnRollbackArchive, (*downs)[0].Policy)
}

func TestMigrateDropPreservesNothing(t *testing.T) {
	h, _, downs := policyHarness(t)
	r := h.run(policyRunbook("", runbook.OnRollbackDrop))
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	require.Len(t, *downs, 1)
	assert.Equal(t, runbook.OnRollbackDrop, (*downs)[0].Policy)
	assert.Empty(t, r.Compensations[0].Preserved)
	assert.Contains(t, r.Steps[0].Detail, "rollback dropped the data (onRollback: drop)")
	assert.Empty(t, lastNotification(h).Preserved)
}

// An archive that cannot be written stops the rollback in rollback-stuck
// with the reason; a retry after the operator fixed it goes on.
func TestMigrateArchiveFailureIsStuck(t *testing.T) {
	h, _, downs := policyHarness(t)
	attempts := 0
	inner := h.migrateDown
	h.migrateDown = func(in activities.MigrateDownInput) (activities.RestoreResult, error) {
		attempts++
		if attempts == 1 {
			return activities.RestoreResult{}, temporal.NewNonRetryableApplicationError(
				"preserving the data of migration 2 in database db before its Down: permission denied for schema rollbook_archive; the Down was not run, so nothing is lost",
				activities.ErrArchive, nil)
		}
		return inner(in)
	}
	h.at(2*time.Minute, func() {
		st := h.query()
		assert.Equal(t, PhaseRollbackStuck, st.Phase)
		assert.Contains(t, st.Reason, "permission denied for schema rollbook_archive")
		assert.Contains(t, st.Reason, "the Down was not run")
		assert.Equal(t, CompStuck, st.Compensations[0].State)
		h.signal(SignalRetry, OperatorSignal{By: "erin"})
	})
	r := h.run(policyRunbook("", ""))
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	assert.Equal(t, 2, attempts, "not retried before the operator said so")
	assert.Len(t, *downs, 1)
	assert.Equal(t, archivedObjects, r.Compensations[0].Preserved)
}

// A revert of a succeeded deployment runs the same policy from the result.
func TestRevertKeepsAndArchivesByPolicy(t *testing.T) {
	h, _, _ := policyHarness(t)
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) { return healthy(in), nil }
	h.at(40*time.Second, func() { h.signal(SignalApprove, ApproveSignal{}) })
	r := h.run(policyRunbook(runbook.PhaseExpand, ""))
	require.Equal(t, OutcomeSucceeded, r.Outcome)
	require.Equal(t, runbook.OnRollbackKeep, r.Compensations[0].Migrate.Policy)
	require.Equal(t, createdFiles, r.Compensations[0].Migrate.Created)
}
