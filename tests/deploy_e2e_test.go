package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/workflows"
)

// before is the state every test starts from: the canary takes no traffic,
// the schema is empty, and one of the keys the runbook sets already exists.
func (f *fixture) seed() {
	putKV(f.t, f.prefix+"config/version", "1")
	require.Equal(f.t, map[string]int{"stable": 100, "canary": 0}, weights(f.t))
	require.EqualValues(f.t, 0, schemaVersion(f.t))
}

// assertRestored checks that every change of the runbook was undone,
// including keys that did not exist before.
func (f *fixture) assertRestored() {
	t := f.t
	t.Helper()
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t), "weights restored exactly")
	assert.EqualValues(t, 0, schemaVersion(t), "schema back at the captured version")
	assert.False(t, tableExists(t, "ledger_entries"), "the expand migration's table is gone")
	v, ok := kv(t, f.prefix+"config/version")
	assert.True(t, ok)
	assert.Equal(t, "1", v, "a key that existed gets its old value back")
	_, ok = kv(t, f.prefix+"features/new-ledger")
	assert.False(t, ok, "a key that did not exist is deleted again")
}

func TestE2EGoodDeployment(t *testing.T) {
	f := newFixture(t, "e2e-good")
	f.seed()
	l := startLoad(t, 60)
	out, code := cli(t, "deploy", f.runbook(runbookOpts{}), "--version", "v2", "--wait")
	l.Stop()
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "Web UI: ")
	assert.Contains(t, out, "outcome: succeeded")
	assert.Equal(t, map[string]int{"stable": 0, "canary": 100}, weights(t))
	assert.EqualValues(t, 3, schemaVersion(t))
	assert.True(t, columnExists(t, "payments", "external_reference"))
	v, _ := kv(t, f.prefix+"features/new-ledger")
	assert.Equal(t, "true", v)
	v, _ = kv(t, f.prefix+"config/version")
	assert.Equal(t, "2", v)
	c := l.Snapshot()
	assert.Zero(t, c.Errors, "no client saw an error (of %d requests)", c.Requests)
}

func TestE2EBadReleaseRollsBack(t *testing.T) {
	f := newFixture(t, "e2e-bad")
	f.seed()
	setCanaryBad(t, 1)
	defer setCanaryBad(t, 0)
	l := startLoad(t, 60)
	out, code := cli(t, "deploy", f.runbook(runbookOpts{}), "--version", "v3-bad", "--wait", "--json")
	l.Stop()
	require.Equal(t, 2, code, out)
	assert.Contains(t, out, `"outcome":"rolled-back"`)
	assert.Contains(t, out, "canary-errors")
	f.assertRestored()
}

func TestE2EAbortWithTemporalCLI(t *testing.T) {
	f := newFixture(t, "e2e-abort")
	f.seed()
	l := startLoad(t, 40)
	defer l.Stop()
	d := startCLI(t, "deploy", f.runbook(runbookOpts{verifyFor: 60 * time.Second}), "--version", "v2", "--wait")
	waitPhase(t, f.service, workflows.PhaseVerifying, 60*time.Second)
	require.Equal(t, map[string]int{"stable": 50, "canary": 50}, weights(t))

	// Exactly what the Web UI's "Send a signal" does.
	temporalBin := os.Getenv("ROLLBOOK_TEMPORAL_BIN")
	if temporalBin == "" {
		temporalBin = filepath.Join(devstack.ToolsDir(), "temporal-"+devstack.TemporalCLIVersion, "temporal")
	}
	sig := exec.Command(temporalBin, "workflow", "signal", "--address", stack.TemporalAddress, "--namespace", devstack.Namespace,
		"--workflow-id", workflows.WorkflowID(f.service), "--name", "abort", "--input", `{"reason":"dashboards look wrong","by":"e2e"}`)
	sigOut, err := sig.CombinedOutput()
	require.NoError(t, err, "%s", sigOut)

	out, code := d.wait(t, 60*time.Second)
	require.Equal(t, 3, code, out)
	assert.Contains(t, out, "dashboards look wrong")
	f.assertRestored()
}

func TestE2ESecondDeploymentIsRefused(t *testing.T) {
	f := newFixture(t, "e2e-busy")
	f.seed()
	l := startLoad(t, 40)
	defer l.Stop()
	rb := f.runbook(runbookOpts{verifyFor: 60 * time.Second})
	first := startCLI(t, "deploy", rb, "--version", "v2", "--wait")
	waitPhase(t, f.service, workflows.PhaseVerifying, 60*time.Second)
	w := weights(t)
	v, _ := kv(t, f.prefix+"config/version")

	out, code := cli(t, "deploy", rb, "--version", "v3")
	assert.Equal(t, 5, code, out)
	assert.Contains(t, out, "another deployment of e2e-busy is running")
	assert.Equal(t, w, weights(t), "the refused deployment changed no weight")
	v2, _ := kv(t, f.prefix+"config/version")
	assert.Equal(t, v, v2)
	st, err := status(f.service)
	require.NoError(t, err)
	assert.Equal(t, "v2", st.Version, "the running deployment is untouched")

	out, code = cli(t, "abort", f.service, "--reason", "test cleanup")
	require.Equal(t, 0, code, out)
	out, code = first.wait(t, 60*time.Second)
	assert.Equal(t, 3, code, out)
	f.assertRestored()
}

func TestE2EConflictingKeyIsNotOverwritten(t *testing.T) {
	f := newFixture(t, "e2e-conflict")
	f.seed()
	l := startLoad(t, 40)
	defer l.Stop()
	d := startCLI(t, "deploy", f.runbook(runbookOpts{verifyFor: 60 * time.Second}), "--version", "v2", "--wait")
	waitPhase(t, f.service, workflows.PhaseVerifying, 60*time.Second)

	// Someone edits a key the deployment wrote.
	putKV(t, f.prefix+"features/new-ledger", "hand-edited")
	out, code := cli(t, "abort", f.service, "--reason", "rollback with a conflict")
	require.Equal(t, 0, code, out)
	st := waitPhase(t, f.service, workflows.PhaseRollbackStuck, 60*time.Second)
	assert.Contains(t, st.Reason, "features/new-ledger")
	assert.Equal(t, "flags", st.CurrentStep)
	v, _ := kv(t, f.prefix+"features/new-ledger")
	assert.Equal(t, "hand-edited", v, "the rollback did not overwrite someone else's change")
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t), "traffic was restored before the stuck step")

	out, code = cli(t, "skip", f.service, "--step", "flags", "--reason", "keep the hand edit")
	require.Equal(t, 0, code, out)
	out, code = d.wait(t, 60*time.Second)
	assert.Equal(t, 4, code, out)
	assert.Contains(t, out, "rollback-failed")
	v, _ = kv(t, f.prefix+"features/new-ledger")
	assert.Equal(t, "hand-edited", v)
	assert.EqualValues(t, 0, schemaVersion(t), "the compensations after the skipped one still ran")
}

func TestE2EMigrationFailingHalfWay(t *testing.T) {
	f := newFixture(t, "e2e-migfail")
	f.seed()
	f.copyMigrations("broken", map[string]string{
		"00002_add_ledger_reference.sql": "-- +goose Up\nALTER TABLE ledger_entries ADD COLUMN external_reference TEXT;\nALTER TABLE no_such_table ADD COLUMN x INT;\n-- +goose Down\nALTER TABLE ledger_entries DROP COLUMN external_reference;\n",
	})
	out, code := cli(t, "deploy", f.runbook(runbookOpts{migrations: "broken"}), "--version", "v2", "--wait")
	require.Equal(t, 2, code, out)
	assert.Contains(t, out, "expand-schema")
	assert.EqualValues(t, 0, schemaVersion(t), "schema back at the captured version")
	assert.False(t, tableExists(t, "ledger_entries"), "file 1 was undone too")
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t))
	_, ok := kv(t, f.prefix+"features/new-ledger")
	assert.False(t, ok, "later steps never ran")
}

func TestE2EValidateAndPlanTouchNothing(t *testing.T) {
	out, code := cli(t, "validate", filepath.Join(repoRoot, "runbooks", "payments-api.yaml"), filepath.Join(repoRoot, "runbooks", "config-only.yaml"))
	require.Equal(t, 0, code, out)
	out, code = cli(t, "plan", filepath.Join(repoRoot, "runbooks", "payments-api.yaml"))
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "undo: restore the captured weights")
	out, code = cli(t, "status", "no-such-service")
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "no deployment of service no-such-service")
	out, code = cli(t, "abort", "no-such-service", "--reason", "x")
	assert.Equal(t, 1, code, out)
	_ = fmt.Sprint
}
