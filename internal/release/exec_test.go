package release

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// script writes an executable shell script into dir and returns its path.
// The scripts are real programs the driver starts; the driver itself never
// uses a shell.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755))
	return p
}

func newExec(t *testing.T, c ExecConfig) *Exec {
	t.Helper()
	e, err := NewExec("test", c)
	require.NoError(t, err)
	return e
}

// A deploy that fails half-way: its non-zero exit fails the release with
// ErrFailed, quoting the tail of what it printed.
func TestExecDeployFailsHalfWay(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	deploy := script(t, dir, "deploy.sh", `
echo "stopping old instances of $1"
echo "$1 stopped" >> `+state+`
echo "pulling $2 failed: manifest unknown" >&2
exit 3
`)
	e := newExec(t, ExecConfig{
		Current: Command{Argv: []string{"/bin/true"}},
		Deploy:  Command{Argv: []string{deploy, "{target}", "{version}"}},
		Health:  Command{Argv: []string{"/bin/true"}},
	})
	err := e.Deploy(context.Background(), Request{Target: "canary", Version: "v2", Key: "k"})
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrFailed)
	assert.Contains(t, err.Error(), "exit status 3")
	assert.Contains(t, err.Error(), "stopping old instances of canary")
	assert.Contains(t, err.Error(), "pulling v2 failed: manifest unknown")
	assert.Contains(t, err.Error(), "deploy command of exec driver test (target canary, version v2)")
	b, rerr := os.ReadFile(state)
	require.NoError(t, rerr)
	assert.Equal(t, "canary stopped\n", string(b), "the script really ran half-way")
}

// A health wait that never sees the target healthy ends with ErrTimeout
// at the driver's wait timeout, quoting the last health output.
func TestExecHealthWaitTimesOut(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	health := script(t, dir, "health.sh", `echo probe >> `+count+`
echo "canary: 0/2 instances ready"
exit 1
`)
	e := newExec(t, ExecConfig{
		Current: Command{Argv: []string{"/bin/echo", "v2"}},
		Deploy:  Command{Argv: []string{"/bin/true"}},
		Health:  Command{Argv: []string{health, "{target}"}},
		Wait:    WaitPolicy{Timeout: 800 * time.Millisecond, Interval: 100 * time.Millisecond},
	})
	start := time.Now()
	beats := 0
	err := WaitHealthy(context.Background(), e, "canary", "v2", func(string) { beats++ })
	took := time.Since(start)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrTimeout)
	assert.Contains(t, err.Error(), "0/2 instances ready")
	assert.Less(t, took, 3*time.Second)
	assert.GreaterOrEqual(t, took, 600*time.Millisecond)
	b, _ := os.ReadFile(count)
	probes := strings.Count(string(b), "probe")
	assert.GreaterOrEqual(t, probes, 3, "the health command ran repeatedly")
	assert.Equal(t, probes, beats, "every observation is reported for the heartbeat")
}

// Healthy, but running another version: the wait goes on, and the timeout
// says which version runs.
func TestExecHealthyWrongVersion(t *testing.T) {
	e := newExec(t, ExecConfig{
		Current: Command{Argv: []string{"/bin/echo", "v1"}},
		Deploy:  Command{Argv: []string{"/bin/true"}},
		Health:  Command{Argv: []string{"/bin/true"}},
		Wait:    WaitPolicy{Timeout: 300 * time.Millisecond, Interval: 100 * time.Millisecond},
	})
	err := WaitHealthy(context.Background(), e, "canary", "v2", nil)
	assert.ErrorIs(t, err, ErrTimeout)
	assert.Contains(t, err.Error(), "healthy, but it runs v1, not v2")
	require.NoError(t, WaitHealthy(context.Background(), e, "canary", "v1", nil))
}

// A deploy that hangs is killed at its timeout together with what it
// started (its process group), and its output tail is in the error.
func TestExecHangKilledAtTimeout(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	hang := script(t, dir, "hang.sh", `
echo "rolling out $1: waiting for the scheduler"
sleep 60 &
echo $! > `+pidFile+`
sleep 60
echo never
`)
	e := newExec(t, ExecConfig{
		Current: Command{Argv: []string{"/bin/true"}},
		Deploy:  Command{Argv: []string{hang, "{version}"}, Timeout: 500 * time.Millisecond},
		Health:  Command{Argv: []string{"/bin/true"}},
	})
	start := time.Now()
	err := e.Deploy(context.Background(), Request{Target: "canary", Version: "v2", Key: "k"})
	took := time.Since(start)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrTimeout)
	assert.Contains(t, err.Error(), "did not finish within 500ms and was killed with its process group")
	assert.Contains(t, err.Error(), "rolling out v2: waiting for the scheduler")
	assert.NotContains(t, err.Error(), "never")
	assert.Less(t, took, 5*time.Second, "killed at its timeout, not after the sleep")

	b, rerr := os.ReadFile(pidFile)
	require.NoError(t, rerr)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	require.Positive(t, pid)
	// The background sleep was in the process group: it is gone too (a
	// zombie not yet reaped by init counts as gone).
	assert.Eventually(t, func() bool { return !alive(pid) }, 3*time.Second, 50*time.Millisecond, "child %d still running", pid)
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// state is the field after the command name in parentheses
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// Arguments reach the program exactly as configured and substituted, one
// argv entry each: shell metacharacters in the configuration stay literal,
// and nothing is interpreted.
func TestExecArgvPassedLiterally(t *testing.T) {
	dir := t.TempDir()
	args := filepath.Join(dir, "args")
	pwned := filepath.Join(dir, "pwned")
	rec := script(t, dir, "record.sh", `for a in "$@"; do printf '%s\n' "$a" >> `+args+`; done
`)
	literal := "--note=$(touch " + pwned + "); `touch " + pwned + "` | cat > " + pwned + " && echo '*'"
	e := newExec(t, ExecConfig{
		Current: Command{Argv: []string{"/bin/true"}},
		Deploy:  Command{Argv: []string{rec, literal, "{target}", "{version}", "{key}", "*"}},
		Health:  Command{Argv: []string{"/bin/true"}},
	})
	version := "pay-1.0+b5.sha256-ab_cd"
	require.NoError(t, e.Deploy(context.Background(), Request{Target: "canary.eu-1", Version: version, Key: "rollbook-pay/run-1/release/apply"}))
	b, err := os.ReadFile(args)
	require.NoError(t, err)
	assert.Equal(t, []string{literal, "canary.eu-1", version, "rollbook-pay/run-1/release/apply", "*"}, strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"))
	assert.NoFileExists(t, pwned, "nothing was interpreted by a shell")

	// A version with metacharacters never reaches the program.
	require.NoError(t, os.Remove(args))
	err = e.Deploy(context.Background(), Request{Target: "canary", Version: "v2;touch " + pwned, Key: "k"})
	assert.ErrorIs(t, err, ErrRejected)
	assert.NoFileExists(t, args, "the command did not run")
	err = e.Deploy(context.Background(), Request{Target: "--all", Version: "v2", Key: "k"})
	assert.ErrorIs(t, err, ErrRejected)
}

// The commands' environment is the configured one only: the worker's own
// variables (its secrets) do not reach them.
func TestExecEnvironmentFromConfigOnly(t *testing.T) {
	t.Setenv("ROLLBOOK_PG_DSN", "postgres://secret")
	t.Setenv("DEPLOY_REGION", "eu-1")
	dir := t.TempDir()
	envOut := filepath.Join(dir, "env")
	e := newExec(t, ExecConfig{
		Current: Command{Argv: []string{"/bin/true"}},
		Deploy:  Command{Argv: []string{"env"}},
		Health:  Command{Argv: []string{"/bin/true"}},
		Env:     map[string]string{"KUBE_CONTEXT": "prod", "OUT": envOut},
		PassEnv: []string{"DEPLOY_REGION", "NOT_SET_ANYWHERE"},
		Dir:     dir,
	})
	// env prints the environment it got on its standard output.
	var out limitedBuffer
	out.max = 4096
	_, err := e.run(context.Background(), "deploy", e.cfg.Deploy, map[string]string{PlaceholderTarget: "canary"}, &out)
	require.NoError(t, err)
	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	assert.ElementsMatch(t, []string{"DEPLOY_REGION=eu-1", "KUBE_CONTEXT=prod", "OUT=" + envOut, "PATH=" + DefaultPath}, got)
	// "env" without a slash was found in the commands' PATH.
	require.NoError(t, e.Deploy(context.Background(), Request{Target: "canary", Version: "v2", Key: "k"}))
}

func TestExecCurrent(t *testing.T) {
	dir := t.TempDir()
	cur := script(t, dir, "current.sh", `case "$1" in
canary) printf '  v1.2.3+b4\n\n' ;;
bad) echo 'v1; rm -rf /' ;;
two) printf 'v1\nv2\n' ;;
big) head -c 10000 /dev/zero | tr '\0' a ;;
*) echo "unknown target $1" >&2; exit 2 ;;
esac
`)
	e := newExec(t, ExecConfig{
		Current: Command{Argv: []string{cur, "{target}"}},
		Deploy:  Command{Argv: []string{"/bin/true"}},
		Health:  Command{Argv: []string{"/bin/true"}},
	})
	v, err := e.Current(context.Background(), "canary")
	require.NoError(t, err)
	assert.Equal(t, "v1.2.3+b4", v)
	for _, target := range []string{"bad", "two", "big"} {
		_, err := e.Current(context.Background(), target)
		assert.ErrorIs(t, err, ErrBadVersion, target)
	}
	_, err = e.Current(context.Background(), "stable")
	assert.ErrorIs(t, err, ErrFailed)
	assert.Contains(t, err.Error(), "unknown target stable")
}

// Errors quote a bounded tail of the output, not all of it.
func TestExecTailIsBounded(t *testing.T) {
	dir := t.TempDir()
	noisy := script(t, dir, "noisy.sh", `i=0; while [ $i -lt 2000 ]; do echo "line $i of a long build log"; i=$((i+1)); done; echo "FINAL: disk full" >&2; exit 1
`)
	e := newExec(t, ExecConfig{
		Current:   Command{Argv: []string{"/bin/true"}},
		Deploy:    Command{Argv: []string{noisy}},
		Health:    Command{Argv: []string{"/bin/true"}},
		TailBytes: 1024,
	})
	err := e.Deploy(context.Background(), Request{Target: "canary", Version: "v2", Key: "k"})
	require.ErrorIs(t, err, ErrFailed)
	assert.Contains(t, err.Error(), "FINAL: disk full")
	assert.Contains(t, err.Error(), "line 1999 of a long build log")
	assert.NotContains(t, err.Error(), "line 10 of")
	assert.Contains(t, err.Error(), "bytes before]")
	assert.Less(t, len(err.Error()), 1400)
}

// Cancelling the context (an abort reaching the activity) kills the
// command at once.
func TestExecCancelKills(t *testing.T) {
	e := newExec(t, ExecConfig{
		Current: Command{Argv: []string{"/bin/true"}},
		Deploy:  Command{Argv: []string{"/bin/sleep", "60"}},
		Health:  Command{Argv: []string{"/bin/true"}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	err := e.Deploy(ctx, Request{Target: "canary", Version: "v2", Key: "k"})
	assert.ErrorIs(t, err, context.Canceled)
	assert.Less(t, time.Since(start), 3*time.Second)
}

func TestNewExecRefusesBadConfig(t *testing.T) {
	ok := Command{Argv: []string{"/bin/true"}}
	cases := []struct {
		name string
		c    ExecConfig
		want string
	}{
		{"glued placeholder", ExecConfig{Current: ok, Health: ok, Deploy: Command{Argv: []string{"helm", "--set=image.tag={version}"}}},
			`deploy: argument 1 "--set=image.tag={version}": a placeholder must be a whole argument`},
		{"unknown placeholder", ExecConfig{Current: ok, Health: ok, Deploy: Command{Argv: []string{"deploy", "{service}"}}},
			`deploy: argument 1 "{service}": unknown placeholder; this command may use {target} {version} {key}`},
		{"version in current", ExecConfig{Current: Command{Argv: []string{"cur", "{version}"}}, Health: ok, Deploy: ok},
			`current: argument 1 "{version}": unknown placeholder; this command may use {target}`},
		{"program placeholder", ExecConfig{Current: ok, Health: ok, Deploy: Command{Argv: []string{"{target}"}}},
			`deploy: the program "{target}" cannot be a placeholder`},
		{"missing", ExecConfig{Current: ok, Deploy: ok},
			`health: argv is required`},
		{"negative timeout", ExecConfig{Current: ok, Health: ok, Deploy: Command{Argv: []string{"d"}, Timeout: -time.Second}},
			`deploy: timeout must be positive`},
		{"bad env", ExecConfig{Current: ok, Health: ok, Deploy: ok, Env: map[string]string{"A=B": "c"}},
			`env: invalid variable "A=B"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewExec("x", tc.c)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// A program that cannot be found is an error, not a failed deploy.
func TestExecProgramNotFound(t *testing.T) {
	e := newExec(t, ExecConfig{
		Current: Command{Argv: []string{"/bin/true"}},
		Deploy:  Command{Argv: []string{"no-such-deployer"}},
		Health:  Command{Argv: []string{"/bin/true"}},
		Env:     map[string]string{"PATH": t.TempDir()},
	})
	err := e.Deploy(context.Background(), Request{Target: "canary", Version: "v2", Key: "k"})
	require.Error(t, err)
	assert.False(t, errors.Is(err, ErrFailed))
	assert.Contains(t, err.Error(), `program "no-such-deployer" not found in the commands' PATH`)
}
