package tests

import (
	"errors"
	"io"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/x/vt"
	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestE2ETerminalViewOfARollback: `deploy --wait` on a terminal (a pty read
// through a terminal emulator) follows a bad release on the real stack: the
// last frame of the live view shows the failed verification, its failing
// measurement, the restored weights and the compensations, then the same
// summary as without a terminal, and the CLI exits 2.
func TestE2ETerminalViewOfARollback(t *testing.T) {
	f := newFixture(t, "e2e-tty")
	f.seed()
	setCanaryBad(t, 1)
	defer setCanaryBad(t, 0)
	l := startLoad(t, 60)
	screen, code := runOnTerminal(t, 140, 60, cliBin, "deploy", f.runbook(runbookOpts{}), "--version", "v3-bad", "--wait")
	l.Stop()
	require.Equal(t, 2, code, screen)
	for _, want := range []string{
		"rollbook e2e-tty v3-bad  rolled-back",
		"↩ expand-schema migrate  compensated",
		"↩ canary-50     traffic  compensated",
		"✘ verify-50     verify   failed",
		"api          canary   0%  stable 100%  (restored)",
		"Last measurement (verify-50, round",
		"fail         canary-errors",
		"Rollback",
		"↩ canary-50     traffic  done",
		"↩ expand-schema migrate  done",
		"outcome: rolled-back (failed step verify-50)",
	} {
		assert.Contains(t, screen, want)
	}
	f.assertRestored()
}

// runOnTerminal runs a command on a cols×rows pty whose output feeds a
// terminal emulator (which also answers the program's terminal queries) and
// returns the final screen and the exit code.
func runOnTerminal(t *testing.T, cols, rows int, name string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(cmd.Environ(), "TERM=xterm-256color")
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)})
	require.NoError(t, err, "starting %s on a pty", name)
	defer ptmx.Close()
	emu := vt.NewEmulator(cols, rows)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _, _ = io.Copy(ptmx, emu) }()
	timer := time.AfterFunc(3*time.Minute, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	_, _ = io.Copy(emu, ptmx) // ends with EIO once the command has exited
	werr := cmd.Wait()
	var xe *exec.ExitError
	if werr != nil && !errors.As(werr, &xe) {
		t.Fatalf("waiting for %s: %v", name, werr)
	}
	_ = emu.InputPipe().(io.Closer).Close()
	wg.Wait()
	screen := emu.String()
	t.Logf("%s on a terminal → exit %d; screen:\n%s", name, cmd.ProcessState.ExitCode(), screen)
	return screen, cmd.ProcessState.ExitCode()
}
