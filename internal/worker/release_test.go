package worker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/internal/release/deployertest"
)

func TestReleaseConfig(t *testing.T) {
	d := deployertest.New(map[string]string{"payments-blue": "v7"})
	defer d.Close()
	d.Token = "tok"
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("tok\n"), 0o600))
	t.Setenv("TEST_DEPLOYER_URL", d.URL)
	cfg, err := ParseConfig("w.yaml", []byte(`
releaseDrivers:
  scripts:
    driver: exec
    exec:
      dir: `+dir+`
      env: {REGION: eu-1}
      current: {argv: [/bin/echo, v1], timeout: 5s}
      deploy:  {argv: [/bin/true, "{target}", "{version}", "{key}"], timeout: 2m}
      health:  {argv: [/bin/true, "{target}"]}
    wait: {timeout: 1m, interval: 1s}
  paas:
    driver: http
    http: {urlEnv: TEST_DEPLOYER_URL, tokenFile: `+tokenFile+`, deployTimeout: 5m}
targets:
  canary: {driver: scripts}
  blue: {driver: paas, name: payments-blue}
`))
	require.NoError(t, err)
	rel, err := buildRelease(cfg)
	require.NoError(t, err)
	require.Len(t, rel.Targets, 2)
	assert.Equal(t, "canary", rel.Targets["canary"].Name, "the driver-side name defaults to the target's")
	assert.Equal(t, "exec driver scripts", rel.Targets["canary"].Driver.String())
	v, err := rel.Targets["canary"].Driver.Current(context.Background(), "canary")
	require.NoError(t, err)
	assert.Equal(t, "v1", v)
	// The token came from the file: the deployer accepts the request.
	v, err = rel.Targets["blue"].Driver.Current(context.Background(), rel.Targets["blue"].Name)
	require.NoError(t, err)
	assert.Equal(t, "v7", v)
}

func TestReleaseConfigRefusals(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"targets:\n  canary: {driver: nope}\n", `targets.canary.driver: unknown release driver "nope"`},
		{"releaseDrivers:\n  x: {driver: exec}\n", `releaseDrivers.x: driver exec needs an exec block`},
		{"releaseDrivers:\n  x: {driver: ssh}\n", `releaseDrivers.x.driver: "ssh" is not exec or http`},
		{"releaseDrivers:\n  x: {driver: http, http: {url: http://d, urlEnv: U}}\n", `releaseDrivers.x.http: set exactly one of url, urlEnv`},
		{"releaseDrivers:\n  x: {driver: http, http: {url: http://d, tokenEnv: T, tokenFile: /t}}\n", `set at most one of tokenEnv, tokenFile`},
		{"releaseDrivers:\n  x: {driver: http, http: {url: http://d, deployTimeout: 30m}}\n", `http.deployTimeout plus wait.timeout must be at most 25m0s`},
		{"releaseDrivers:\n  x:\n    driver: exec\n    exec:\n      current: {argv: [c]}\n      health: {argv: [h], timeout: 5m}\n      deploy: {argv: [d, \"--tag={version}\"]}\n",
			`releaseDrivers.x.exec.health.timeout: at most 1m0s`},
		{"releaseDrivers:\n  x:\n    driver: exec\n    exec:\n      current: {argv: [c]}\n      health: {argv: [h]}\n      deploy: {argv: [d, \"--tag={version}\"]}\n",
			`a placeholder must be a whole argument`},
		{"releaseDrivers:\n  x:\n    driver: exec\n    exec:\n      current: {argv: [c]}\n      health: {argv: [h]}\n      deploy: {argv: [d], shell: true}\n",
			`unknown field "shell"`},
		{"releaseDrivers:\n  x: {driver: http, http: {url: http://d}}\ntargets:\n  \"-all\": {driver: x}\n", `targets.-all: invalid target name`},
		{"releaseDrivers:\n  x: {driver: http, http: {url: http://d}}\ntargets:\n  canary: {driver: x, name: \"a/b\"}\n", `targets.canary.name: invalid name "a/b"`},
	}
	for _, tc := range cases {
		_, err := ParseConfig("w.yaml", []byte(tc.yaml))
		if assert.Error(t, err, tc.yaml) {
			assert.True(t, strings.Contains(err.Error(), tc.want), "%s\n got: %v\nwant: %s", tc.yaml, err, tc.want)
		}
	}
}

// dirEnv: the commands' working directory comes from the worker's
// environment (the dev stack's directory); a relative program resolves there.
func TestReleaseConfigDirEnv(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "current.sh"), []byte("#!/bin/sh\necho v9\n"), 0o755))
	y := []byte(`
releaseDrivers:
  stack:
    driver: exec
    exec:
      dirEnv: TEST_RELEASE_DIR
      current: {argv: [./current.sh, "{target}"]}
      deploy:  {argv: [/bin/true, "{target}", "{version}"]}
      health:  {argv: [/bin/true, "{target}"]}
targets:
  canary: {driver: stack}
`)
	cfg, err := ParseConfig("w.yaml", y)
	require.NoError(t, err, "the variable is read when the worker builds its drivers, not when the file is parsed")

	t.Setenv("TEST_RELEASE_DIR", "")
	_, err = buildRelease(cfg)
	require.ErrorContains(t, err, "environment variable TEST_RELEASE_DIR (exec.dirEnv) is empty")

	t.Setenv("TEST_RELEASE_DIR", dir)
	rel, err := buildRelease(cfg)
	require.NoError(t, err)
	v, err := rel.Targets["canary"].Driver.Current(context.Background(), "canary")
	require.NoError(t, err)
	assert.Equal(t, "v9", v)

	_, err = ParseConfig("w.yaml", []byte(strings.Replace(string(y), "dirEnv: TEST_RELEASE_DIR", "dirEnv: TEST_RELEASE_DIR\n      dir: /tmp", 1)))
	require.ErrorContains(t, err, "releaseDrivers.stack.exec: set at most one of dir, dirEnv")
}
