package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// moduleRoot is the repository root, seen from starter/rollbook.
const moduleRoot = "../.."

// TestGoInstallNamesTheBinaries: `go install ./starter/... ./workers/...`
// (the documented way to get rollbook from a checkout) puts exactly two
// binaries into GOBIN, named rollbook and rollbook-worker, and each is the
// program its name says.
func TestGoInstallNamesTheBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles and links the CLI and the worker; skipped with -short")
	}
	gobin := t.TempDir()
	install := exec.Command("go", "install", "./starter/...", "./workers/...")
	install.Dir = moduleRoot
	install.Env = append(os.Environ(), "GOBIN="+gobin)
	out, err := install.CombinedOutput()
	require.NoError(t, err, "GOBIN=%s go install ./starter/... ./workers/...: %s", gobin, out)

	entries, err := os.ReadDir(gobin)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	assert.Equal(t, []string{exe("rollbook"), exe("rollbook-worker")}, names, "binaries installed into GOBIN")

	// The CLI: its help lists the commands CI calls.
	help, err := exec.Command(filepath.Join(gobin, exe("rollbook")), "--help").CombinedOutput()
	require.NoError(t, err, "rollbook --help: %s", help)
	for _, cmd := range []string{"validate", "plan", "deploy", "status", "abort"} {
		assert.Contains(t, string(help), cmd, "rollbook --help lists %s", cmd)
	}

	// The worker: with a configuration that does not exist it says so under
	// its own name and exits 1, before connecting to anything.
	missing := filepath.Join(t.TempDir(), "no-such-worker.yaml")
	wout, err := exec.Command(filepath.Join(gobin, exe("rollbook-worker")), "-config", missing).CombinedOutput()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "rollbook-worker with a missing config: %v: %s", err, wout)
	assert.Equal(t, 1, exit.ExitCode(), "%s", wout)
	assert.True(t, strings.HasPrefix(string(wout), "rollbook-worker: "), "rollbook-worker names itself: %s", wout)
	assert.Contains(t, string(wout), missing)
}

// exe is a command's file name on this OS.
func exe(name string) string {
	if runtime.GOOS == "windows" {
		return name + ".exe"
	}
	return name
}
