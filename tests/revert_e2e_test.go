package tests

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// deployGood runs the fixture's runbook to success under light load.
func (f *fixture) deployGood() {
	f.t.Helper()
	l := startLoad(f.t, 40)
	defer l.Stop()
	out, code := cli(f.t, "deploy", f.runbook(runbookOpts{}), "--version", "v2", "--wait")
	require.Equal(f.t, 0, code, out)
	require.Equal(f.t, map[string]int{"stable": 0, "canary": 100}, weights(f.t))
	require.EqualValues(f.t, 3, schemaVersion(f.t))
}

func TestE2ERevertLastSucceededDeployment(t *testing.T) {
	f := newFixture(t, "e2e-revert")
	f.seed()
	f.deployGood()

	out, code := cli(t, "revert", f.service, "--dry-run")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "set route api back to canary=0% stable=100%")
	assert.Equal(t, map[string]int{"stable": 0, "canary": 100}, weights(t), "a dry run changes nothing")

	out, code = cli(t, "revert", f.service, "--wait", "--reason", "e2e")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "outcome: reverted")
	f.assertRestored()

	out, code = cli(t, "revert", f.service)
	assert.Equal(t, 1, code, "reverting twice is refused: %s", out)
}

func TestE2ERevertRefusesToOverwriteAChangedKey(t *testing.T) {
	f := newFixture(t, "e2e-revert-conflict")
	f.seed()
	f.deployGood()
	putKV(t, f.prefix+"config/version", "3-by-hand")

	d := startCLI(t, "revert", f.service, "--wait")
	st := waitPhase(t, f.service, "rollback-stuck", 60e9)
	assert.Contains(t, st.Reason, "config/version")
	v, _ := kv(t, f.prefix+"config/version")
	assert.Equal(t, "3-by-hand", v, "nothing overwritten")
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t), "traffic, undone first, is back")

	out, code := cli(t, "skip", f.service, "--step", "flags")
	require.Equal(t, 0, code, out)
	out, code = d.wait(t, 60e9)
	assert.Equal(t, 4, code, out)
	v, _ = kv(t, f.prefix+"config/version")
	assert.Equal(t, "3-by-hand", v)
	assert.EqualValues(t, 0, schemaVersion(t))
}
