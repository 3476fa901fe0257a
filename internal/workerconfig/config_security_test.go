package workerconfig

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestShippedConfigsAreValid(t *testing.T) {
	for _, p := range []string{"../../examples/dev-worker.yaml", "../../deploy/compose/worker.yaml"} {
		cfg, err := LoadConfig(filepath.FromSlash(p))
		require.NoError(t, err, p)
		for name, r := range cfg.Routers {
			assert.NotEmpty(t, r.AllowedBackends, "%s: routers.%s", p, name)
		}
	}
}

func TestRoutersRequireAllowedBackends(t *testing.T) {
	_, err := ParseConfig("w.yaml", []byte("routers:\n  edge: {driver: haproxy, address: /run/h.sock}\n"))
	require.ErrorContains(t, err, "routers.edge.allowedBackends")
	_, err = ParseConfig("w.yaml", []byte("routers:\n  mesh: {driver: consul-splitter}\n"))
	require.ErrorContains(t, err, "routers.mesh.allowedBackends")

	for _, bad := range []string{`"be;shutdown"`, `"be x"`, `"b\u00e9"`, `""`} {
		_, err := ParseConfig("w.yaml", []byte("routers:\n  edge: {driver: haproxy, address: /run/h.sock, allowedBackends: ["+bad+"]}\n"))
		require.ErrorContains(t, err, "routers.edge.allowedBackends[0]", bad)
	}
	for _, bad := range []string{`"a/b"`, `".."`, `"pay:x"`} {
		_, err := ParseConfig("w.yaml", []byte("routers:\n  mesh: {driver: consul-splitter, allowedBackends: ["+bad+"]}\n"))
		require.ErrorContains(t, err, "routers.mesh.allowedBackends[0]", bad)
	}
	cfg, err := ParseConfig("w.yaml", []byte("routers:\n  edge: {driver: haproxy, address: /run/h.sock, allowedBackends: [payments_api, \"be:blue\"]}\n"))
	require.NoError(t, err)
	assert.Equal(t, []string{"payments_api", "be:blue"}, cfg.Routers["edge"].AllowedBackends)
}

func TestInlineDSNMustNotHoldAPassword(t *testing.T) {
	for _, dsn := range []string{
		"postgres://rollbook:hunter2@db:5432/payments?sslmode=disable",
		"postgresql://rollbook:hunter2@db/payments",
		"postgres://db/payments?user=rollbook&password=hunter2",
		"host=db user=rollbook password=hunter2 dbname=payments",
		"host=db PASSWORD = hunter2",
		"password=hunter2",
		"postgres://rollbook:hunter2@db:bad/payments",
	} {
		_, err := ParseConfig("w.yaml", []byte("databases:\n  payments: {dialect: postgres, dsn: '"+dsn+"'}\n"))
		require.ErrorContains(t, err, "databases.payments.dsn: holds a password", dsn)
		assert.NotContains(t, err.Error(), "hunter2", "the secret is not echoed")
	}
	for _, dsn := range []string{"postgres://rollbook@db/payments?sslmode=verify-full", "host=db user=rollbook dbname=payments", "/var/lib/rollbook/demo.db", "file:demo.db?_pragma=busy_timeout(5000)"} {
		_, err := ParseConfig("w.yaml", []byte("databases:\n  payments: {dialect: postgres, dsn: '"+dsn+"'}\n"))
		require.NoError(t, err, dsn)
	}
}

func TestAllowedPrefixesEndInSlash(t *testing.T) {
	_, err := ParseConfig("w.yaml", []byte("consul:\n  allowedPrefixes: [rollbook-demo/, rollbook-e2e]\n"))
	require.ErrorContains(t, err, `consul.allowedPrefixes[1]: "rollbook-e2e" must end in "/"`)
	_, err = ParseConfig("w.yaml", []byte("consul:\n  allowedPrefixes: [rollbook-demo/, config/payments/]\n"))
	require.NoError(t, err)
}

func TestChecksAllowedHosts(t *testing.T) {
	cfg, err := ParseConfig("w.yaml", []byte("checks: {allowedHosts: [127.0.0.1, 10.0.0.0/8, status.example.com]}\n"))
	require.NoError(t, err)
	assert.Equal(t, []string{"127.0.0.1", "10.0.0.0/8", "status.example.com"}, cfg.Checks.AllowedHosts)
	for _, bad := range []string{"http://x", "x:80", "*.example.com", "10.0.0.0/40"} {
		_, err := ParseConfig("w.yaml", []byte("checks: {allowedHosts: ['"+bad+"']}\n"))
		require.ErrorContains(t, err, "checks.allowedHosts", bad)
	}
}

func TestEndpointURLErrorsAreRedacted(t *testing.T) {
	t.Setenv("ROLLBOOK_TEST_EP", "ftp://alice:pa55@h/?token=s3cret")
	_, err := ResolveAddress("endpoint api", AddressConfig{URLEnv: "ROLLBOOK_TEST_EP"})
	require.Error(t, err)
	for _, secret := range []string{"alice", "pa55", "s3cret"} {
		assert.False(t, strings.Contains(err.Error(), secret), err.Error())
	}
}
