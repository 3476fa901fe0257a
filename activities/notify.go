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

	"go.temporal.io/sdk/activity"

	"github.com/rollbook/rollbook/internal/netguard"
)

// Notifier posts Slack-compatible messages to webhooks the worker knows by
// name. The URLs (often secrets) stay in the worker's configuration.
type Notifier struct {
	HTTP     *http.Client
	Webhooks map[string]string
}

// NewNotifier checks that every webhook is an http(s) URL.
func NewNotifier(webhooks map[string]string, hc *http.Client) (*Notifier, error) {
	for _, name := range slices.Sorted(maps.Keys(webhooks)) {
		u, err := url.Parse(webhooks[name])
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("notify: webhook %q: want an http(s) URL", name)
		}
	}
	if hc == nil {
		// A webhook that redirects elsewhere would carry the message (and
		// the worker's POST) to a host the operator never configured.
		hc = &http.Client{Timeout: 10 * time.Second, CheckRedirect: netguard.SameHostRedirect}
	}
	return &Notifier{HTTP: hc, Webhooks: maps.Clone(webhooks)}, nil
}

// Notify posts one message. An unknown webhook name is ErrInvalid; a
// receiver error is retried.
func (n *Notifier) Notify(ctx context.Context, in NotifyInput) error {
	u, ok := n.Webhooks[in.Webhook]
	if !ok {
		return invalidf("notify: unknown webhook %q (this worker knows: %s)", in.Webhook, strings.Join(slices.Sorted(maps.Keys(n.Webhooks)), ", "))
	}
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
	body, err := json.Marshal(Message{Text: text, Rollbook: in})
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
