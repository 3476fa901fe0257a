package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nicholas-fedor/shoutrrr/pkg/router"
	"github.com/nicholas-fedor/shoutrrr/pkg/types"
	"go.temporal.io/sdk/activity"

	"github.com/rollbook/rollbook/internal/netguard"
)

// Notifier posts phase changes to chat channels and pages a human through
// paging services, all known to the worker by name: the URLs and keys
// (secrets) stay in the worker's configuration. Chat channels are
// Slack-compatible JSON webhooks (Webhooks) or shoutrrr services (Teams,
// Discord, Slack, generic JSON…); paging is PagerDuty Events v2 (page.go).
type Notifier struct {
	HTTP     *http.Client
	Webhooks map[string]string

	channels map[string]*channel
	pagers   map[string]*pager
	// webUI is the Temporal Web UI's base URL, for links in pages.
	webUI string
}

// NotifierConfig is what a Notifier sends to.
type NotifierConfig struct {
	// Webhooks: name → http(s) URL that takes Slack-compatible JSON.
	Webhooks map[string]string
	// Channels: name → shoutrrr service URL (teams://…, discord://…,
	// slack://…, generic://…).
	Channels map[string]string
	// Pagers: name → PagerDuty Events v2 service.
	Pagers map[string]PagerConfig
	// WebUI is the Temporal Web UI's base URL; optional.
	WebUI string
	// HTTP posts the JSON webhooks and the pages; nil: a client with a
	// timeout that follows no redirect to another host.
	HTTP *http.Client
}

// NewNotifier checks that every webhook is an http(s) URL.
func NewNotifier(webhooks map[string]string, hc *http.Client) (*Notifier, error) {
	return NewNotifierFrom(NotifierConfig{Webhooks: webhooks, HTTP: hc})
}

// NewNotifierFrom checks every channel and paging service. Errors name the
// channel, never its URL or key.
func NewNotifierFrom(c NotifierConfig) (*Notifier, error) {
	for _, name := range slices.Sorted(maps.Keys(c.Webhooks)) {
		u, err := url.Parse(c.Webhooks[name])
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("notify: webhook %q: want an http(s) URL", name)
		}
	}
	hc := c.HTTP
	if hc == nil {
		// A webhook that redirects elsewhere would carry the message (and
		// the worker's POST) to a host the operator never configured.
		hc = &http.Client{Timeout: 10 * time.Second, CheckRedirect: netguard.SameHostRedirect}
	}
	n := &Notifier{HTTP: hc, Webhooks: maps.Clone(c.Webhooks), channels: map[string]*channel{}, pagers: map[string]*pager{}, webUI: strings.TrimRight(c.WebUI, "/")}
	for _, name := range slices.Sorted(maps.Keys(c.Channels)) {
		if _, dup := n.Webhooks[name]; dup {
			return nil, fmt.Errorf("notify: webhook %q is configured twice", name)
		}
		ch, err := newChannel(name, c.Channels[name])
		if err != nil {
			return nil, err
		}
		n.channels[name] = ch
	}
	for _, name := range slices.Sorted(maps.Keys(c.Pagers)) {
		p, err := newPager(name, c.Pagers[name], hc)
		if err != nil {
			return nil, err
		}
		n.pagers[name] = p
	}
	return n, nil
}

// Notify posts one message to a webhook, or sends one page. An unknown
// name is ErrInvalid; a receiver error is retried.
func (n *Notifier) Notify(ctx context.Context, in NotifyInput) error {
	if in.Page != "" {
		if in.Webhook != "" {
			return invalidf("notify: a notification goes to a webhook or a paging service, not both (webhook %q, page %q)", in.Webhook, in.Page)
		}
		return n.page(ctx, in)
	}
	if ch, ok := n.channels[in.Webhook]; ok {
		if err := ch.send(ctx, in); err != nil {
			return err
		}
		activity.GetLogger(ctx).Info("notified", "webhook", in.Webhook, "kind", ch.kind, "phase", in.Phase)
		return nil
	}
	u, ok := n.Webhooks[in.Webhook]
	if !ok {
		return invalidf("notify: unknown webhook %q (this worker knows: %s)", in.Webhook, n.knownWebhooks())
	}
	body, err := json.Marshal(Message{Text: slackText(in), Rollbook: in})
	if err != nil {
		return fmt.Errorf("notify: encoding the message: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return invalidf("notify: webhook %q: %v", in.Webhook, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.HTTP.Do(req)
	if err != nil {
		// The error may carry the URL, which can be a secret: name it only.
		return fmt.Errorf("notify: posting to webhook %q failed", in.Webhook)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("notify: webhook %q answered %s", in.Webhook, resp.Status)
	}
	activity.GetLogger(ctx).Info("notified", "webhook", in.Webhook, "phase", in.Phase)
	return nil
}

func (n *Notifier) knownWebhooks() string {
	names := slices.Sorted(slices.Values(slices.Concat(slices.Collect(maps.Keys(n.Webhooks)), slices.Collect(maps.Keys(n.channels)))))
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// slackText is the Slack-compatible webhook's text, in Slack's markup.
func slackText(in NotifyInput) string {
	text := fmt.Sprintf("rollbook: *%s* %s is *%s*", in.Service, in.Version, in.Phase)
	if in.Step != "" {
		text += fmt.Sprintf(" (step `%s`)", in.Step)
	}
	if in.Reason != "" {
		text += ": " + in.Reason
	}
	if in.Preserved != "" {
		text += ". Data preserved: " + in.Preserved
	}
	return text
}

// plainText is the message for the shoutrrr channels, whose markups differ:
// the facts without markup, the title apart.
func plainText(in NotifyInput) (title, text string) {
	title = fmt.Sprintf("rollbook: %s %s is %s", in.Service, in.Version, in.Phase)
	text = fmt.Sprintf("%s %s is %s", in.Service, in.Version, in.Phase)
	if in.Step != "" {
		text += fmt.Sprintf(" (step %s)", in.Step)
	}
	if in.Reason != "" {
		text += ": " + in.Reason
	}
	if in.Preserved != "" {
		text += ". Data preserved: " + in.Preserved
	}
	return title, text
}

// channel is a chat channel shoutrrr sends to.
type channel struct {
	name string
	kind string // the URL's scheme: teams, discord, slack, generic…
	url  string
	red  redactor
}

// sendTimeout bounds one shoutrrr send; its services take no context.
const sendTimeout = 15 * time.Second

func newChannel(name, rawURL string) (*channel, error) {
	ch := &channel{name: name, url: rawURL, red: newRedactor(rawURL)}
	r := router.ServiceRouter{Timeout: sendTimeout}
	scheme, _, err := r.ExtractServiceName(rawURL)
	if err != nil {
		return nil, fmt.Errorf("notify: webhook %q: not a shoutrrr URL", name)
	}
	ch.kind = scheme
	if _, err := r.Locate(rawURL); err != nil {
		// shoutrrr's errors can carry the URL: keep only what it says.
		return nil, fmt.Errorf("notify: webhook %q (%s): %s", name, scheme, ch.red.clean(err.Error()))
	}
	return ch, nil
}

// send builds a fresh service per message (a service's config is mutated
// by the params of a send, and activities run side by side) and waits for
// it or for the activity's context.
func (ch *channel) send(ctx context.Context, in NotifyInput) error {
	r := router.ServiceRouter{Timeout: sendTimeout}
	svc, err := r.Locate(ch.url)
	if err != nil {
		return invalidf("notify: webhook %q (%s): %s", ch.name, ch.kind, ch.red.clean(err.Error()))
	}
	title, text := plainText(in)
	params := types.Params{types.TitleKey: title}
	if ch.kind == "generic" {
		// A generic JSON receiver gets the facts as fields too.
		for k, v := range genericFields(in) {
			params[k] = v
		}
	}
	done := make(chan error, 1)
	go func() { done <- svc.Send(text, &params) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		return fmt.Errorf("notify: webhook %q (%s): %w", ch.name, ch.kind, ctx.Err())
	case <-time.After(sendTimeout):
		return fmt.Errorf("notify: webhook %q (%s): no answer within %s", ch.name, ch.kind, sendTimeout)
	}
	if err != nil {
		return fmt.Errorf("notify: webhook %q (%s): %s", ch.name, ch.kind, ch.red.clean(err.Error()))
	}
	return nil
}

// genericFields are the phase change's facts as generic-webhook fields;
// none is a generic service's config key, which a param would override.
func genericFields(in NotifyInput) map[string]string {
	f := map[string]string{"service": in.Service, "version": in.Version, "phase": in.Phase, "at": in.At.UTC().Format(time.RFC3339)}
	for k, v := range map[string]string{"currentStep": in.Step, "reason": in.Reason, "preserved": in.Preserved} {
		if v != "" {
			f[k] = v
		}
	}
	return f
}

// redactor removes a secret URL, and every long piece of it, from error
// text: shoutrrr's errors may quote the URL it was given, or the one it
// built from it (a Discord or Slack token lands in another URL's path).
type redactor struct{ pieces []string }

// minSecretPiece: shorter pieces (ports, "hook", "yes") are not secrets
// and redacting them would garble the message.
const minSecretPiece = 8

func newRedactor(secrets ...string) redactor {
	var r redactor
	for _, s := range secrets {
		if s == "" {
			continue
		}
		r.pieces = append(r.pieces, s)
		// The URL's parts (user, password, path segments, query values),
		// then their own parts: a Slack token's "A-B-C" is posted as
		// "A/B/C". Dotted parts are host names, not secrets.
		for _, part := range strings.FieldsFunc(s, func(c rune) bool { return strings.ContainsRune(":/@?&=#", c) }) {
			if len(part) >= minSecretPiece && !strings.Contains(part, ".") {
				r.pieces = append(r.pieces, part)
			}
			for _, p := range strings.FieldsFunc(part, func(c rune) bool { return strings.ContainsRune("+-._~%", c) }) {
				if len(p) >= minSecretPiece {
					r.pieces = append(r.pieces, p)
				}
			}
		}
	}
	// Longest first, so a piece inside a longer one does not split it.
	slices.SortFunc(r.pieces, func(a, b string) int { return len(b) - len(a) })
	return r
}

func (r redactor) clean(s string) string {
	s = netguard.RedactText(s)
	for _, p := range r.pieces {
		s = strings.ReplaceAll(s, p, "[redacted]")
	}
	return s
}
