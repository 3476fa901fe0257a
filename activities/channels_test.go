package activities

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
)

// receiver is a local HTTP server that records what it is sent and answers
// with status (and body, when set).
type receiver struct {
	srv *httptest.Server

	mu     sync.Mutex
	reqs   []recorded
	status int
	answer string
}

type recorded struct {
	Method, Target, ContentType string
	Body                        []byte
}

func newReceiver(t *testing.T, status int, answer string) *receiver {
	r := &receiver{status: status, answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		target := "http://" + req.Host + req.URL.String()
		if orig := req.Header.Get("X-Rerouted-From"); orig != "" {
			target = orig
		}
		r.mu.Lock()
		r.reqs = append(r.reqs, recorded{Method: req.Method, Target: target, ContentType: req.Header.Get("Content-Type"), Body: b})
		r.mu.Unlock()
		if r.answer != "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(r.status)
		_, _ = io.WriteString(w, r.answer)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

// reroute sends every request the process makes to a host other than
// 127.0.0.1 to the receiver, through the default transport that shoutrrr's
// Teams, Discord and Slack services use: they build their hosts
// (*.webhook.office.com, discord.com, hooks.slack.com) and https from the
// service URL, so a local receiver can only be reached this way. The
// original URL travels in a header, so the test sees where the message was
// addressed. Not parallel-safe: the tests using it do not run in parallel.
func reroute(t *testing.T, to *receiver) {
	orig := http.DefaultTransport
	base := orig.(*http.Transport).Clone()
	target, err := url.Parse(to.srv.URL)
	require.NoError(t, err)
	http.DefaultTransport = roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if h, _, _ := net.SplitHostPort(req.URL.Host); h == "127.0.0.1" || req.URL.Hostname() == "127.0.0.1" {
			return base.RoundTrip(req)
		}
		r := req.Clone(req.Context())
		r.Header.Set("X-Rerouted-From", req.URL.String())
		r.URL.Scheme, r.URL.Host, r.Host = "http", target.Host, target.Host
		return base.RoundTrip(r)
	})
	t.Cleanup(func() { http.DefaultTransport = orig })
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// runNotifyLogged runs the Notify activity and returns what it logged.
func runNotifyLogged(n *Notifier, in NotifyInput) (string, error) {
	var buf bytes.Buffer
	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(n)
	_, err := env.ExecuteActivity(n.Notify, in)
	return buf.String(), err
}

var stuckInput = NotifyInput{Webhook: "chat", Service: "payments-api", Version: "v3", Phase: "rollback-stuck", Step: "flags",
	Reason: "compensation of flags: key app/flag changed since our write", At: time.Date(2026, 11, 29, 19, 0, 0, 0, time.UTC)}

const (
	teamsURL   = "teams://11111111-4444-4444-8444-cccccccccccc@22222222-4444-4444-8444-cccccccccccc/33333333012222222222333333333344/44444444-4444-4444-8444-cccccccccccc/V2ESyij_gAljSoUQHvZoZYzlpAoAXExyOl26dlf1xHEx05?host=contoso.webhook.office.com"
	discordURL = "discord://W3dE2OZz4C13_4z_uHfDOoC7BqTW288s-z1ykqI0iJnY_HjRqMGO8Sc7YDqvf_KVKjhJ@693853386302554172"
	slackURL   = "slack://hook:WNA3PBYV6-F20DUQND3RQ-Webc4MAvoacrpPakR8phF0zi@webhook"
)

// Each channel's message reaches the address its service builds, in the
// shape that service takes; the facts of the phase change are in it.
func TestNotifyChannelsThroughShoutrrr(t *testing.T) {
	rcv := newReceiver(t, http.StatusOK, "")
	reroute(t, rcv)
	generic := newReceiver(t, http.StatusOK, "")
	genericURL := "generic://" + strings.TrimPrefix(generic.srv.URL, "http://") + "/hooks/rollbook?template=json&disabletls=yes"
	for _, tc := range []struct {
		url, target string
		check       func(t *testing.T, body map[string]any)
	}{
		{teamsURL, "https://contoso.webhook.office.com/webhookb2/11111111-4444-4444-8444-cccccccccccc@22222222-4444-4444-8444-cccccccccccc/IncomingWebhook/33333333012222222222333333333344/44444444-4444-4444-8444-cccccccccccc/V2ESyij_gAljSoUQHvZoZYzlpAoAXExyOl26dlf1xHEx05",
			func(t *testing.T, b map[string]any) {
				assert.Equal(t, "MessageCard", b["@type"])
				assert.Equal(t, "rollbook: payments-api v3 is rollback-stuck", b["title"])
				assert.Contains(t, fmt.Sprint(b["sections"]), "key app/flag changed since our write")
			}},
		{discordURL, "https://discord.com/api/webhooks/693853386302554172/W3dE2OZz4C13_4z_uHfDOoC7BqTW288s-z1ykqI0iJnY_HjRqMGO8Sc7YDqvf_KVKjhJ",
			func(t *testing.T, b map[string]any) {
				embeds, _ := b["embeds"].([]any)
				require.NotEmpty(t, embeds)
				assert.Contains(t, fmt.Sprint(embeds), "payments-api v3 is rollback-stuck (step flags)")
			}},
		{slackURL, "https://hooks.slack.com/services/WNA3PBYV6/F20DUQND3RQ/Webc4MAvoacrpPakR8phF0zi",
			func(t *testing.T, b map[string]any) {
				assert.Contains(t, fmt.Sprint(b["text"])+fmt.Sprint(b["attachments"]), "payments-api v3 is rollback-stuck (step flags)")
			}},
		{genericURL, generic.srv.URL + "/hooks/rollbook",
			func(t *testing.T, b map[string]any) {
				assert.Equal(t, "rollbook: payments-api v3 is rollback-stuck", b["title"])
				assert.Contains(t, b["message"], "key app/flag changed")
				assert.Equal(t, "payments-api", b["service"])
				assert.Equal(t, "v3", b["version"])
				assert.Equal(t, "rollback-stuck", b["phase"])
				assert.Equal(t, "flags", b["currentStep"])
				assert.Equal(t, "2026-11-29T19:00:00Z", b["at"])
			}},
	} {
		kind, _, _ := strings.Cut(tc.url, ":")
		t.Run(kind, func(t *testing.T) {
			n, err := NewNotifierFrom(NotifierConfig{Channels: map[string]string{"chat": tc.url}})
			require.NoError(t, err)
			logs, err := runNotifyLogged(n, stuckInput)
			require.NoError(t, err)
			all := append(rcv.got(), generic.got()...)
			var hit *recorded
			for i := range all {
				if strings.HasPrefix(all[i].Target, tc.target) {
					hit = &all[i]
				}
			}
			require.NotNil(t, hit, "a POST to %s; got %+v", tc.target, all)
			assert.Equal(t, http.MethodPost, hit.Method)
			assert.Contains(t, hit.ContentType, "application/json")
			var body map[string]any
			require.NoError(t, json.Unmarshal(hit.Body, &body), string(hit.Body))
			tc.check(t, body)
			assert.Contains(t, logs, "notified")
			assert.NotContains(t, logs, tc.url)
		})
	}
}

// A channel whose receiver refuses the message, or is down, fails the activity
// (the workflow logs it; the deployment goes on) and the error does not
// carry the channel's token.
func TestNotifyChannelErrorsKeepTheTokenOut(t *testing.T) {
	rcv := newReceiver(t, http.StatusBadRequest, "")
	reroute(t, rcv)
	for _, u := range []string{teamsURL, discordURL, slackURL} {
		n, err := NewNotifierFrom(NotifierConfig{Channels: map[string]string{"chat": u}})
		require.NoError(t, err)
		logs, err := runNotifyLogged(n, stuckInput)
		require.Error(t, err, u)
		assert.Contains(t, err.Error(), `webhook "chat"`)
		for _, secret := range []string{"V2ESyij_gAljSoUQHvZoZYzlpAoAXExyOl26dlf1xHEx05", "W3dE2OZz4C13_4z_uHfDOoC7BqTW288s", "Webc4MAvoacrpPakR8phF0zi"} {
			assert.NotContains(t, err.Error(), secret)
			assert.NotContains(t, logs, secret)
		}
	}
	down := newReceiver(t, http.StatusOK, "")
	addr := strings.TrimPrefix(down.srv.URL, "http://")
	down.srv.Close()
	n, err := NewNotifierFrom(NotifierConfig{Channels: map[string]string{"chat": "generic://" + addr + "/hooks/s3cr3t-generic-path?template=json&disabletls=yes"}})
	require.NoError(t, err)
	_, err = runNotifyLogged(n, stuckInput)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cr3t-generic-path")
	typ, _ := errType(err)
	assert.NotEqual(t, ErrInvalid, typ, "a down receiver is retried")
}

func TestNotifierRefusesBadChannels(t *testing.T) {
	_, err := NewNotifierFrom(NotifierConfig{Channels: map[string]string{"chat": "nosuchservice://token@x"}})
	require.ErrorContains(t, err, `webhook "chat"`)
	assert.NotContains(t, err.Error(), "token@x")
	_, err = NewNotifierFrom(NotifierConfig{Webhooks: map[string]string{"chat": "https://h.example/x"}, Channels: map[string]string{"chat": slackURL}})
	require.ErrorContains(t, err, "configured twice")
	_, err = NewNotifierFrom(NotifierConfig{Pagers: map[string]PagerConfig{"oncall": {RoutingKey: "", EventsURL: "http://127.0.0.1:1"}}})
	require.ErrorContains(t, err, "routing key is empty")
	_, err = NewNotifierFrom(NotifierConfig{Pagers: map[string]PagerConfig{"oncall": {RoutingKey: "k", EventsURL: "ftp://x"}}})
	require.ErrorContains(t, err, "not an http(s) URL")
}
