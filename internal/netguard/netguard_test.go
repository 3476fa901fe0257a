package netguard

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseAllowlist(t *testing.T) {
	a, err := ParseAllowlist([]string{"127.0.0.1", "10.0.0.0/8", "Status.Example.com.", "::1"})
	require.NoError(t, err)
	assert.True(t, a.AllowsIP(netip.MustParseAddr("127.0.0.1")))
	assert.True(t, a.AllowsIP(netip.MustParseAddr("::ffff:127.0.0.1")), "IPv4-mapped form is the same peer")
	assert.True(t, a.AllowsIP(netip.MustParseAddr("10.200.1.1")))
	assert.True(t, a.AllowsIP(netip.MustParseAddr("::1")))
	assert.False(t, a.AllowsIP(netip.MustParseAddr("127.0.0.2")))
	assert.False(t, a.AllowsIP(netip.MustParseAddr("11.0.0.1")))
	assert.True(t, a.AllowsName("status.example.com"))
	assert.False(t, a.AllowsName("evil.status.example.com"))
	assert.True(t, a.MayReach("127.0.0.1"))
	assert.False(t, a.MayReach("192.168.1.1"))
	assert.True(t, a.MayReach("elsewhere.example.org"), "a name may resolve into an allowed range; judged at connect")
	assert.False(t, MustAllowlist("status.example.com").MayReach("elsewhere.example.org"))
	assert.False(t, (*Allowlist)(nil).MayReach("127.0.0.1"))

	for _, bad := range []string{"", "http://x", "x:80", "*.example.com", "10.0.0.0/33", "a b", "exa_mple.com"} {
		_, err := ParseAllowlist([]string{bad})
		assert.Error(t, err, bad)
	}
}

func TestDialRefusesPeersOutsideTheList(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port

	get := func(a *Allowlist, url string) error {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
		resp, err := a.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	require.NoError(t, get(MustAllowlist("127.0.0.0/8"), srv.URL))
	// "localhost" is not listed by name, but its peer address is.
	require.NoError(t, get(MustAllowlist("127.0.0.1"), "http://localhost:"+strconv.Itoa(port)))
	require.NoError(t, get(MustAllowlist("localhost"), "http://localhost:"+strconv.Itoa(port)), "a listed name may connect to what it resolves to")

	err := get(MustAllowlist("10.0.0.0/8"), srv.URL)
	require.Error(t, err)
	require.True(t, errors.Is(err, ErrNotAllowed), "%v", err)
	require.Contains(t, err.Error(), "127.0.0.1")
	// A name that is not listed is judged on its peer IP: refused here.
	require.ErrorIs(t, get(MustAllowlist("10.0.0.0/8", "status.example.com"), "http://localhost:"+strconv.Itoa(port)), ErrNotAllowed)
	require.ErrorIs(t, get(nil, srv.URL), ErrNotAllowed)

	// A proxy from the environment would be the peer: never used.
	t.Setenv("HTTP_PROXY", srv.URL)
	require.ErrorIs(t, get(MustAllowlist("127.0.0.1"), "http://192.0.2.1:9/"), ErrNotAllowed)
}

func TestSameHostRedirect(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer other.Close()
	var srvURL string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/away":
			http.Redirect(w, r, other.URL+"/x?token=s3cret", http.StatusFound)
		case "/ok":
			w.WriteHeader(http.StatusTeapot)
		}
	}))
	defer srv.Close()
	srvURL = srv.URL
	c := MustAllowlist("127.0.0.1").Client()
	resp, err := c.Get(srvURL + "/same")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusTeapot, resp.StatusCode, "a same-host redirect is followed")

	_, err = c.Get(srvURL + "/away")
	require.ErrorIs(t, err, ErrNotAllowed)
	require.NotContains(t, RedactError(err), "s3cret", "callers redact the client's url.Error text")
}

func TestRedact(t *testing.T) {
	assert.Equal(t, "https://redacted@h.example:8443/p/q?redacted", RedactURL("https://u:pw@h.example:8443/p/q?token=abc#frag"))
	assert.Equal(t, "http://h/x", RedactURL("http://h/x"))
	assert.Equal(t, "[unparseable URL]", RedactURL("http://u:pw@h:bad/"))

	msg := `Get "http://admin:***@10.0.0.1:9090/api/v1/query?token=s3cret": dial tcp: refused; see (http://x/?k=v).`
	got := RedactText(msg)
	assert.NotContains(t, got, "s3cret")
	assert.NotContains(t, got, "admin")
	assert.NotContains(t, got, "k=v")
	assert.Contains(t, got, `Get "http://redacted@10.0.0.1:9090/api/v1/query?redacted": dial tcp: refused; see (http://x/?redacted).`)
	assert.Equal(t, "", RedactError(nil))
}

func TestRedactTextIsIdempotent(t *testing.T) {
	once := RedactText(`Get "http://u:***@h:1/p?token=x": refused`)
	require.Equal(t, once, RedactText(once))
	require.Equal(t, `Get "http://redacted@h:1/p?redacted": refused`, once)
}
