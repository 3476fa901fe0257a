package release_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/internal/release"
	"github.com/rollbook/rollbook/internal/release/deployertest"
)

func newHTTP(t *testing.T, url, token string) *release.HTTP {
	t.Helper()
	h, err := release.NewHTTP("paas", release.HTTPConfig{URL: url, Token: token, PollInterval: 20 * time.Millisecond,
		DeployTimeout: 2 * time.Second, Wait: release.WaitPolicy{Timeout: 500 * time.Millisecond, Interval: 20 * time.Millisecond}})
	require.NoError(t, err)
	return h
}

// The deployer starts the deploy and the answer is lost (502): the retry
// with the same idempotency key gets the same deployment, so the target is
// deployed once. A new key deploys again.
func TestHTTPDeployFailsOnceThenSucceedsWithoutDoubleDeploy(t *testing.T) {
	d := deployertest.New(map[string]string{"canary": "v1"})
	defer d.Close()
	d.Token = "s3cret"
	d.SetPollsToFinish(3)
	h := newHTTP(t, d.URL, "s3cret")
	ctx := context.Background()

	v, err := h.Current(ctx, "canary")
	require.NoError(t, err)
	assert.Equal(t, "v1", v)

	d.FailNextPOSTs(1)
	req := release.Request{Target: "canary", Version: "v2", Key: "rollbook-pay/run-1/release-canary/apply"}
	err = h.Deploy(ctx, req)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "502 Bad Gateway")
	assert.False(t, errors.Is(err, release.ErrRejected), "a 502 is worth retrying")
	assert.Equal(t, 1, d.Deploys("canary"), "the deployer started the deploy before the answer was lost")

	var progress []string
	req.Progress = func(s string) { progress = append(progress, s) }
	require.NoError(t, h.Deploy(ctx, req))
	assert.Equal(t, 1, d.Deploys("canary"), "the retry with the same key did not deploy twice")
	assert.Equal(t, "v2", d.Version("canary"))
	assert.NotEmpty(t, progress, "polls report progress for the heartbeat")
	require.NoError(t, release.WaitHealthy(ctx, h, "canary", "v2", nil))

	// The compensation uses its own key: a real second deploy.
	require.NoError(t, h.Deploy(ctx, release.Request{Target: "canary", Version: "v1", Key: "rollbook-pay/run-1/release-canary/restore/1"}))
	assert.Equal(t, 2, d.Deploys("canary"))
	assert.Equal(t, "v1", d.Version("canary"))
}

func TestHTTPDeploymentFails(t *testing.T) {
	d := deployertest.New(map[string]string{"canary": "v1"})
	defer d.Close()
	d.FailVersion("v3", "image pull back-off: v3 not found")
	h := newHTTP(t, d.URL, "")
	err := h.Deploy(context.Background(), release.Request{Target: "canary", Version: "v3", Key: "k3"})
	require.ErrorIs(t, err, release.ErrFailed)
	assert.Contains(t, err.Error(), "image pull back-off: v3 not found")
	assert.Equal(t, "v1", d.Version("canary"))
}

func TestHTTPHealthWaitTimesOut(t *testing.T) {
	d := deployertest.New(map[string]string{"canary": "v1"})
	defer d.Close()
	d.Unhealthy("v4")
	h := newHTTP(t, d.URL, "")
	ctx := context.Background()
	require.NoError(t, h.Deploy(ctx, release.Request{Target: "canary", Version: "v4", Key: "k4"}))
	err := release.WaitHealthy(ctx, h, "canary", "v4", nil)
	require.ErrorIs(t, err, release.ErrTimeout)
	assert.Contains(t, err.Error(), "0/2 instances of v4 ready")
}

func TestHTTPRefusals(t *testing.T) {
	d := deployertest.New(map[string]string{"canary": "v1"})
	defer d.Close()
	d.Token = "right"
	ctx := context.Background()

	_, err := newHTTP(t, d.URL, "wrong").Current(ctx, "canary")
	require.ErrorIs(t, err, release.ErrRejected)
	assert.Contains(t, err.Error(), "401")
	assert.NotContains(t, err.Error(), "wrong", "the token is never in an error")

	h := newHTTP(t, d.URL, "right")
	_, err = h.Current(ctx, "stable")
	require.ErrorIs(t, err, release.ErrRejected)
	assert.Contains(t, err.Error(), "unknown target stable")

	// A key used before for another version is never taken for ours.
	require.NoError(t, h.Deploy(ctx, release.Request{Target: "canary", Version: "v2", Key: "same"}))
	err = h.Deploy(ctx, release.Request{Target: "canary", Version: "v5", Key: "same"})
	require.ErrorIs(t, err, release.ErrRejected)
	assert.Equal(t, "v2", d.Version("canary"))

	// Versions and target names are checked before any request.
	before := len(d.Requests())
	for _, r := range []release.Request{
		{Target: "canary", Version: "v2;reboot", Key: "k"},
		{Target: "../admin", Version: "v2", Key: "k"},
		{Target: "canary", Version: "v2"},
	} {
		assert.ErrorIs(t, h.Deploy(ctx, r), release.ErrRejected, "%+v", r)
	}
	assert.Len(t, d.Requests(), before, "nothing was sent")
}

// Target names are escaped segment by segment: a name can never add a
// path level on the deployer.
func TestHTTPEscapesPathSegments(t *testing.T) {
	d := deployertest.New(map[string]string{"canary": "v1"})
	defer d.Close()
	h := newHTTP(t, d.URL+"/", "")
	_, err := h.Current(context.Background(), "x/../../admin?all=1")
	require.ErrorIs(t, err, release.ErrRejected)
	reqs := d.Requests()
	assert.Equal(t, "GET /targets/x%2F..%2F..%2Fadmin%3Fall=1", reqs[len(reqs)-1])
}

// Answers are read up to a bound; a deployer's huge or non-JSON answer is
// an error, and redirects are not followed (they could carry the token).
func TestHTTPBoundedAndNoRedirects(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big/targets/canary":
			w.Write([]byte(`{"version":"` + strings.Repeat("a", 1<<20) + `"}`))
		case "/html/targets/canary":
			w.Write([]byte("<html>login</html>"))
		case "/redirect/targets/canary":
			http.Redirect(w, r, "http://elsewhere.invalid/steal", http.StatusFound)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	_, err := newHTTP(t, srv.URL+"/big", "").Current(ctx, "canary")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "larger than 65536 bytes")
	_, err = newHTTP(t, srv.URL+"/html", "").Current(ctx, "canary")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not the expected JSON")
	_, err = newHTTP(t, srv.URL+"/redirect", "t").Current(ctx, "canary")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "302 Found")
}

func TestNewHTTPRefusesBadURL(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "http://user:pw@x", "http://x/?q=1", "deployer:8080"} {
		_, err := release.NewHTTP("paas", release.HTTPConfig{URL: u})
		assert.Error(t, err, u)
		if err != nil {
			assert.NotContains(t, err.Error(), "pw", "credentials are not echoed")
		}
	}
}
