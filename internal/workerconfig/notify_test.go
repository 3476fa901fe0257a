package workerconfig

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/runbook"
)

// The webhooks of before (url or urlEnv, no kind) still parse, as the
// Slack-compatible JSON kind; the shoutrrr kinds and paging parse too.
func TestNotifyConfig(t *testing.T) {
	cfg, err := ParseConfig("w.yaml", []byte(`
webhooks:
  slack: {urlEnv: SLACK_WEBHOOK_URL}
  legacy: {url: "https://hooks.example.com/x"}
  teams: {kind: teams, urlEnv: TEAMS_URL}
  discord: {kind: discord, urlFile: /run/secrets/discord}
paging:
  oncall: {kind: pagerduty, routingKeyFile: /run/secrets/pd, eventsURL: "http://127.0.0.1:9999/"}
  default-kind: {routingKeyEnv: PD}
webUI: http://temporal-ui:8233
`))
	require.NoError(t, err)
	assert.Equal(t, WebhookKindJSON, cfg.Webhooks["slack"].webhookKind())
	assert.Equal(t, "teams", cfg.Webhooks["teams"].webhookKind())
	assert.Equal(t, "http://127.0.0.1:9999", PagingEventsURL(cfg.Paging["oncall"]))
	assert.Equal(t, DefaultPagerDutyEventsURL, PagingEventsURL(cfg.Paging["default-kind"]))
	assert.Equal(t, "http://temporal-ui:8233", cfg.WebUI)
}

func TestNotifyConfigErrors(t *testing.T) {
	for doc, want := range map[string]string{
		"webhooks: {x: {kind: telegraph, urlEnv: X}}":                      `webhooks.x.kind: "telegraph" is not one of webhook, teams, discord, slack, generic, shoutrrr`,
		"webhooks: {x: {urlEnv: X, urlFile: /f}}":                          "webhooks.x: set exactly one of url, urlEnv, urlFile",
		"webhooks: {x: {kind: teams}}":                                     "webhooks.x: set exactly one of url, urlEnv, urlFile",
		"webhooks: {x: {kind: discord, url: 'discord://t0kenS3cret@123'}}": "webhooks.x.url: a discord URL holds its token; put it in urlEnv or urlFile",
		"paging: {p: {kind: opsgenie, routingKeyEnv: K}}":                  `paging.p.kind: "opsgenie" is not pagerduty`,
		"paging: {p: {}}": "paging.p: set exactly one of routingKeyEnv, routingKeyFile",
		"paging: {p: {routingKeyEnv: K, routingKeyFile: /f}}":                    "paging.p: set exactly one of routingKeyEnv, routingKeyFile",
		"paging: {p: {routingKeyEnv: K, eventsURL: 'ftp://x'}}":                  "paging.p.eventsURL: ftp://x is not an http(s) URL",
		"paging: {p: {routingKey: inline-secret}}":                               "unknown field",
		"webUI: 'temporal-ui:8233'":                                              "webUI:",
		"webhooks: {x: {kind: generic, url: 'generic://h/p?token=t0kenS3cret'}}": "webhooks.x.url",
	} {
		_, err := ParseConfig("w.yaml", []byte(doc+"\n"))
		require.ErrorContains(t, err, want, doc)
		assert.NotContains(t, err.Error(), "t0kenS3cret", "a secret URL is not echoed")
	}
}

func TestResolveWebhookAndRoutingKey(t *testing.T) {
	t.Setenv("ROLLBOOK_TEST_TEAMS", "teams://g@t/a/o?host=contoso.webhook.office.com")
	t.Setenv("ROLLBOOK_TEST_WRONG", "discord://s3cretToken@123")
	t.Setenv("ROLLBOOK_TEST_SLACKJSON", "https://hooks.example.com/services/s3cretPath/")
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "pd")
	require.NoError(t, os.WriteFile(keyFile, []byte("R0utingKey\n"), 0o600))

	w, err := ResolveWebhook("t", WebhookConfig{Kind: "teams", URLEnv: "ROLLBOOK_TEST_TEAMS"})
	require.NoError(t, err)
	assert.Equal(t, ResolvedWebhook{Kind: "teams", URL: "teams://g@t/a/o?host=contoso.webhook.office.com"}, w)
	w, err = ResolveWebhook("j", WebhookConfig{URLEnv: "ROLLBOOK_TEST_SLACKJSON"})
	require.NoError(t, err)
	assert.Equal(t, ResolvedWebhook{Kind: WebhookKindJSON, URL: "https://hooks.example.com/services/s3cretPath"}, w)
	w, err = ResolveWebhook("any", WebhookConfig{Kind: "shoutrrr", URLEnv: "ROLLBOOK_TEST_WRONG"})
	require.NoError(t, err)
	assert.Equal(t, "shoutrrr", w.Kind)

	_, err = ResolveWebhook("t", WebhookConfig{Kind: "teams", URLEnv: "ROLLBOOK_TEST_WRONG"})
	require.ErrorContains(t, err, `webhook t: kind teams wants a teams://… URL, the URL's scheme is "discord"`)
	assert.NotContains(t, err.Error(), "s3cretToken")
	_, err = ResolveWebhook("j", WebhookConfig{URLEnv: "ROLLBOOK_TEST_WRONG"})
	require.ErrorContains(t, err, "webhook j: not an http(s) URL")
	assert.NotContains(t, err.Error(), "s3cretToken")
	_, err = ResolveWebhook("t", WebhookConfig{Kind: "teams", URLEnv: "ROLLBOOK_TEST_UNSET"})
	require.ErrorContains(t, err, "environment variable ROLLBOOK_TEST_UNSET is empty")

	key, err := ResolveRoutingKey("oncall", PagingConfig{RoutingKeyFile: keyFile})
	require.NoError(t, err)
	assert.Equal(t, "R0utingKey", key)
	_, err = ResolveRoutingKey("oncall", PagingConfig{RoutingKeyFile: filepath.Join(dir, "missing")})
	require.ErrorContains(t, err, "paging oncall routing key: reading")
	_, err = ResolveRoutingKey("oncall", PagingConfig{RoutingKeyEnv: "ROLLBOOK_TEST_UNSET"})
	require.ErrorContains(t, err, "environment variable ROLLBOOK_TEST_UNSET is empty")
}

// A page-only runbook needs no webhook; its page name is checked.
func TestCheckNamesPageOnly(t *testing.T) {
	cfg, err := ParseConfig("w.yaml", []byte("paging: {oncall: {routingKeyEnv: PD}}\n"))
	require.NoError(t, err)
	assert.Empty(t, CheckNames(cfg, &runbook.Runbook{Notify: &runbook.Notify{Page: "oncall"}}))
	assert.Equal(t, []string{`notify.page: unknown paging service "sre" (this worker knows: oncall)`},
		CheckNames(cfg, &runbook.Runbook{Notify: &runbook.Notify{Page: "sre"}}))
}
