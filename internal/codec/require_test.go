package codec

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
)

func TestRequireEncryptionRefusesPlaintext(t *testing.T) {
	c := mustCodec(t, "k1", map[string][]byte{"k1": newKey(t)})
	plainDC := converter.GetDefaultDataConverter()
	plain, err := plainDC.ToPayloads(secret{SQL: "DROP TABLE x", Reason: "r"})
	require.NoError(t, err)
	null, err := plainDC.ToPayloads(nil)
	require.NoError(t, err)

	// Default: plaintext passes (histories from before encryption).
	var got secret
	require.NoError(t, c.DataConverter().FromPayloads(plain, &got))
	assert.Equal(t, "DROP TABLE x", got.SQL)

	r := c.RequireEncryption()
	assert.True(t, r.RequiresEncryption())
	assert.False(t, c.RequiresEncryption(), "the original codec is unchanged")
	_, err = r.Decode(plain.Payloads)
	require.ErrorIs(t, err, ErrPlaintext)
	assert.Contains(t, err.Error(), `encoding "json/plain"`)

	dc := r.DataConverter()
	got = secret{}
	err = dc.FromPayloads(plain, &got)
	require.ErrorIs(t, err, ErrPlaintext, "a plaintext workflow input is an error")
	assert.Empty(t, got.SQL)
	err = dc.FromPayload(plain.Payloads[0], &got)
	require.ErrorIs(t, err, ErrPlaintext)

	// What the worker encrypted itself still decodes, and so does a null
	// payload (an absent value carries nothing).
	enc, err := dc.ToPayloads(secret{SQL: "ok"})
	require.NoError(t, err)
	got = secret{}
	require.NoError(t, dc.FromPayloads(enc, &got))
	assert.Equal(t, "ok", got.SQL)
	var v *secret
	require.NoError(t, dc.FromPayloads(null, &v))
	assert.Nil(t, v)

	// A plaintext signal (received as RawValue) becomes a data-less payload
	// of encoding EncodingRefused instead of an error the SDK would drop.
	var raw converter.RawValue
	require.NoError(t, dc.FromPayloads(plain, &raw))
	assert.Equal(t, EncodingRefused, string(raw.Payload().GetMetadata()[converter.MetadataEncoding]))
	assert.Empty(t, raw.Payload().GetData(), "the plaintext content does not reach the workflow")
	require.NoError(t, dc.FromPayload(plain.Payloads[0], &raw))
	assert.Equal(t, EncodingRefused, string(raw.Payload().GetMetadata()[converter.MetadataEncoding]))
	require.NoError(t, dc.FromPayloads(enc, &raw))
	assert.Equal(t, converter.MetadataEncodingJSON, string(raw.Payload().GetMetadata()[converter.MetadataEncoding]), "an encrypted signal decodes")

	// The per-workflow converter the SDK derives keeps the refusal.
	wdc, ok := dc.(converter.DataConverterWithSerializationContext)
	require.True(t, ok)
	derived := wdc.WithSerializationContext(converter.WorkflowSerializationContext{Namespace: "default", WorkflowID: "w"})
	require.ErrorIs(t, derived.FromPayloads(plain, &got), ErrPlaintext)
}

func TestCheckKeyFileMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "keys")
	require.NoError(t, os.WriteFile(p, []byte("k1:"+strings.Repeat("ab", 32)), 0o600))
	require.NoError(t, CheckKeyFileMode(p))
	require.NoError(t, os.Chmod(p, 0o644))
	err := CheckKeyFileMode(p)
	require.ErrorIs(t, err, ErrKeyFileExposed)
	assert.Contains(t, err.Error(), "0644")
	require.NoError(t, os.Chmod(p, 0o640))
	require.ErrorIs(t, CheckKeyFileMode(p), ErrKeyFileExposed)
	err = CheckKeyFileMode(filepath.Join(t.TempDir(), "missing"))
	require.Error(t, err)
	require.False(t, errors.Is(err, ErrKeyFileExposed))
}

func TestServerBoundsBodySize(t *testing.T) {
	c := mustCodec(t, "k1", map[string][]byte{"k1": newKey(t)})
	srv := httptest.NewServer(NewHTTPHandler(c, ServerOptions{MaxRequestBytes: 1024}))
	defer srv.Close()
	resp := post(t, srv.URL+"/decode", []byte(`{"payloads":[{"data":"`+strings.Repeat("A", 2000)+`"}]}`), nil)
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)

	// Chunked (no Content-Length): refused while reading.
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte(`{"payloads":[{"data":"` + strings.Repeat("A", 4000) + `"}]}`))
		pw.Close()
	}()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/decode", pr)
	require.NoError(t, err)
	r2, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	r2.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, r2.StatusCode)
}

func TestServerBoundsConcurrencyAndTime(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	inside := 0
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inside++
		mu.Unlock()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	})
	srv := httptest.NewServer(newHandler(slow, ServerOptions{MaxConcurrent: 2, QueueWait: 100 * time.Millisecond, HandlerTimeout: 5 * time.Second}))
	defer srv.Close()
	var wg sync.WaitGroup
	codes := make(chan int, 2)
	for range 2 {
		wg.Go(func() {
			resp := post(t, srv.URL+"/decode", []byte(`{}`), nil)
			codes <- resp.StatusCode
		})
	}
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return inside == 2 }, 5*time.Second, 10*time.Millisecond)
	resp := post(t, srv.URL+"/decode", []byte(`{}`), nil)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "a third request waits QueueWait, then 503")
	close(release)
	wg.Wait()
	close(codes)
	for c := range codes {
		assert.Equal(t, http.StatusOK, c)
	}

	// A handler that never answers is cut off at HandlerTimeout.
	stuck := httptest.NewServer(newHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }),
		ServerOptions{HandlerTimeout: 200 * time.Millisecond}))
	defer stuck.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, stuck.URL+"/decode", strings.NewReader(`{}`))
	r, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	r.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, r.StatusCode)

	s := NewServer(http.NotFoundHandler())
	for name, d := range map[string]time.Duration{"ReadHeaderTimeout": s.ReadHeaderTimeout, "ReadTimeout": s.ReadTimeout, "WriteTimeout": s.WriteTimeout, "IdleTimeout": s.IdleTimeout} {
		assert.Positive(t, d, name)
	}
	assert.Greater(t, s.WriteTimeout, DefaultHandlerTimeout, "the handler's own timeout answers first")
}
