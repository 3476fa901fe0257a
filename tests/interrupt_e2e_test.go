package tests

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/workflows"
)

// Ctrl-C (or a cancelled CI job's SIGTERM) on `deploy --wait` detaches: the
// CLI exits 6 and the deployment goes on, untouched.
func TestE2EInterruptDetaches(t *testing.T) {
	f := newFixture(t, "e2e-detach")
	f.seed()
	d := startCLI(t, "deploy", f.runbook(runbookOpts{verifyFor: 60 * time.Second}), "--version", "v2", "--wait")
	waitPhase(t, f.service, workflows.PhaseVerifying, 60*time.Second)
	require.NoError(t, d.cmd.Process.Signal(os.Interrupt))
	out, code := d.wait(t, 20*time.Second)
	assert.Equal(t, 6, code, out)
	assert.Contains(t, out, "detached; the deployment goes on")
	time.Sleep(time.Second)
	st, err := status(f.service)
	require.NoError(t, err)
	assert.Equal(t, workflows.PhaseVerifying, st.Phase, "the deployment is still running")
	assert.Equal(t, map[string]int{"stable": 50, "canary": 50}, weights(t))
	// The fixture's cleanup aborts it and waits for the rollback.
}

// With --abort-on-interrupt the same interrupt aborts the deployment; the CLI
// keeps waiting and exits 3 once everything is rolled back.
func TestE2EInterruptAborts(t *testing.T) {
	f := newFixture(t, "e2e-interrupt-abort")
	f.seed()
	d := startCLI(t, "deploy", f.runbook(runbookOpts{verifyFor: 60 * time.Second}), "--version", "v2", "--wait", "--abort-on-interrupt")
	waitPhase(t, f.service, workflows.PhaseVerifying, 60*time.Second)
	require.NoError(t, d.cmd.Process.Signal(os.Interrupt))
	out, code := d.wait(t, 60*time.Second)
	assert.Equal(t, 3, code, out)
	assert.Contains(t, out, "CLI interrupted")
	f.assertRestored()
}
