package cli

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.uber.org/zap"

	"github.com/rollbook/rollbook/internal/clip"
	"github.com/rollbook/rollbook/runbook"
	"github.com/rollbook/rollbook/workflows"
)

const (
	// maxAlertBody bounds one webhook notification. Alertmanager's own
	// default max_alerts is unlimited, but a group of a few hundred alerts
	// with their annotations stays well under this.
	maxAlertBody = 1 << 20
	// maxRememberedAlerts bounds the (run, fingerprint) pairs already
	// signalled; the oldest are forgotten first. Forgetting one costs at
	// most one more abort signal, which the workflow ignores.
	maxRememberedAlerts = 4096
	// alertSender is the "by" of every abort the receiver sends.
	alertSender = "alertmanager"
)

// abortSender is the part of the Temporal client the receiver uses
// (client.Client has both).
type abortSender interface {
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
}

// amWebhook is Alertmanager's webhook payload, version 4 (the fields the
// receiver reads).
type amWebhook struct {
	Version  string    `json:"version"`
	GroupKey string    `json:"groupKey"`
	Status   string    `json:"status"`
	Receiver string    `json:"receiver"`
	Alerts   []amAlert `json:"alerts"`
}

type amAlert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	Fingerprint string            `json:"fingerprint"`
}

// alertVerdict says what the receiver did with the alerts of one service
// (or with one alert it could not use); it is logged and returned to
// Alertmanager in the response body.
type alertVerdict struct {
	Service string   `json:"service,omitempty"`
	Alerts  []string `json:"alerts"`
	Action  string   `json:"action"` // "aborted" or "ignored"
	Why     string   `json:"why,omitempty"`
	RunID   string   `json:"runId,omitempty"`
}

// alertReceiver turns firing alerts into abort signals.
type alertReceiver struct {
	temporal abortSender
	token    string
	label    string // the label naming the service
	timeout  time.Duration
	log      *zap.Logger

	mu    sync.Mutex
	sent  map[string]bool // run ID + fingerprint already signalled
	order []string        // sent's keys, oldest first
}

func newAlertReceiver(t abortSender, token, label string, log *zap.Logger) *alertReceiver {
	return &alertReceiver{temporal: t, token: token, label: label, timeout: 10 * time.Second, log: log, sent: map[string]bool{}}
}

// handler serves POST /alerts (Alertmanager's webhook_configs url) and
// GET /healthz.
func (r *alertReceiver) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/alerts", r)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	return mux
}

func (r *alertReceiver) authorized(req *http.Request) bool {
	if r.token == "" {
		return true // loopback only, checked before listening
	}
	got, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(r.token)) == 1
}

func (r *alertReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST Alertmanager's webhook JSON here", http.StatusMethodNotAllowed)
		return
	}
	if !r.authorized(req) {
		r.log.Warn("alert notification refused: missing or wrong bearer token", zap.String("remote", req.RemoteAddr))
		w.Header().Set("WWW-Authenticate", `Bearer realm="rollbook alert receiver"`)
		http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
		return
	}
	var msg amWebhook
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, maxAlertBody))
	if err := dec.Decode(&msg); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("notification larger than %d bytes", maxAlertBody), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading the notification: "+err.Error(), http.StatusBadRequest)
		return
	}
	if msg.Version != "4" {
		http.Error(w, fmt.Sprintf("webhook version %q: this receiver reads Alertmanager's version 4", clip.Ellipsis(msg.Version, 20)), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), r.timeout)
	defer cancel()
	verdicts, err := r.handle(ctx, msg)
	if err != nil {
		// Temporal did not answer: a 5xx makes Alertmanager retry.
		r.log.Error("alert notification not handled: Temporal unreachable", zap.String("groupKey", msg.GroupKey), zap.Error(err))
		http.Error(w, "Temporal unreachable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"results": verdicts})
}

// handle sends one abort per service with firing alerts; everything else is
// logged and ignored. The error is non-nil only when Temporal is
// unreachable.
func (r *alertReceiver) handle(ctx context.Context, msg amWebhook) ([]alertVerdict, error) {
	var verdicts []alertVerdict
	ignore := func(a amAlert, why string) {
		v := alertVerdict{Service: clip.Ellipsis(a.Labels[r.label], 100), Alerts: []string{alertName(a)}, Action: "ignored", Why: why}
		r.log.Info("alert ignored", zap.String("alert", alertName(a)), zap.String("status", a.Status), zap.String("why", why))
		verdicts = append(verdicts, v)
	}
	byService := map[string][]amAlert{}
	var services []string
	for _, a := range msg.Alerts {
		svc, ok := a.Labels[r.label]
		switch {
		case a.Status != "firing":
			ignore(a, "status "+clip.Ellipsis(a.Status, 20)+": only firing alerts abort")
			continue
		case !ok:
			ignore(a, "no "+r.label+" label")
			continue
		}
		if err := runbook.CheckName(r.label+" label", svc); err != nil {
			ignore(a, err.Error())
			continue
		}
		if _, seen := byService[svc]; !seen {
			services = append(services, svc)
		}
		byService[svc] = append(byService[svc], a)
	}
	for _, svc := range services {
		v, err := r.abort(ctx, svc, byService[svc])
		if err != nil {
			return verdicts, err
		}
		verdicts = append(verdicts, v)
	}
	return verdicts, nil
}

// abort signals the running deployment of svc, once per run and alert.
func (r *alertReceiver) abort(ctx context.Context, svc string, alerts []amAlert) (alertVerdict, error) {
	v := alertVerdict{Service: svc, Action: "ignored"}
	for _, a := range alerts {
		v.Alerts = append(v.Alerts, alertName(a))
	}
	logIgnored := func(why string) (alertVerdict, error) {
		v.Why = why
		r.log.Info("alerts ignored", zap.String("service", svc), zap.Strings("alerts", v.Alerts), zap.String("why", why))
		return v, nil
	}
	id := workflows.WorkflowID(svc)
	desc, err := r.temporal.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return logIgnored("no deployment of " + svc + " (workflow " + id + ")")
	case err != nil && isUnavailable(err):
		return v, fmt.Errorf("looking up workflow %s: %w", id, err)
	case err != nil:
		r.log.Error("looking up the deployment failed", zap.String("service", svc), zap.Error(err))
		return logIgnored("looking up workflow " + id + ": " + err.Error())
	}
	info := desc.GetWorkflowExecutionInfo()
	v.RunID = info.GetExecution().GetRunId()
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return logIgnored("no deployment running: the last one ended " + info.GetStatus().String())
	}
	fresh := r.unsent(v.RunID, alerts)
	if len(fresh) == 0 {
		return logIgnored("already sent abort to this run for these alerts")
	}
	sig := workflows.AbortSignal{Reason: abortReason(fresh), By: alertSender}
	if err := r.temporal.SignalWorkflow(ctx, id, v.RunID, workflows.SignalAbort, sig); err != nil {
		if errors.As(err, &nf) {
			return logIgnored("the deployment finished before the abort arrived")
		}
		if isUnavailable(err) {
			return v, fmt.Errorf("signalling abort to %s: %w", id, err)
		}
		r.log.Error("abort signal failed", zap.String("service", svc), zap.Error(err))
		return logIgnored("signalling abort to " + id + ": " + err.Error())
	}
	r.remember(v.RunID, fresh)
	v.Action, v.Why = "aborted", sig.Reason
	r.log.Info("abort sent", zap.String("service", svc), zap.String("workflowId", id), zap.String("runId", v.RunID),
		zap.Strings("alerts", v.Alerts), zap.String("reason", sig.Reason))
	return v, nil
}

// unsent keeps the alerts not yet signalled to run.
func (r *alertReceiver) unsent(run string, alerts []amAlert) []amAlert {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []amAlert
	for _, a := range alerts {
		if !r.sent[run+"\x00"+alertKey(a)] {
			out = append(out, a)
		}
	}
	return out
}

func (r *alertReceiver) remember(run string, alerts []amAlert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range alerts {
		k := run + "\x00" + alertKey(a)
		if r.sent[k] {
			continue
		}
		r.sent[k] = true
		r.order = append(r.order, k)
	}
	for len(r.order) > maxRememberedAlerts {
		delete(r.sent, r.order[0])
		r.order = r.order[1:]
	}
}

// alertKey identifies an alert: Alertmanager's fingerprint, or its sorted
// labels when a sender leaves the fingerprint out.
func alertKey(a amAlert) string {
	if a.Fingerprint != "" {
		return a.Fingerprint
	}
	keys := make([]string, 0, len(a.Labels))
	for k := range a.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q,", k, a.Labels[k])
	}
	return b.String()
}

func alertName(a amAlert) string {
	if n := a.Labels["alertname"]; n != "" {
		return clip.Ellipsis(n, 100)
	}
	return "(no alertname)"
}

// abortReason is "alert NAME: SUMMARY" for each alert, the first ones first
// (the workflow clips the whole).
func abortReason(alerts []amAlert) string {
	parts := make([]string, 0, len(alerts))
	for _, a := range alerts {
		p := "alert " + alertName(a)
		if s := strings.TrimSpace(a.Annotations["summary"]); s != "" {
			p += ": " + clip.Ellipsis(s, 300)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}
