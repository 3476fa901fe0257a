package tests

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/rollbook/rollbook/internal/worker"
)

// A runbook naming a server HAProxy does not have, a database the worker
// does not know and a Consul key outside the allowed prefixes is refused by
// the preflight with every problem listed, exit 1, and nothing changes: the
// schema, the keys and the weights stay as they were.
func TestE2EPreflightRefusesBeforeTheFirstChange(t *testing.T) {
	f := newFixture(t, "e2e-preflight")
	rb := f.runbook(runbookOpts{})
	y, err := os.ReadFile(rb)
	require.NoError(t, err)
	text := string(y)
	// A server HAProxy does not have: the backend is allowed, the live
	// probe finds the subset missing.
	text = strings.Replace(text, "subsets: [stable, canary], stable: stable, canary: canary", "subsets: [stable, canary, ghost], stable: stable, canary: canary", 1)
	text = strings.ReplaceAll(text, "canary: 50}", "canary: 50, ghost: 0}")
	text = strings.ReplaceAll(text, "canary: 100}", "canary: 100, ghost: 0}")
	text = strings.Replace(text, "database: payments", "database: billing", 1)
	text = strings.Replace(text, f.prefix+"config/version", "secret/config/version", 1)
	require.NoError(t, os.WriteFile(rb, []byte(text), 0o644))
	before := schemaVersion(t)

	out, code := cli(t, "deploy", rb, "--version", "v2", "--wait")
	require.Equal(t, 1, code, out)
	for _, want := range []string{
		"outcome: refused",
		`steps[0].migrate.database: unknown database "billing"`,
		`steps[1].consul.set: key "secret/config/version" is outside the prefixes this worker may change`,
		`routes[0]: backend "payments_api" or one of its subsets (stable, canary, ghost) does not exist on router edge`,
		"nothing was changed (3 problems)",
	} {
		assert.Contains(t, out, want)
	}
	assert.Equal(t, before, schemaVersion(t), "schema unchanged")
	_, exists := kv(t, f.prefix+"features/new-ledger")
	assert.False(t, exists, "no key written")
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t), "weights unchanged")

	st, err := status(f.service)
	require.NoError(t, err)
	assert.Equal(t, "refused", string(st.Phase))
	assert.Len(t, st.Problems, 3)
	out, code = cli(t, "status", f.service)
	assert.Equal(t, 0, code, out)
	assert.Contains(t, out, "refused by the preflight, nothing was changed:\n  - steps[0].migrate.database")

	// validate --worker-config finds the offline two in CI, before any deploy.
	out, code = cli(t, "validate", "--worker-config", filepath.Join(repoRoot, "examples", "dev-worker.yaml"), rb)
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, `unknown database "billing"`)
	assert.Contains(t, out, `key "secret/config/version" is outside the prefixes`)
}

const signedTaskQueue = "rollbook-e2e-signed"

// A worker that requires signed bundles refuses an unsigned deployment and
// one signed by another key, changing nothing, and runs the one CI signed.
func TestE2ESignedBundles(t *testing.T) {
	dir := t.TempDir()
	ciKey, otherKey := filepath.Join(dir, "ci.key"), filepath.Join(dir, "other.key")
	for _, k := range []string{ciKey, otherKey} {
		out, code := cli(t, "keygen", k)
		require.Equal(t, 0, code, out)
	}
	cfg, err := worker.ParseConfig("signed.yaml", []byte(`
taskQueue: `+signedTaskQueue+`
databases:
  payments: {dialect: postgres, dsnEnv: ROLLBOOK_PG_DSN}
routers:
  edge: {driver: haproxy, addressEnv: ROLLBOOK_HAPROXY_SOCKET, allowedBackends: [payments_api]}
consul:
  allowedPrefixes: [rollbook-e2e/]
endpoints:
  edge: {urlEnv: ROLLBOOK_HAPROXY_URL}
signing:
  trustedKeys: [`+ciKey+`.pub]
  require: true
`))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := worker.Start(ctx, cfg, zap.NewNop(), worker.Options{})
	require.NoError(t, err)
	defer r.Stop()

	f := newFixture(t, "e2e-signed")
	rb := f.runbook(runbookOpts{})
	before := schemaVersion(t)

	out, code := cli(t, "deploy", rb, "--version", "v2", "--wait", "--task-queue", signedTaskQueue)
	require.Equal(t, 1, code, out)
	assert.Contains(t, out, "signature: this worker requires signed bundles")

	out, code = cli(t, "deploy", rb, "--version", "v2", "--wait", "--task-queue", signedTaskQueue, "--sign-key", otherKey)
	require.Equal(t, 1, code, out)
	assert.Contains(t, out, "bundle is signed by a key this worker does not trust")
	assert.Equal(t, before, schemaVersion(t), "refused deployments changed nothing")
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t))

	l := startLoad(t, 40) // the canary check needs requests to judge
	defer l.Stop()
	out, code = cli(t, "deploy", rb, "--version", "v2", "--wait", "--task-queue", signedTaskQueue, "--sign-key", ciKey)
	require.Equal(t, 0, code, out)
	st, err := status(f.service)
	require.NoError(t, err)
	assert.Equal(t, "succeeded", string(st.Phase))
	assert.Len(t, st.SignedBy, 16, "the status names the key that signed")
}

// Keys that already hold more than a deployment may capture (their values
// would travel in the history) are found by the preflight in the live
// Consul, and the deployment is refused before it writes anything.
func TestE2EPreflightRefusesCapturedValuesOverTheBudget(t *testing.T) {
	f := newFixture(t, "e2e-preflight-kv")
	big := strings.Repeat("x", 200<<10)
	putKV(t, f.prefix+"features/new-ledger", big)
	putKV(t, f.prefix+"config/version", big)
	rb := f.runbook(runbookOpts{})
	before := schemaVersion(t)

	out, code := cli(t, "deploy", rb, "--version", "v2", "--wait")
	require.Equal(t, 1, code, out)
	assert.Contains(t, out, "steps[1].consul: the keys the consul steps change hold 409600 bytes up to here; a deployment captures at most 262144 bytes")
	assert.Equal(t, before, schemaVersion(t), "schema unchanged")
	v, _ := kv(t, f.prefix+"config/version")
	assert.Equal(t, big, v, "key unchanged")
}
