package worker

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBuildActivitiesScopesRouters(t *testing.T) {
	db := filepath.Join(t.TempDir(), "demo.db")
	cfg, err := ParseConfig("w.yaml", []byte("databases:\n  demo: {dialect: sqlite, dsn: "+db+"}\nrouters:\n  edge: {driver: haproxy, address: /nonexistent/h.sock, allowedBackends: [payments_api]}\n  mesh: {driver: consul-splitter, allowedBackends: [payments-api]}\n"))
	require.NoError(t, err)
	acts, err := BuildActivities(cfg)
	require.NoError(t, err)
	for name, want := range map[string]string{"edge": "payments_api", "mesh": "payments-api"} {
		s, ok := acts.Traffic.Routers[name].(interface{ AllowsBackend(string) bool })
		require.True(t, ok, "router %s is scoped", name)
		assert.True(t, s.AllowsBackend(want))
		assert.False(t, s.AllowsBackend("billing_api"))
		assert.Same(t, acts.Traffic.Routers[name], acts.Checks.Routers[name], "checks use the same scoped routers")
	}
}
