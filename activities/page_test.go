package activities

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testRoutingKey = "R0UT1NGKEY0123456789abcdefABCDEF"

// pdEvent is the Events v2 body as the receiver decodes it.
type pdEvent struct {
	RoutingKey string `json:"routing_key"`
	Action     string `json:"event_action"`
	DedupKey   string `json:"dedup_key"`
	Client     string `json:"client"`
	ClientURL  string `json:"client_url"`
	Links      []struct {
		Href string `json:"href"`
	} `json:"links"`
	Payload *struct {
		Summary   string            `json:"summary"`
		Source    string            `json:"source"`
		Severity  string            `json:"severity"`
		Timestamp string            `json:"timestamp"`
		Component string            `json:"component"`
		Class     string            `json:"class"`
		Details   map[string]string `json:"custom_details"`
	} `json:"payload"`
}

func pdReceiver(t *testing.T, status int, answer string) (*receiver, *Notifier) {
	rcv := newReceiver(t, status, answer)
	n, err := NewNotifierFrom(NotifierConfig{
		Pagers: map[string]PagerConfig{"oncall": {RoutingKey: testRoutingKey, EventsURL: rcv.srv.URL}},
		WebUI:  "http://ui.example:8233/",
	})
	require.NoError(t, err)
	return rcv, n
}

func decodeEvents(t *testing.T, rcv *receiver) []pdEvent {
	var out []pdEvent
	for _, r := range rcv.got() {
		assert.Equal(t, http.MethodPost, r.Method)
		assert.True(t, strings.HasSuffix(r.Target, "/v2/enqueue"), r.Target)
		var e pdEvent
		require.NoError(t, json.Unmarshal(r.Body, &e), string(r.Body))
		out = append(out, e)
	}
	return out
}

const pdAccepted = `{"status":"success","message":"Event processed","dedup_key":"rollbook-payments-api"}`

// Each outcome that needs a human triggers a critical page whose summary
// names the service, version, phase, step and reason, deduplicated by the
// workflow ID, with the Web UI link.
func TestPageTriggersOnOutcomesThatNeedAHuman(t *testing.T) {
	for _, phase := range []string{"rollback-stuck", "failed-after-commit", "rollback-failed"} {
		t.Run(phase, func(t *testing.T) {
			rcv, n := pdReceiver(t, http.StatusAccepted, pdAccepted)
			in := stuckInput
			in.Webhook, in.Page, in.PageAction, in.WorkflowID, in.Phase = "", "oncall", "trigger", "rollbook-payments-api", phase
			in.Preserved = "payments archived by schema: table orders_v3 (12 rows)"
			logs, err := runNotifyLogged(n, in)
			require.NoError(t, err)
			evs := decodeEvents(t, rcv)
			require.Len(t, evs, 1)
			e := evs[0]
			assert.Equal(t, testRoutingKey, e.RoutingKey)
			assert.Equal(t, "trigger", e.Action)
			assert.Equal(t, "rollbook-payments-api", e.DedupKey, "dedup key = workflow ID")
			require.NotNil(t, e.Payload)
			assert.Equal(t, "critical", e.Payload.Severity)
			assert.Equal(t, "rollbook: payments-api v3 is "+phase+" at step flags: compensation of flags: key app/flag changed since our write", e.Payload.Summary)
			assert.Equal(t, "payments-api", e.Payload.Component)
			assert.Equal(t, phase, e.Payload.Class)
			assert.Equal(t, "2026-11-29T19:00:00.000Z", e.Payload.Timestamp)
			d := e.Payload.Details
			assert.Equal(t, "v3", d["version"])
			assert.Equal(t, "flags", d["step"])
			assert.Equal(t, "payments archived by schema: table orders_v3 (12 rows)", d["preserved"])
			assert.Equal(t, "rollbook-payments-api", d["workflowId"])
			assert.True(t, strings.HasPrefix(d["webUI"], "http://ui.example:8233/namespaces/"), d["webUI"])
			assert.True(t, strings.HasSuffix(d["webUI"], "/history"), d["webUI"])
			assert.Equal(t, d["webUI"], e.ClientURL)
			require.Len(t, e.Links, 1)
			assert.Equal(t, d["webUI"], e.Links[0].Href)
			assert.Contains(t, logs, "paged")
			assert.NotContains(t, logs, testRoutingKey)
		})
	}
}

func TestPageResolve(t *testing.T) {
	rcv, n := pdReceiver(t, http.StatusAccepted, pdAccepted)
	in := NotifyInput{Page: "oncall", PageAction: "resolve", WorkflowID: "rollbook-payments-api", Service: "payments-api", Version: "v3", Phase: "rolled-back"}
	_, err := runNotifyLogged(n, in)
	require.NoError(t, err)
	evs := decodeEvents(t, rcv)
	require.Len(t, evs, 1)
	assert.Equal(t, "resolve", evs[0].Action)
	assert.Equal(t, "rollbook-payments-api", evs[0].DedupKey)
	assert.Equal(t, testRoutingKey, evs[0].RoutingKey)
	assert.Nil(t, evs[0].Payload, "a resolve names the incident only")
}

// A receiver that refuses the event (400, even one quoting the key back),
// one that fails (500) and one that is down: the activity fails, the
// routing key is in neither the error nor the logs; only the refusal is
// not retried.
func TestPageFailuresKeepTheRoutingKeyOut(t *testing.T) {
	in := NotifyInput{Page: "oncall", PageAction: "trigger", WorkflowID: "rollbook-payments-api", Service: "payments-api", Version: "v3", Phase: "rollback-failed"}
	_, n := pdReceiver(t, http.StatusBadRequest, `{"status":"invalid event","message":"Event object is invalid","errors":["routing_key `+testRoutingKey+` is not valid"]}`)
	logs, err := runNotifyLogged(n, in)
	requireErrType(t, err, ErrInvalid)
	assert.Contains(t, err.Error(), `paging service "oncall" refused the trigger`)
	assert.NotContains(t, err.Error(), testRoutingKey)
	assert.NotContains(t, logs, testRoutingKey)

	_, n = pdReceiver(t, http.StatusInternalServerError, "")
	logs, err = runNotifyLogged(n, in)
	require.Error(t, err)
	typ, _ := errType(err)
	assert.NotEqual(t, ErrInvalid, typ, "a server error is retried")
	assert.NotContains(t, err.Error()+logs, testRoutingKey)

	rcv, n := pdReceiver(t, http.StatusAccepted, pdAccepted)
	rcv.srv.Close()
	logs, err = runNotifyLogged(n, in)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `paging service "oncall": sending the trigger failed`)
	typ, _ = errType(err)
	assert.NotEqual(t, ErrInvalid, typ, "a down receiver is retried")
	assert.NotContains(t, err.Error()+logs, testRoutingKey)
}

func TestPageBadInput(t *testing.T) {
	rcv, n := pdReceiver(t, http.StatusAccepted, pdAccepted)
	_, err := runNotifyLogged(n, NotifyInput{Page: "pager", PageAction: "trigger"})
	requireErrType(t, err, ErrInvalid)
	assert.Contains(t, err.Error(), `unknown paging service "pager" (this worker knows: oncall)`)
	_, err = runNotifyLogged(n, NotifyInput{Page: "oncall", PageAction: "acknowledge"})
	requireErrType(t, err, ErrInvalid)
	_, err = runNotifyLogged(n, NotifyInput{Page: "oncall", Webhook: "slack", PageAction: "trigger"})
	requireErrType(t, err, ErrInvalid)
	assert.Empty(t, rcv.got(), "nothing was sent")
}
