package worker

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/rollbook/rollbook/activities"
)

// The worker reads the webhooks' URLs and the routing key from where its
// config says, and the Notify activity it builds pages the configured
// events URL with that key.
func TestBuildNotifierFromConfig(t *testing.T) {
	var mu sync.Mutex
	var bodies []map[string]any
	pd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		mu.Lock()
		bodies = append(bodies, m)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"status":"success"}`)
	}))
	defer pd.Close()
	keyFile := filepath.Join(t.TempDir(), "pd-key")
	require.NoError(t, os.WriteFile(keyFile, []byte("k3y-from-file\n"), 0o600))
	t.Setenv("ROLLBOOK_TEST_DISCORD", "discord://t0ken@693853386302554172")
	t.Setenv("ROLLBOOK_TEST_SLACK", "https://hooks.example.com/services/x")

	cfg, err := ParseConfig("w.yaml", []byte(`
webhooks:
  slack: {urlEnv: ROLLBOOK_TEST_SLACK}
  discord: {kind: discord, urlEnv: ROLLBOOK_TEST_DISCORD}
paging:
  oncall: {routingKeyFile: `+keyFile+`, eventsURL: "`+pd.URL+`"}
webUI: http://ui.example:8233
`))
	require.NoError(t, err)
	n, err := buildNotifier(cfg)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"slack": "https://hooks.example.com/services/x"}, n.Webhooks)

	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(n)
	_, err = env.ExecuteActivity(n.Notify, activities.NotifyInput{Page: "oncall", PageAction: "trigger", WorkflowID: "rollbook-pay", Service: "pay", Version: "v2", Phase: "rollback-stuck"})
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, bodies, 1)
	assert.Equal(t, "k3y-from-file", bodies[0]["routing_key"])
	assert.Equal(t, "rollbook-pay", bodies[0]["dedup_key"])

	t.Setenv("ROLLBOOK_TEST_DISCORD", "")
	_, err = buildNotifier(cfg)
	require.ErrorContains(t, err, "webhook discord: environment variable ROLLBOOK_TEST_DISCORD is empty")
}
