package activities

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/PagerDuty/go-pagerduty"
	"go.temporal.io/sdk/activity"

	"github.com/rollbook/rollbook/activities/contract"
	"github.com/rollbook/rollbook/internal/clip"
)

// PagerConfig is one PagerDuty Events v2 service.
type PagerConfig struct {
	// RoutingKey is the integration's routing key (a secret).
	RoutingKey string
	// EventsURL is the Events API base URL (https://events.pagerduty.com).
	EventsURL string
}

// pager sends Events v2 trigger and resolve events through go-pagerduty.
type pager struct {
	name   string
	key    string
	client *pagerduty.Client
}

// pdSummaryMax is Events v2's limit on payload.summary.
const pdSummaryMax = 1024

func newPager(name string, c PagerConfig, hc *http.Client) (*pager, error) {
	if strings.TrimSpace(c.RoutingKey) == "" {
		return nil, fmt.Errorf("notify: paging service %q: the routing key is empty", name)
	}
	u, err := url.Parse(c.EventsURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("notify: paging service %q: the events URL is not an http(s) URL", name)
	}
	// The REST API token is unused: Events v2 authenticates by the routing
	// key in the body.
	cl := pagerduty.NewClient("", pagerduty.WithV2EventsAPIEndpoint(strings.TrimRight(c.EventsURL, "/")))
	cl.HTTPClient = hc
	return &pager{name: name, key: c.RoutingKey, client: cl}, nil
}

// page sends a trigger or a resolve, deduplicated by the workflow ID: the
// trigger of rollback-stuck, a later rollback-failed and the resolve after
// a retry all land on one incident.
func (n *Notifier) page(ctx context.Context, in NotifyInput) error {
	p, ok := n.pagers[in.Page]
	if !ok {
		return invalidf("notify: unknown paging service %q (this worker knows: %s)", in.Page, known(n.pagers))
	}
	dedup := in.WorkflowID
	if dedup == "" {
		dedup = activity.GetInfo(ctx).WorkflowExecution.ID
	}
	ev := &pagerduty.V2Event{RoutingKey: p.key, Action: in.PageAction, DedupKey: dedup}
	switch in.PageAction {
	case contract.PageTrigger:
		link := n.webUILink(ctx)
		ev.Client, ev.ClientURL = "rollbook", link
		if link != "" {
			ev.Links = []any{map[string]string{"href": link, "text": "the deployment in the Temporal Web UI"}}
		}
		ev.Payload = &pagerduty.V2Payload{
			Summary:   clip.Ellipsis(pageSummary(in), pdSummaryMax),
			Source:    dedup,
			Severity:  "critical",
			Timestamp: in.At.UTC().Format("2006-01-02T15:04:05.000Z"),
			Component: in.Service,
			Class:     in.Phase,
			Details:   pageDetails(in, dedup, link),
		}
	case contract.PageResolve:
	default:
		return invalidf("notify: page action %q is not %s or %s", in.PageAction, contract.PageTrigger, contract.PageResolve)
	}
	if _, err := p.client.ManageEventWithContext(ctx, ev); err != nil {
		return p.wrap(in, err)
	}
	activity.GetLogger(ctx).Info("paged", "page", in.Page, "action", in.PageAction, "dedupKey", dedup, "phase", in.Phase)
	return nil
}

// wrap names the service and action; the routing key never appears. A
// 4xx other than 429 (a bad key, a malformed event) will not pass on a
// retry: ErrInvalid.
func (p *pager) wrap(in NotifyInput, err error) error {
	msg := newRedactor(p.key).clean(err.Error())
	var api pagerduty.APIError
	if errors.As(err, &api) && api.StatusCode >= 400 && api.StatusCode < 500 && api.StatusCode != http.StatusTooManyRequests {
		return invalidf("notify: paging service %q refused the %s: %s", in.Page, in.PageAction, msg)
	}
	return fmt.Errorf("notify: paging service %q: sending the %s failed: %s", in.Page, in.PageAction, msg)
}

func pageSummary(in NotifyInput) string {
	s := fmt.Sprintf("rollbook: %s %s is %s", in.Service, in.Version, in.Phase)
	if in.Step != "" {
		s += fmt.Sprintf(" at step %s", in.Step)
	}
	if in.Reason != "" {
		s += ": " + in.Reason
	}
	return s
}

func pageDetails(in NotifyInput, workflowID, link string) map[string]string {
	d := map[string]string{"service": in.Service, "version": in.Version, "phase": in.Phase, "workflowId": workflowID}
	for k, v := range map[string]string{"step": in.Step, "reason": in.Reason, "preserved": in.Preserved, "webUI": link} {
		if v != "" {
			d[k] = v
		}
	}
	return d
}

// webUILink is the deployment's page in the Web UI, when the worker knows
// the UI's address.
func (n *Notifier) webUILink(ctx context.Context) string {
	if n.webUI == "" {
		return ""
	}
	info := activity.GetInfo(ctx)
	return fmt.Sprintf("%s/namespaces/%s/workflows/%s/%s/history", n.webUI,
		url.PathEscape(info.WorkflowNamespace), url.PathEscape(info.WorkflowExecution.ID), url.PathEscape(info.WorkflowExecution.RunID))
}

func known[V any](m map[string]V) string {
	if len(m) == 0 {
		return "none"
	}
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}
