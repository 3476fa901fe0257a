package workerconfig

import (
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/rollbook/rollbook/internal/clip"
	"github.com/rollbook/rollbook/internal/netguard"
)

// Webhook kinds. WebhookKindJSON (the default, and the only kind before
// there were others) posts Slack-compatible JSON to an http(s) URL; the
// others take a shoutrrr service URL of their own scheme.
const (
	WebhookKindJSON     = "webhook"
	WebhookKindTeams    = "teams"
	WebhookKindDiscord  = "discord"
	WebhookKindSlack    = "slack"
	WebhookKindGeneric  = "generic"
	WebhookKindShoutrrr = "shoutrrr" // any service shoutrrr knows; the URL's scheme says which
)

// WebhookKinds lists the kinds a webhook may have.
var WebhookKinds = []string{WebhookKindJSON, WebhookKindTeams, WebhookKindDiscord, WebhookKindSlack, WebhookKindGeneric, WebhookKindShoutrrr}

// PagingKindPagerDuty is PagerDuty's Events API v2, the only paging kind.
const PagingKindPagerDuty = "pagerduty"

// DefaultPagerDutyEventsURL is the Events API v2 base URL.
const DefaultPagerDutyEventsURL = "https://events.pagerduty.com"

// WebhookConfig is one chat channel runbooks name in notify.webhook.
type WebhookConfig struct {
	// Kind is webhook (default: Slack-compatible JSON posted to an http(s)
	// URL), or teams, discord, slack, generic: a shoutrrr URL of that
	// scheme (teams://…, discord://…, slack://…, generic://…), or shoutrrr:
	// any shoutrrr URL.
	Kind string `yaml:"kind"`
	// Exactly one of URL, URLEnv, URLFile. A shoutrrr URL carries its
	// token, so those kinds refuse an inline url.
	URL     string `yaml:"url"`
	URLEnv  string `yaml:"urlEnv"`
	URLFile string `yaml:"urlFile"`
}

// PagingConfig is one paging service runbooks name in notify.page.
type PagingConfig struct {
	// Kind is pagerduty (the default and only kind).
	Kind string `yaml:"kind"`
	// The Events v2 routing (integration) key: exactly one of an
	// environment variable and a file. It is a secret: never inline.
	RoutingKeyEnv  string `yaml:"routingKeyEnv"`
	RoutingKeyFile string `yaml:"routingKeyFile"`
	// EventsURL is the Events API base URL (default
	// https://events.pagerduty.com); a local receiver in tests, or a proxy.
	EventsURL string `yaml:"eventsURL"`
}

// webhookKind returns the kind with its default.
func (w WebhookConfig) webhookKind() string {
	if w.Kind == "" {
		return WebhookKindJSON
	}
	return w.Kind
}

func (c *Config) validateNotify() []string {
	var errs []string
	for _, n := range sortedKeys(c.Webhooks) {
		w := c.Webhooks[n]
		if !slices.Contains(WebhookKinds, w.webhookKind()) {
			errs = append(errs, fmt.Sprintf("webhooks.%s.kind: %q is not one of %s", n, clip.Bytes(w.Kind, 64), strings.Join(WebhookKinds, ", ")))
		}
		if countSet(w.URL, w.URLEnv, w.URLFile) != 1 {
			errs = append(errs, fmt.Sprintf("webhooks.%s: set exactly one of url, urlEnv, urlFile", n))
		}
		if w.URL != "" && w.webhookKind() != WebhookKindJSON {
			// Not echoed: a shoutrrr URL holds the channel's token.
			errs = append(errs, fmt.Sprintf("webhooks.%s.url: a %s URL holds its token; put it in urlEnv or urlFile instead (this file must not hold secrets)", n, w.webhookKind()))
		}
	}
	for _, n := range sortedKeys(c.Paging) {
		p := c.Paging[n]
		if p.Kind != "" && p.Kind != PagingKindPagerDuty {
			errs = append(errs, fmt.Sprintf("paging.%s.kind: %q is not %s", n, clip.Bytes(p.Kind, 64), PagingKindPagerDuty))
		}
		if countSet(p.RoutingKeyEnv, p.RoutingKeyFile) != 1 {
			errs = append(errs, fmt.Sprintf("paging.%s: set exactly one of routingKeyEnv, routingKeyFile", n))
		}
		if p.EventsURL != "" && !isHTTPURL(p.EventsURL) {
			errs = append(errs, fmt.Sprintf("paging.%s.eventsURL: %s is not an http(s) URL", n, netguard.RedactURL(p.EventsURL)))
		}
	}
	if c.WebUI != "" && !isHTTPURL(c.WebUI) {
		errs = append(errs, fmt.Sprintf("webUI: %s is not an http(s) URL", netguard.RedactURL(c.WebUI)))
	}
	return errs
}

func countSet(vals ...string) int {
	n := 0
	for _, v := range vals {
		if v != "" {
			n++
		}
	}
	return n
}

func isHTTPURL(v string) bool {
	u, err := url.Parse(v)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// ResolvedWebhook is a webhook with its URL read.
type ResolvedWebhook struct {
	Kind string
	URL  string
}

// ResolveWebhook reads a webhook's URL from where the config says it is and
// checks it fits the kind: an http(s) URL for the JSON kind, a URL of the
// kind's scheme for the shoutrrr kinds. Errors never echo the URL.
func ResolveWebhook(name string, w WebhookConfig) (ResolvedWebhook, error) {
	kind := w.webhookKind()
	what := "webhook " + name
	v, err := readSecret(what, w.URL, w.URLEnv, w.URLFile)
	if err != nil {
		return ResolvedWebhook{}, err
	}
	if kind == WebhookKindJSON {
		u, err := ResolveAddress(what, AddressConfig{URL: v})
		return ResolvedWebhook{Kind: kind, URL: u}, err
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" {
		return ResolvedWebhook{}, fmt.Errorf("%s: not a %s URL (want %s://…)", what, kind, schemeHint(kind))
	}
	scheme, _, _ := strings.Cut(u.Scheme, "+")
	if kind != WebhookKindShoutrrr && scheme != kind {
		return ResolvedWebhook{}, fmt.Errorf("%s: kind %s wants a %s://… URL, the URL's scheme is %q", what, kind, kind, clip.Bytes(scheme, 64))
	}
	return ResolvedWebhook{Kind: kind, URL: v}, nil
}

func schemeHint(kind string) string {
	if kind == WebhookKindShoutrrr {
		return "service"
	}
	return kind
}

// ResolveRoutingKey reads a paging service's routing key.
func ResolveRoutingKey(name string, p PagingConfig) (string, error) {
	return readSecret("paging "+name+" routing key", "", p.RoutingKeyEnv, p.RoutingKeyFile)
}

// PagingEventsURL is the Events API base URL a paging service posts to.
func PagingEventsURL(p PagingConfig) string {
	if p.EventsURL == "" {
		return DefaultPagerDutyEventsURL
	}
	return strings.TrimRight(p.EventsURL, "/")
}

// readSecret returns the inline value, or the named variable's, or the
// named file's (trimmed). Errors name the variable or file, never a value.
func readSecret(what, inline, env, file string) (string, error) {
	switch {
	case inline != "":
		return inline, nil
	case env != "":
		v := strings.TrimSpace(os.Getenv(env))
		if v == "" {
			return "", fmt.Errorf("%s: environment variable %s is empty", what, env)
		}
		return v, nil
	default:
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s: reading %s: %w", what, file, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("%s: file %s is empty", what, file)
		}
		return v, nil
	}
}
