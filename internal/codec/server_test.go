package codec

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"
)

const uiOrigin = "http://127.0.0.1:8233"

func newServer(t *testing.T, token string) (*httptest.Server, *Codec) {
	t.Helper()
	c := mustCodec(t, "k1", map[string][]byte{"k1": newKey(t)})
	srv := httptest.NewServer(NewHTTPHandler(c, ServerOptions{Origins: []string{uiOrigin + "/"}, Token: token}))
	t.Cleanup(srv.Close)
	return srv, c
}

func payloadsBody(t *testing.T, ps ...*commonpb.Payload) []byte {
	t.Helper()
	b, err := protojson.Marshal(&commonpb.Payloads{Payloads: ps})
	require.NoError(t, err)
	return b
}

func post(t *testing.T, url string, body []byte, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func decodeResponse(t *testing.T, resp *http.Response) []*commonpb.Payload {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	var out commonpb.Payloads
	require.NoError(t, protojson.Unmarshal(b, &out))
	return out.Payloads
}

func TestServerDecodesWhatTheCodecEncoded(t *testing.T) {
	srv, c := newServer(t, "")
	plain, err := converter.GetDefaultDataConverter().ToPayload(map[string]string{"reason": "canary 5xx"})
	require.NoError(t, err)
	enc, err := c.Encode([]*commonpb.Payload{plain})
	require.NoError(t, err)

	// The Web UI calls /{namespace}/decode or /decode with X-Namespace.
	for _, path := range []string{"/decode", "/default/decode"} {
		resp := post(t, srv.URL+path, payloadsBody(t, enc...), map[string]string{"X-Namespace": "default", "Origin": uiOrigin})
		assert.Equal(t, uiOrigin, resp.Header.Get("Access-Control-Allow-Origin"))
		assert.Equal(t, "true", resp.Header.Get("Access-Control-Allow-Credentials"))
		got := decodeResponse(t, resp)
		require.Len(t, got, 1)
		assert.JSONEq(t, `{"reason":"canary 5xx"}`, string(got[0].Data))
		assert.Equal(t, "json/plain", string(got[0].Metadata["encoding"]))
	}

	// /encode (the Web UI uses it for signal input) round-trips too.
	resp := post(t, srv.URL+"/encode", payloadsBody(t, plain), nil)
	encoded := decodeResponse(t, resp)
	require.Len(t, encoded, 1)
	assert.Equal(t, MetadataEncodingEncrypted, string(encoded[0].Metadata["encoding"]))
	back, err := c.Decode(encoded)
	require.NoError(t, err)
	assert.Equal(t, plain.Data, back[0].Data)
}

func TestServerCORSPreflight(t *testing.T) {
	srv, _ := newServer(t, "secret-token")
	preflight := func(origin string) *http.Response {
		req, err := http.NewRequest(http.MethodOptions, srv.URL+"/decode", nil)
		require.NoError(t, err)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type,x-namespace,authorization")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	// Allowed origin: answered without the token (browsers never send it
	// on a preflight).
	resp := preflight(uiOrigin)
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, uiOrigin, resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Equal(t, "true", resp.Header.Get("Access-Control-Allow-Credentials"))
	assert.Contains(t, resp.Header.Get("Access-Control-Allow-Methods"), "POST")
	for _, h := range []string{"Content-Type", "X-Namespace", "Authorization"} {
		assert.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), h)
	}

	resp = preflight("http://evil.example")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
}

func TestServerBearerAuth(t *testing.T) {
	srv, c := newServer(t, "secret-token")
	enc, err := c.Encode([]*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"x"`)}})
	require.NoError(t, err)
	body := payloadsBody(t, enc...)

	for name, hdr := range map[string]map[string]string{
		"no header":    nil,
		"wrong token":  {"Authorization": "Bearer nope"},
		"basic scheme": {"Authorization": "Basic secret-token"},
	} {
		resp := post(t, srv.URL+"/decode", body, hdr)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, name)
		assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "Bearer", name)
		b, _ := io.ReadAll(resp.Body)
		assert.NotContains(t, string(b), `"x"`, name)
	}
	// The 401 still carries CORS headers so the Web UI can show why.
	resp := post(t, srv.URL+"/decode", body, map[string]string{"Origin": uiOrigin})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, uiOrigin, resp.Header.Get("Access-Control-Allow-Origin"))

	got := decodeResponse(t, post(t, srv.URL+"/decode", body, map[string]string{"Authorization": "bearer secret-token"}))
	assert.Equal(t, `"x"`, string(got[0].Data))
}

func TestServerRefusals(t *testing.T) {
	srv, _ := newServer(t, "")
	// Another site's page calling from a browser.
	resp := post(t, srv.URL+"/decode", payloadsBody(t), map[string]string{"Origin": "http://evil.example"})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)

	resp, err := http.Get(srv.URL + "/decode")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	resp = post(t, srv.URL+"/decode", []byte("{not json"), nil)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// A payload sealed with a key the server does not hold.
	other := mustCodec(t, "gone", map[string][]byte{"gone": newKey(t)})
	enc, err := other.Encode([]*commonpb.Payload{{Data: []byte("x")}})
	require.NoError(t, err)
	resp = post(t, srv.URL+"/decode", payloadsBody(t, enc...), nil)
	b, _ := io.ReadAll(resp.Body)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, string(b), `unknown key "gone"`)

	resp, err = http.Get(srv.URL + "/healthz")
	require.NoError(t, err)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ok", strings.TrimSpace(string(b)))
}
