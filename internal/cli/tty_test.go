package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/x/vt"
	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/workflows"
)

const scriptLink = "http://localhost:8233/namespaces/default/workflows/rollbook-demo-api/run-1/history"

// TestTTYChild is the process the pty tests start: it follows a scripted
// deployment with stdout as it finds it (a pty, or a pipe) and exits with
// the CLI's exit code. Run directly (no ROLLBOOK_TTY_SCRIPT), it returns.
func TestTTYChild(t *testing.T) {
	script := os.Getenv("ROLLBOOK_TTY_SCRIPT")
	if script == "" {
		return
	}
	pollEvery = 100 * time.Millisecond
	rb, src := scripts[script](time.Now().Add(-10 * time.Second))
	a := &app{out: os.Stdout, errOut: os.Stderr}
	f := deployFlags{jsonOut: os.Getenv("ROLLBOOK_TTY_JSON") != "", abortOnInterrupt: os.Getenv("ROLLBOOK_TTY_ABORT") != ""}
	err := a.watch(context.Background(), src, a.newProgressView(f.jsonOut, rb, scriptLink, src), workflows.WorkflowID(rb.Service), f)
	code := ExitOK
	var ee *exitError
	if errors.As(err, &ee) {
		fmt.Fprintln(os.Stderr, "rollbook:", ee.err)
		code = ee.code
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "unexpected error:", err)
		code = 99
	}
	os.Exit(code)
}

// ptyRun is one run of the child under a pseudo-terminal, read through a
// terminal emulator: every screen seen, and the exit code.
type ptyRun struct {
	screens []string
	raw     strings.Builder
	code    int
	// aborted is the reason of the abort signal the script received.
	aborted string
}

// screenWith returns the first screen holding all of want ("" if none).
func (r *ptyRun) screenWith(want ...string) string {
	for _, s := range r.screens {
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(s, w)
		}
		if ok {
			return s
		}
	}
	return ""
}

func (r *ptyRun) last() string { return r.screens[len(r.screens)-1] }

// runInPTY starts the child on a 120×50 pty. onScreen may write to the
// pty (type keys) when a screen appears.
func runInPTY(t *testing.T, script string, env []string, onScreen func(screen string, tty io.Writer)) *ptyRun {
	t.Helper()
	const cols, rows = 120, 50
	cmd := exec.Command(os.Args[0], "-test.run=^TestTTYChild$")
	abortLog := filepath.Join(t.TempDir(), "abort")
	cmd.Env = append(os.Environ(), "ROLLBOOK_TTY_SCRIPT="+script, "TERM=xterm-256color", "ROLLBOOK_TTY_ABORT_LOG="+abortLog)
	cmd.Env = append(cmd.Env, env...)
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: rows, Cols: cols})
	require.NoError(t, err, "starting the child on a pty")
	defer ptmx.Close()
	emu := vt.NewEmulator(cols, rows)
	// The emulator's answers to terminal queries go back as a terminal's would.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _, _ = io.Copy(ptmx, emu) }()

	run := &ptyRun{}
	timer := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	buf := make([]byte, 32*1024)
	for {
		n, err := ptmx.Read(buf)
		if n > 0 {
			run.raw.Write(buf[:n])
			_, _ = emu.Write(buf[:n])
			run.screens = append(run.screens, emu.String())
			if onScreen != nil {
				onScreen(run.last(), ptmx)
			}
		}
		if err != nil { // EIO once the child has exited and closed the pty
			break
		}
	}
	werr := cmd.Wait()
	var xe *exec.ExitError
	if werr != nil && !errors.As(werr, &xe) {
		t.Fatalf("waiting for the child: %v", werr)
	}
	run.code = cmd.ProcessState.ExitCode()
	if b, err := os.ReadFile(abortLog); err == nil {
		run.aborted = string(b)
	}
	require.NotEmpty(t, run.screens, "the child wrote nothing")
	// Ends the copy of the emulator's answers (Emulator.Close would race
	// with its Read).
	_ = emu.InputPipe().(io.Closer).Close()
	wg.Wait()
	return run
}

// TestTTYRollbackView: under a pty, deploy --wait's live view shows the step
// list with states and durations, the verification's progress bar with its
// rounds, the route's weights, the last measurement, then the compensations
// while rolling back; the last frame stays on the screen, the plain summary
// follows it, and the exit code is 2 (rolled back).
func TestTTYRollbackView(t *testing.T) {
	run := runInPTY(t, "rollback", nil, nil)
	assert.Equal(t, ExitRolledBack, run.code, "exit code; last screen:\n%s", run.last())

	verifying := run.screenWith("Verifying verify-canary", "rounds: 3 passed, 0 failed")
	require.NotEmpty(t, verifying, "no screen showed the verification with 3 rounds passed; last screen:\n%s", run.last())
	for _, want := range []string{
		"rollbook demo-api v2  verifying",
		"Web UI: " + scriptLink,
		"✔ add-column    migrate  applied        1.2s  schema app: 3 → 4",
		"✔ canary-10     traffic  applied        0.3s",
		"▶ verify-canary verify   running",
		"· promote       traffic  pending",
		"█", "░", "/ 30s",
		"web          canary  10%  stable  90%  (set by canary-10)",
		"Last measurement (verify-canary, round 3,",
		"pass         error-rate           0.003",
	} {
		assert.Contains(t, verifying, want)
	}
	assert.NotContains(t, verifying, "Rollback", "no compensation has run yet")

	rolling := run.screenWith("rolling-back", "▶ canary-10     traffic  running")
	require.NotEmpty(t, rolling, "no screen showed the canary's compensation running; last screen:\n%s", run.last())
	for _, want := range []string{
		"reason: verify-canary: check error-rate failed: 5xx ratio 0.12 > 0.05",
		"✘ verify-canary verify   failed",
		"Last measurement (verify-canary, round 4,",
		"fail         error-rate           0.12  5xx ratio 0.12 > 0.05",
		"Rollback",
		"· add-column    migrate  pending",
	} {
		assert.Contains(t, rolling, want)
	}
	assert.NotContains(t, rolling, "Verifying verify-canary", "the bar is gone once the verification failed")

	restoring := run.screenWith("↩ canary-10     traffic  done", "▶ add-column    migrate  running")
	require.NotEmpty(t, restoring, "no screen showed the migration's compensation running after the canary's; last screen:\n%s", run.last())
	assert.Contains(t, restoring, "web          canary   0%  stable 100%  (restored)")

	final := run.last()
	for _, want := range []string{
		"rollbook demo-api v2  rolled-back",
		"↩ add-column    migrate  compensated",
		"↩ add-column    migrate  done",
		"outcome: rolled-back (failed step verify-canary): verify-canary: check error-rate failed",
		"rollback took 1.5s",
		"rollbook: rolled back: verify-canary: check error-rate failed",
	} {
		assert.Contains(t, final, want)
	}
	assert.Less(t, strings.Index(final, "↩ add-column    migrate  done"), strings.Index(final, "outcome: rolled-back"),
		"the last frame stays above the summary")
	assert.NotContains(t, run.raw.String(), "\x1b[?1049h", "inline rendering: no alternate screen")
}

// TestTTYSuccessView: the pause step gets its own bar, the promotion moves
// the weights to the canary, the exit code is 0.
func TestTTYSuccessView(t *testing.T) {
	run := runInPTY(t, "success", nil, nil)
	assert.Equal(t, ExitOK, run.code, "exit code; last screen:\n%s", run.last())
	pausing := run.screenWith("Pausing at bake", "paused")
	require.NotEmpty(t, pausing, "no screen showed the pause; last screen:\n%s", run.last())
	assert.Contains(t, pausing, "/ 20s")
	assert.Contains(t, pausing, "✔ verify-canary verify   passed")
	assert.NotContains(t, pausing, "rounds:", "a pause has no rounds")
	final := run.last()
	for _, want := range []string{
		"rollbook demo-api v2  succeeded",
		"✔ promote       traffic  applied",
		"web          canary 100%  stable   0%  (set by promote)",
		"outcome: succeeded",
	} {
		assert.Contains(t, final, want)
	}
	assert.NotContains(t, final, "Rollback", "discarded compensations are no rollback")
	assert.Contains(t, final, "undo canary-10                discarded", "the summary lists them, as without a terminal")
}

// ctrlCWhenVerifying types Ctrl-C into the terminal once the verification
// shows: the line discipline turns it into SIGINT, as for a user.
func ctrlCWhenVerifying() func(string, io.Writer) {
	sent := false
	return func(screen string, tty io.Writer) {
		if !sent && strings.Contains(screen, "Verifying verify-canary") {
			sent = true
			_, _ = tty.Write([]byte{3})
		}
	}
}

// TestTTYCtrlCDetaches: Ctrl-C detaches as without a terminal: exit 6, the
// deployment is not aborted, the last frame stays above the message.
func TestTTYCtrlCDetaches(t *testing.T) {
	run := runInPTY(t, "hold", nil, ctrlCWhenVerifying())
	final := run.last()
	assert.Equal(t, ExitUnreachable, run.code, "exit code; last screen:\n%s", final)
	assert.Contains(t, final, "interrupt: detached; the deployment goes on. Follow it with `rollbook status demo-api`, stop it with")
	assert.Contains(t, final, "rollbook: detached from rollbook-demo-api")
	assert.Empty(t, run.aborted, "detaching sends no abort")
	assert.Less(t, strings.Index(final, "▶ verify-canary verify   running"), strings.Index(final, "detached;"))
}

// TestTTYCtrlCAbortsWithFlag: with --abort-on-interrupt, Ctrl-C sends the
// abort signal, the view follows the rollback, exit 3.
func TestTTYCtrlCAbortsWithFlag(t *testing.T) {
	run := runInPTY(t, "hold", []string{"ROLLBOOK_TTY_ABORT=1"}, ctrlCWhenVerifying())
	final := run.last()
	assert.Equal(t, ExitAborted, run.code, "exit code; last screen:\n%s", final)
	assert.Equal(t, "CLI interrupted (interrupt)", run.aborted)
	assert.Contains(t, final, "interrupt: aborting the deployment of demo-api…")
	assert.NotEmpty(t, run.screenWith("Rollback", "▶ canary-10     traffic  running"), "the view went on through the rollback")
	assert.Contains(t, final, "outcome: aborted")
}

// TestNoTTYKeepsLines: without a terminal (a pipe, as in CI), with --json,
// or with TERM=dumb, the output is the plain or JSON lines, with no escape
// sequence.
func TestNoTTYKeepsLines(t *testing.T) {
	plainLine := func(l string) bool {
		return len(l) > 9 && l[2] == ':' && l[5] == ':' || strings.HasPrefix(l, "outcome: ") ||
			strings.HasPrefix(l, "rollback took ") || strings.HasPrefix(l, "  undo ")
	}
	t.Run("pipe", func(t *testing.T) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestTTYChild$")
		cmd.Env = append(os.Environ(), "ROLLBOOK_TTY_SCRIPT=rollback", "TERM=xterm-256color")
		out, err := cmd.Output()
		var xe *exec.ExitError
		require.ErrorAs(t, err, &xe)
		assert.Equal(t, ExitRolledBack, xe.ExitCode())
		assert.NotContains(t, string(out), "\x1b")
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		for _, l := range lines {
			assert.True(t, plainLine(l), "not a plain progress line: %q", l)
		}
		assert.Contains(t, string(out), "step          verify-canary            failed  error-rate: 5xx ratio 0.12 > 0.05")
		assert.Contains(t, string(out), "undo          canary-10                done  set web back to canary=0% stable=100%")
	})
	t.Run("json on a pty", func(t *testing.T) {
		run := runInPTY(t, "rollback", []string{"ROLLBOOK_TTY_JSON=1"}, nil)
		assert.Equal(t, ExitRolledBack, run.code)
		assert.NotContains(t, run.raw.String(), "\x1b", "not even a terminal query")
		assert.Contains(t, run.raw.String(), `{"event":"result","result":{"service":"demo-api","version":"v2","outcome":"rolled-back"`)
	})
	t.Run("TERM=dumb on a pty", func(t *testing.T) {
		run := runInPTY(t, "rollback", []string{"TERM=dumb"}, nil)
		assert.Equal(t, ExitRolledBack, run.code)
		assert.NotContains(t, run.raw.String(), "\x1b")
		assert.Contains(t, run.raw.String(), "outcome: rolled-back (failed step verify-canary)")
	})
}
