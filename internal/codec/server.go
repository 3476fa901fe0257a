package codec

import (
	"bytes"
	"cmp"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/converter"
)

// Bounds of the codec server. A Temporal payload is at most 2 MB by
// default, and the Web UI sends one event's payloads per request.
const (
	// DefaultMaxRequestBytes bounds one /encode or /decode request body.
	DefaultMaxRequestBytes = 4 << 20
	// DefaultMaxConcurrent bounds requests decoded at the same time; the
	// Web UI sends one request per event, so a burst waits for a slot
	// (DefaultQueueWait) before it is refused with 503.
	DefaultMaxConcurrent = 16
	DefaultQueueWait     = 5 * time.Second
	// DefaultHandlerTimeout bounds one request's handling.
	DefaultHandlerTimeout = 30 * time.Second
)

// ServerOptions configure the codec server's HTTP handler.
type ServerOptions struct {
	// Origins are the Web UI origins (scheme://host[:port]) allowed to call
	// the server from a browser. Empty: no CORS headers, so only non-browser
	// clients (temporal CLI --codec-endpoint) can use it.
	Origins []string
	// Token, when set, is required as "Authorization: Bearer <Token>" on
	// /encode and /decode. Preflight requests never carry it and are
	// answered without it.
	Token string
	// Zero values take the defaults above.
	MaxRequestBytes int64
	MaxConcurrent   int
	QueueWait       time.Duration
	HandlerTimeout  time.Duration
}

// NewHTTPHandler serves Temporal's remote codec protocol — POST
// [/{namespace}]/encode and [/{namespace}]/decode with {"payloads": [...]} —
// plus GET /healthz, with CORS for the configured Web UI origins, an
// optional bearer token, and bounded body size, concurrency and handling
// time.
func NewHTTPHandler(c *Codec, opts ServerOptions) http.Handler {
	return newHandler(converter.NewPayloadCodecHTTPHandler(c), opts)
}

func newHandler(codec http.Handler, opts ServerOptions) http.Handler {
	origins := make([]string, 0, len(opts.Origins))
	for _, o := range opts.Origins {
		if o = strings.TrimRight(strings.TrimSpace(o), "/"); o != "" {
			origins = append(origins, o)
		}
	}
	s := &server{codec: codec, origins: origins, token: opts.Token,
		maxBytes: cmp.Or(opts.MaxRequestBytes, DefaultMaxRequestBytes),
		slots:    make(chan struct{}, cmp.Or(opts.MaxConcurrent, DefaultMaxConcurrent)),
		wait:     cmp.Or(opts.QueueWait, DefaultQueueWait),
	}
	return http.TimeoutHandler(s, cmp.Or(opts.HandlerTimeout, DefaultHandlerTimeout), "codec request took too long\n")
}

// NewServer returns an http.Server for h with every timeout set, so that a
// slow or idle client cannot hold a connection (or a decoding slot) open.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      DefaultHandlerTimeout + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

type server struct {
	codec    http.Handler
	origins  []string
	token    string
	maxBytes int64
	slots    chan struct{}
	wait     time.Duration
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		_, _ = w.Write([]byte("ok\n"))
		return
	}
	origin := r.Header.Get("Origin")
	allowed := origin != "" && slices.Contains(s.origins, origin)
	if allowed {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		// The Web UI's "include cross-origin credentials" setting sends
		// cookies; the answer must allow them or the browser drops it.
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Add("Vary", "Origin")
	}
	if r.Method == http.MethodOptions {
		if !allowed {
			http.Error(w, "origin not allowed (rollbook codec-server --origin)", http.StatusForbidden)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if origin != "" && !allowed {
		// A browser on another site: refuse before decoding anything.
		http.Error(w, "origin not allowed (rollbook codec-server --origin)", http.StatusForbidden)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		http.Error(w, "method not allowed: POST [/{namespace}]/encode or /decode", http.StatusMethodNotAllowed)
		return
	}
	if s.token != "" && !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rollbook codec server"`)
		http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
		return
	}
	if r.ContentLength > s.maxBytes {
		http.Error(w, fmt.Sprintf("request body over %d bytes", s.maxBytes), http.StatusRequestEntityTooLarge)
		return
	}
	t := time.NewTimer(s.wait)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-t.C:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "codec server busy, retry", http.StatusServiceUnavailable)
		return
	case <-r.Context().Done():
		return
	}
	// The body is read whole before decoding: read it here, bounded, so
	// that an oversized chunked body is refused with 413 as well.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("request body over %d bytes", s.maxBytes), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	s.codec.ServeHTTP(w, r)
}

func (s *server) authorized(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(s.token)) == 1
}
