package activities

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
)

func TestNotifyPostsSlackCompatibleJSON(t *testing.T) {
	var got Message
	var ctype string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctype = r.Header.Get("Content-Type")
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &got)
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	n, err := NewNotifier(map[string]string{"slack": srv.URL + "/hooks/T000/B000/secret"}, nil)
	require.NoError(t, err)
	in := NotifyInput{Webhook: "slack", Service: "payments-api", Version: "v3", Phase: "rolling-back", Step: "verify-10",
		Reason: "check canary-errors failed", At: time.Unix(0, 0).UTC()}
	err = runNotify(n, in)
	require.NoError(t, err)
	assert.Equal(t, "application/json", ctype)
	assert.Equal(t, "rollbook: *payments-api* v3 is *rolling-back* (step `verify-10`): check canary-errors failed", got.Text)
	assert.Equal(t, "rolling-back", got.Rollbook.Phase)
}

func runNotify(n *Notifier, in NotifyInput) error {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(n)
	_, err := env.ExecuteActivity(n.Notify, in)
	return err
}

func TestNotifyErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "nope", 500) }))
	defer srv.Close()
	n, err := NewNotifier(map[string]string{"slack": srv.URL}, nil)
	require.NoError(t, err)
	err = runNotify(n, NotifyInput{Webhook: "slack"})
	require.ErrorContains(t, err, `webhook "slack" answered 500`)
	err = runNotify(n, NotifyInput{Webhook: "teams"})
	requireErrType(t, err, ErrInvalid)
	_, err = NewNotifier(map[string]string{"x": "ftp://example"}, nil)
	require.Error(t, err)
}
