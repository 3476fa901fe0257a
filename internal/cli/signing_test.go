package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/internal/signing"
	"github.com/rollbook/rollbook/runbook"
	"github.com/rollbook/rollbook/workflows"
)

func runCLI(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := Run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// The example runbooks pass against the dev worker config; against a config
// that lacks their names, validate exits 1 naming every problem, with the
// file and the field.
func TestValidateWorkerConfig(t *testing.T) {
	code, out, errOut := runCLI("validate", "--worker-config", "../../examples/dev-worker.yaml", "../../runbooks/payments-api.yaml", "../../runbooks/config-only.yaml")
	assert.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, out, "payments-api.yaml: ok")

	cfg := filepath.Join(t.TempDir(), "worker.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`
databases: {billing: {dialect: sqlite, dsn: /tmp/b.db}}
routers: {edge: {driver: haproxy, address: /run/h.sock, allowedBackends: [other_api]}}
consul: {allowedPrefixes: [elsewhere/]}
`), 0o644))
	code, _, errOut = runCLI("validate", "--worker-config", cfg, "../../runbooks/payments-api.yaml")
	assert.Equal(t, ExitBadInput, code)
	for _, want := range []string{
		`payments-api.yaml: routes[0].backend: backend "payments_api" is not in router edge's allowedBackends (other_api)`,
		`payments-api.yaml: steps[0].migrate.database: unknown database "payments" (this worker knows: billing)`,
		`.consul.set: key "rollbook-demo/`,
		`.http.endpoint: unknown endpoint "edge" (this worker knows: none)`,
		"(worker config " + cfg + ")",
		"1 of 1 runbooks are invalid",
	} {
		assert.Contains(t, errOut, want)
	}

	code, _, errOut = runCLI("validate", "--worker-config", filepath.Join(t.TempDir(), "missing.yaml"), "../../runbooks/payments-api.yaml")
	assert.Equal(t, ExitBadInput, code)
	assert.Contains(t, errOut, "reading worker config")
}

// keygen writes a key pair; a bundle signed with --sign-key or the
// environment variable verifies against the public key, and a bad key file
// refuses the deployment before anything is started.
func TestKeygenAndSign(t *testing.T) {
	dir := t.TempDir()
	priv := filepath.Join(dir, "ci.key")
	code, out, errOut := runCLI("keygen", priv)
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, out, "key ID ")
	code, _, errOut = runCLI("keygen", priv)
	assert.Equal(t, ExitBadInput, code, "keygen never overwrites a key")
	assert.Contains(t, errOut, "exists")

	trusted, err := signing.LoadTrusted([]string{priv + ".pub"})
	require.NoError(t, err)
	b, err := runbook.BuildBundle("../../runbooks/config-only.yaml", "v1", runbook.Origin{User: "ci"})
	require.NoError(t, err)

	unsigned := *b
	require.NoError(t, signBundle(&unsigned, ""))
	assert.ErrorIs(t, trusted.Verify(&unsigned), signing.ErrUnsigned)

	viaFlag := *b
	require.NoError(t, signBundle(&viaFlag, priv))
	assert.NoError(t, trusted.Verify(&viaFlag))

	t.Setenv(signing.EnvKeyFile, priv)
	viaEnv := *b
	require.NoError(t, signBundle(&viaEnv, ""))
	assert.NoError(t, trusted.Verify(&viaEnv))

	err = signBundle(b, priv+".pub")
	var ee *exitError
	require.True(t, errors.As(err, &ee))
	assert.Equal(t, ExitBadInput, ee.code)
	assert.Contains(t, err.Error(), "nothing was started")
}

// A deployment the preflight refused changed nothing: exit 1, like bad input.
func TestRefusedExitsBadInput(t *testing.T) {
	err := outcomeExit(workflows.Result{Outcome: workflows.OutcomeRefused, Reason: "preflight refused the deployment"})
	var ee *exitError
	require.True(t, errors.As(err, &ee))
	assert.Equal(t, ExitBadInput, ee.code)
	assert.Contains(t, err.Error(), "nothing was changed")
}

// The CI examples sign what they deploy and check names against the
// worker's config.
func TestCIExamplesSignAndCheckNames(t *testing.T) {
	files, err := filepath.Glob("../../examples/ci/*.yml")
	require.NoError(t, err)
	require.Len(t, files, 2)
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		text := strings.ReplaceAll(string(data), "\\\n", " ")
		var deploy, validate bool
		for _, line := range strings.Split(text, "\n") {
			if strings.Contains(line, "rollbook deploy ") && strings.Contains(line, "--sign-key") {
				deploy = true
			}
			if strings.Contains(line, "rollbook validate --worker-config ") {
				validate = true
			}
		}
		assert.True(t, deploy, "%s: deploy signs the bundle (--sign-key)", f)
		assert.True(t, validate, "%s: validate checks names (--worker-config)", f)
	}
}
