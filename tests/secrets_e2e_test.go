package tests

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/rollbook/rollbook/internal/worker"
	"github.com/rollbook/rollbook/workflows"
)

const secretsTaskQueue = "rollbook-e2e-secrets"

// A worker at debug level, through a deployment whose migration fails and
// whose rollback posts to a webhook that answers 500, never writes the
// database password or the webhook's secret path to its logs.
func TestE2ESecretsNeverLogged(t *testing.T) {
	dsn, err := url.Parse(stack.PGDSN)
	require.NoError(t, err)
	pw, ok := dsn.User.Password()
	require.True(t, ok, "the stack's DSN has a password")
	const hookSecret = "T0000/B0000/XXXXsecretXXXX"
	t.Setenv("ROLLBOOK_E2E_WEBHOOK", "http://127.0.0.1:1/services/"+hookSecret)

	cfg, err := worker.ParseConfig("secrets.yaml", []byte(`
taskQueue: `+secretsTaskQueue+`
databases:
  payments: {dialect: postgres, dsnEnv: ROLLBOOK_PG_DSN}
routers:
  edge: {driver: haproxy, addressEnv: ROLLBOOK_HAPROXY_SOCKET, allowedBackends: [payments_api]}
consul:
  allowedPrefixes: [rollbook-e2e/]
endpoints:
  edge: {urlEnv: ROLLBOOK_HAPROXY_URL}
webhooks:
  chat: {urlEnv: ROLLBOOK_E2E_WEBHOOK}
`))
	require.NoError(t, err)
	core, logs := observer.New(zapcore.DebugLevel)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := worker.Start(ctx, cfg, zap.New(core), worker.Options{})
	require.NoError(t, err)
	defer r.Stop()

	f := newFixture(t, "e2e-secrets")
	f.copyMigrations("broken", map[string]string{
		"00002_add_ledger_reference.sql": "-- +goose Up\nALTER TABLE no_such_table ADD COLUMN x INT;\n-- +goose Down\nSELECT 1;\n",
	})
	rb := f.runbook(runbookOpts{migrations: "broken"})
	b, err := os.ReadFile(rb)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(rb, append(b, []byte("notify: {webhook: chat}\n")...), 0o644))

	out, code := cli(t, "deploy", rb, "--version", "v2", "--wait", "--task-queue", secretsTaskQueue)
	require.Equal(t, 2, code, out)
	assert.NotContains(t, out, pw)
	assert.NotContains(t, out, hookSecret)

	// The notification failures (connection refused) are retried and
	// logged; give the last attempts a moment.
	time.Sleep(2 * time.Second)
	entries := logs.All()
	require.NotEmpty(t, entries, "the worker logged something")
	var all strings.Builder
	for _, e := range entries {
		all.WriteString(e.Message)
		for k, v := range e.ContextMap() {
			all.WriteString(" " + k + "=")
			all.WriteString(strings.ReplaceAll(strings.TrimSpace(toString(v)), "\n", " "))
		}
		all.WriteString("\n")
	}
	text := all.String()
	assert.Contains(t, text, "migration", "the failing migration was logged")
	assert.NotContains(t, text, pw, "database password in the worker's logs")
	assert.NotContains(t, text, hookSecret, "webhook secret in the worker's logs")

	// Nor in the workflow history, which the Web UI shows.
	hist := historyText(t, workflows.WorkflowID(f.service))
	assert.NotContains(t, hist, pw)
	assert.NotContains(t, hist, hookSecret)
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case error:
		return x.Error()
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// historyText is the latest run's whole history as JSON.
func historyText(t *testing.T, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	it := tclient.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var b strings.Builder
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		j, err := protojson.Marshal(ev)
		require.NoError(t, err)
		b.Write(j)
		b.WriteString("\n")
	}
	return b.String()
}
