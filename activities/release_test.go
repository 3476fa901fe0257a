package activities

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/internal/release"
	"github.com/rollbook/rollbook/internal/release/deployertest"
)

// platform is a tiny "deployment platform" made of real scripts: each
// target's version lives in a file, deploy rewrites it and logs the call,
// health succeeds unless the version is listed in the unhealthy file.
type platform struct {
	dir string
	rel *Release
}

func newPlatform(t *testing.T, versions map[string]string) *platform {
	t.Helper()
	dir := t.TempDir()
	for target, v := range versions {
		require.NoError(t, os.WriteFile(filepath.Join(dir, target+".version"), []byte(v+"\n"), 0o644))
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\nset -e\n"+body), 0o755))
		return p
	}
	cur := write("current.sh", `cat "$1.version"`+"\n")
	deploy := write("deploy.sh", `echo "$1 $2 $3" >> deploys.log
if [ -f "fail-$2" ]; then echo "deploying $2: $(cat fail-$2)"; exit 4; fi
echo "$2" > "$1.version"
`)
	health := write("health.sh", `v=$(cat "$1.version"); if grep -qx "$v" unhealthy 2>/dev/null; then echo "$1: $v is crash-looping"; exit 1; fi
`)
	e, err := release.NewExec("platform", release.ExecConfig{
		Dir:     dir,
		Current: release.Command{Argv: []string{cur, "{target}"}},
		Deploy:  release.Command{Argv: []string{deploy, "{target}", "{version}", "{key}"}},
		Health:  release.Command{Argv: []string{health, "{target}"}},
		Wait:    release.WaitPolicy{Timeout: 600 * time.Millisecond, Interval: 100 * time.Millisecond},
	})
	require.NoError(t, err)
	rel, err := NewRelease(map[string]ReleaseTarget{"canary": {Driver: e, Name: "canary"}, "stable": {Driver: e, Name: "stable"}})
	require.NoError(t, err)
	return &platform{dir: dir, rel: rel}
}

func (p *platform) version(t *testing.T, target string) string {
	b, err := os.ReadFile(filepath.Join(p.dir, target+".version"))
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}

func (p *platform) deploys(t *testing.T) []string {
	b, err := os.ReadFile(filepath.Join(p.dir, "deploys.log"))
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func (p *platform) touch(t *testing.T, name, content string) {
	require.NoError(t, os.WriteFile(filepath.Join(p.dir, name), []byte(content), 0o644))
}

var relRef = StepRef{DeploymentID: "rollbook-pay/run-1", Step: "release-canary"}

func TestReleaseCaptureApplyRestore(t *testing.T) {
	p := newPlatform(t, map[string]string{"canary": "v1", "stable": "v1"})
	in := ReleaseInput{StepRef: relRef, Target: "canary"}

	captured, err := runActivity[ReleaseState](t, p.rel, p.rel.CaptureRelease, in)
	require.NoError(t, err)
	assert.Equal(t, ReleaseState{Target: "canary", Version: "v1"}, captured)

	res, err := runActivity[ReleaseResult](t, p.rel, p.rel.ApplyRelease, ApplyReleaseInput{ReleaseInput: in, Version: "v2", Captured: captured})
	require.NoError(t, err)
	assert.Equal(t, "v2", p.version(t, "canary"))
	assert.Equal(t, "v1", p.version(t, "stable"), "only the named target changed")
	assert.False(t, res.AlreadyThere)
	assert.Equal(t, []string{"canary v2 rollbook-pay/run-1/release-canary/apply"}, p.deploys(t))

	// A retry of the apply (lost answer) finds v2 there and deploys nothing.
	res, err = runActivity[ReleaseResult](t, p.rel, p.rel.ApplyRelease, ApplyReleaseInput{ReleaseInput: in, Version: "v2", Captured: captured})
	require.NoError(t, err)
	assert.True(t, res.AlreadyThere)
	assert.Len(t, p.deploys(t), 1)

	restore := RestoreReleaseInput{ReleaseInput: in, Captured: captured, Applied: "v2", ApplyDone: true, Attempt: 1}
	rr, err := runActivity[RestoreResult](t, p.rel, p.rel.RestoreRelease, restore)
	require.NoError(t, err)
	assert.False(t, rr.AlreadyRestored)
	assert.Equal(t, "v1", p.version(t, "canary"))
	assert.Equal(t, "canary v1 rollbook-pay/run-1/release-canary/restore/1", p.deploys(t)[1])

	rr, err = runActivity[RestoreResult](t, p.rel, p.rel.RestoreRelease, restore)
	require.NoError(t, err)
	assert.True(t, rr.AlreadyRestored, "already at the captured version and healthy")
	assert.Len(t, p.deploys(t), 2)
}

func TestReleaseUnknownTarget(t *testing.T) {
	p := newPlatform(t, map[string]string{"canary": "v1"})
	_, err := runActivity[ReleaseState](t, p.rel, p.rel.CaptureRelease, ReleaseInput{StepRef: relRef, Target: "blue"})
	requireErrType(t, err, ErrInvalid)
	assert.Contains(t, err.Error(), `unknown release target "blue" (this worker knows: canary, stable)`)
	_, err = runActivity[ReleaseResult](t, p.rel, p.rel.ApplyRelease, ApplyReleaseInput{ReleaseInput: ReleaseInput{StepRef: relRef, Target: "blue"}, Version: "v2"})
	requireErrType(t, err, ErrInvalid)
	_, err = runActivity[ReleaseResult](t, p.rel, p.rel.ApplyRelease, ApplyReleaseInput{ReleaseInput: ReleaseInput{StepRef: relRef, Target: "canary"}, Version: "v2$(id)"})
	requireErrType(t, err, ErrInvalid)
	assert.Empty(t, p.deploys(t))
}

// A deploy that fails ends the apply at once (non-retryable), quoting the
// command's output; the compensation then restores the captured version.
func TestReleaseApplyFailsThenRestores(t *testing.T) {
	p := newPlatform(t, map[string]string{"canary": "v1"})
	p.touch(t, "fail-v3", "registry timeout after pushing 2 of 3 layers")
	in := ReleaseInput{StepRef: relRef, Target: "canary"}
	_, err := runActivity[ReleaseResult](t, p.rel, p.rel.ApplyRelease, ApplyReleaseInput{ReleaseInput: in, Version: "v3", Captured: ReleaseState{Target: "canary", Version: "v1"}})
	requireErrType(t, err, ErrReleaseFailed)
	assert.Contains(t, err.Error(), "registry timeout after pushing 2 of 3 layers")
	assert.Contains(t, err.Error(), "exit status 4")

	rr, err := runActivity[RestoreResult](t, p.rel, p.rel.RestoreRelease, RestoreReleaseInput{ReleaseInput: in, Captured: ReleaseState{Target: "canary", Version: "v1"}, Applied: "v3", Attempt: 1})
	require.NoError(t, err)
	assert.True(t, rr.AlreadyRestored, "the failed deploy left v1 in place")
}

// An unhealthy new version fails the apply after the wait; restoring it
// is retryable when it fails (the workflow retries, then asks a human).
func TestReleaseHealthTimeout(t *testing.T) {
	p := newPlatform(t, map[string]string{"canary": "v1"})
	p.touch(t, "unhealthy", "v3\n")
	in := ReleaseInput{StepRef: relRef, Target: "canary"}
	_, err := runActivity[ReleaseResult](t, p.rel, p.rel.ApplyRelease, ApplyReleaseInput{ReleaseInput: in, Version: "v3", Captured: ReleaseState{Target: "canary", Version: "v1"}})
	requireErrType(t, err, ErrReleaseFailed)
	assert.Contains(t, err.Error(), "canary: v3 is crash-looping")
	assert.Contains(t, err.Error(), "timed out")
	assert.Equal(t, "v3", p.version(t, "canary"))

	p.touch(t, "fail-v1", "disk full")
	_, err = runActivity[RestoreResult](t, p.rel, p.rel.RestoreRelease, RestoreReleaseInput{ReleaseInput: in, Captured: ReleaseState{Target: "canary", Version: "v1"}, Applied: "v3", Attempt: 1})
	require.Error(t, err)
	typ, nonRetryable := errType(err)
	assert.Equal(t, ErrReleaseFailed, typ)
	assert.False(t, nonRetryable, "a failing restore is retried")

	require.NoError(t, os.Remove(filepath.Join(p.dir, "fail-v1")))
	_, err = runActivity[RestoreResult](t, p.rel, p.rel.RestoreRelease, RestoreReleaseInput{ReleaseInput: in, Captured: ReleaseState{Target: "canary", Version: "v1"}, Applied: "v3", Attempt: 2})
	require.NoError(t, err)
	assert.Equal(t, "v1", p.version(t, "canary"))
}

// Someone released another version after our apply: the restore refuses
// to overwrite it.
func TestReleaseRestoreConflict(t *testing.T) {
	p := newPlatform(t, map[string]string{"canary": "v9"})
	in := ReleaseInput{StepRef: relRef, Target: "canary"}
	_, err := runActivity[RestoreResult](t, p.rel, p.rel.RestoreRelease, RestoreReleaseInput{ReleaseInput: in, Captured: ReleaseState{Target: "canary", Version: "v1"}, Applied: "v2", ApplyDone: true, Attempt: 1})
	requireErrType(t, err, ErrConflict)
	assert.Contains(t, err.Error(), "target canary runs v9, but this deployment left it at v2")
	assert.Equal(t, "v9", p.version(t, "canary"))
	assert.Empty(t, p.deploys(t))

	// Before the apply returned, any state may be ours half-done: restore.
	_, err = runActivity[RestoreResult](t, p.rel, p.rel.RestoreRelease, RestoreReleaseInput{ReleaseInput: in, Captured: ReleaseState{Target: "canary", Version: "v1"}, Applied: "v2", Attempt: 1})
	require.NoError(t, err)
	assert.Equal(t, "v1", p.version(t, "canary"))
}

// The http driver through the activity: the deployer starts the deploy and
// loses its answer; the activity's retry (same input, same key) does not
// deploy twice.
func TestReleaseHTTPRetryDeploysOnce(t *testing.T) {
	d := deployertest.New(map[string]string{"canary": "v1"})
	defer d.Close()
	h, err := release.NewHTTP("paas", release.HTTPConfig{URL: d.URL, PollInterval: 20 * time.Millisecond,
		Wait: release.WaitPolicy{Timeout: time.Second, Interval: 20 * time.Millisecond}})
	require.NoError(t, err)
	rel, err := NewRelease(map[string]ReleaseTarget{"canary": {Driver: h, Name: "canary"}})
	require.NoError(t, err)
	in := ApplyReleaseInput{ReleaseInput: ReleaseInput{StepRef: relRef, Target: "canary"}, Version: "v2", Captured: ReleaseState{Target: "canary", Version: "v1"}}

	d.FailNextPOSTs(1)
	_, err = runActivity[ReleaseResult](t, rel, rel.ApplyRelease, in)
	require.Error(t, err)
	_, nonRetryable := errType(err)
	assert.False(t, nonRetryable, "a lost answer is retried: %v", err)

	res, err := runActivity[ReleaseResult](t, rel, rel.ApplyRelease, in)
	require.NoError(t, err)
	assert.Equal(t, 1, d.Deploys("canary"), "one deploy for two attempts")
	assert.Equal(t, "v2", d.Version("canary"))
	assert.Equal(t, "v1", res.Previous)
}
