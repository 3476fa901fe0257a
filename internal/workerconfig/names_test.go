package workerconfig

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/runbook"
)

const namesConfig = `
databases:
  payments: {dialect: postgres, dsnEnv: PG}
routers:
  edge: {driver: haproxy, address: /run/haproxy.sock, allowedBackends: [payments_api]}
  mesh: {driver: consul-splitter, allowedBackends: [anything]}
consul:
  allowedPrefixes: [rollbook-demo/]
endpoints:
  edge: {url: "http://127.0.0.1:8080"}
prometheus:
  default: {url: "http://127.0.0.1:9090"}
webhooks:
  slack: {urlEnv: SLACK}
paging:
  oncall: {kind: pagerduty, routingKeyEnv: PD_ROUTING_KEY}
releaseDrivers:
  scripts: {driver: exec, exec: {current: {argv: [/bin/true]}, deploy: {argv: [/bin/true]}, health: {argv: [/bin/true]}}}
targets:
  canary: {driver: scripts}
signing:
  trustedKeys: [/etc/rollbook/ci.pub]
  require: true
`

func namesRunbook() *runbook.Runbook {
	return &runbook.Runbook{
		Service: "payments",
		Routes: []runbook.Route{
			{Name: "api", Router: "edge", Backend: "payments_api"},
			{Name: "other", Router: "edge", Backend: "admin_api"},
			{Name: "nowhere", Router: "no-such-router", Backend: "x"},
			{Name: "mesh", Router: "mesh", Backend: "anything"},
		},
		Steps: []runbook.Step{
			{Name: "schema", Migrate: &runbook.MigrateStep{Database: "payments"}},
			{Name: "other-db", Migrate: &runbook.MigrateStep{Database: "billing"}},
			{Name: "deploy", Release: &runbook.ReleaseStep{Target: "canary"}},
			{Name: "deploy-elsewhere", Release: &runbook.ReleaseStep{Target: "prod-db-host"}},
			{Name: "flags", Consul: &runbook.ConsulStep{Set: map[string]string{"rollbook-demo/ok": "1", "rollbook-demo-prod/x": "1"}, Delete: []string{"secret/key"}}},
			{Name: "verify", Verify: &runbook.VerifyStep{Checks: []runbook.Check{
				{Name: "a", HTTP: &runbook.HTTPCheck{Endpoint: "edge", Path: "/healthz"}},
				{Name: "b", HTTP: &runbook.HTTPCheck{Endpoint: "internal-admin", Path: "/"}},
				{Name: "c", Prometheus: &runbook.PrometheusCheck{Query: "up"}},
				{Name: "d", Prometheus: &runbook.PrometheusCheck{Server: "thanos", Query: "up"}},
			}}},
		},
		Analysis: &runbook.Analysis{Checks: []runbook.Check{{Name: "e", HTTP: &runbook.HTTPCheck{Endpoint: "nope"}},
			{Name: "g", HTTP: &runbook.HTTPCheck{URL: "http://10.1.2.3/healthz"}}}},
		Rollback: &runbook.RollbackOptions{Verify: &runbook.VerifyStep{Checks: []runbook.Check{{Name: "f", Prometheus: &runbook.PrometheusCheck{Server: "gone"}}}}},
		Notify:   &runbook.Notify{Webhook: "pager", Page: "pagerduty"},
	}
}

// Every name the runbook uses that the configuration does not know, or does
// not allow, is named with its field; known names pass.
func TestCheckNames(t *testing.T) {
	cfg, err := ParseConfig("w.yaml", []byte(namesConfig))
	require.NoError(t, err)
	assert.Equal(t, []string{
		`routes[1].backend: backend "admin_api" is not in router edge's allowedBackends (payments_api)`,
		`routes[2].router: unknown router "no-such-router" (this worker knows: edge, mesh)`,
		`steps[1].migrate.database: unknown database "billing" (this worker knows: payments)`,
		`steps[3].release.target: unknown release target "prod-db-host" (this worker knows: canary)`,
		`steps[4].consul.set: key "rollbook-demo-prod/x" is outside the prefixes this worker may change (rollbook-demo/)`,
		`steps[4].consul.delete: key "secret/key" is outside the prefixes this worker may change (rollbook-demo/)`,
		`steps[5].verify.checks[1].http.endpoint: unknown endpoint "internal-admin" (this worker knows: edge)`,
		`steps[5].verify.checks[3].prometheus.server: unknown Prometheus server "thanos" (this worker knows: default)`,
		`analysis.checks[0].http.endpoint: unknown endpoint "nope" (this worker knows: edge)`,
		`analysis.checks[1].http.url: this worker allows no full check URLs (checks.allowedHosts is empty); name an endpoint instead`,
		`rollback.verify.checks[0].prometheus.server: unknown Prometheus server "gone" (this worker knows: default)`,
		`notify.webhook: unknown webhook "pager" (this worker knows: slack)`,
		`notify.page: unknown paging service "pagerduty" (this worker knows: oncall)`,
	}, CheckNames(cfg, namesRunbook()))
	assert.True(t, cfg.Signing.Require)
	assert.Equal(t, []string{"/etc/rollbook/ci.pub"}, cfg.Signing.TrustedKeys)
}

// With checks.allowedHosts, full URLs are left to the connect-time check.
func TestCheckNamesFullURLWithAllowlist(t *testing.T) {
	cfg, err := ParseConfig("w.yaml", []byte("checks: {allowedHosts: [10.0.0.0/8]}\n"))
	require.NoError(t, err)
	rb := &runbook.Runbook{Steps: []runbook.Step{{Name: "v", Verify: &runbook.VerifyStep{Checks: []runbook.Check{{Name: "u", HTTP: &runbook.HTTPCheck{URL: "http://10.1.2.3/healthz"}}}}}}}
	assert.Empty(t, CheckNames(cfg, rb))
}

func TestCheckNamesWithoutPrefixes(t *testing.T) {
	cfg, err := ParseConfig("w.yaml", []byte("databases: {payments: {dialect: sqlite, dsn: /tmp/x.db}}\n"))
	require.NoError(t, err)
	rb := &runbook.Runbook{Steps: []runbook.Step{{Name: "s", Consul: &runbook.ConsulStep{Set: map[string]string{"a/b": "1"}}}}}
	assert.Equal(t, []string{`steps[0].consul.set: key "a/b": this worker allows no Consul KV prefixes (consul.allowedPrefixes)`}, CheckNames(cfg, rb))
}

func TestSigningConfigNeedsKeys(t *testing.T) {
	_, err := ParseConfig("w.yaml", []byte("signing: {require: true}\n"))
	assert.ErrorContains(t, err, "signing.trustedKeys: list at least one public key file")
}
