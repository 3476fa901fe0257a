package codec

import (
	"crypto/subtle"
	"net/http"
	"slices"
	"strings"

	"go.temporal.io/sdk/converter"
)

// maxRequestBytes bounds one /encode or /decode request. Temporal refuses
// payloads above 2 MB; the Web UI sends one event's payloads at a time.
const maxRequestBytes = 16 << 20

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
}

// NewHTTPHandler serves Temporal's remote codec protocol — POST
// [/{namespace}]/encode and [/{namespace}]/decode with {"payloads": [...]} —
// plus GET /healthz, with CORS for the configured Web UI origins and an
// optional bearer token.
func NewHTTPHandler(c *Codec, opts ServerOptions) http.Handler {
	origins := make([]string, 0, len(opts.Origins))
	for _, o := range opts.Origins {
		if o = strings.TrimRight(strings.TrimSpace(o), "/"); o != "" {
			origins = append(origins, o)
		}
	}
	return &server{codec: converter.NewPayloadCodecHTTPHandler(c), origins: origins, token: opts.Token}
}

type server struct {
	codec   http.Handler
	origins []string
	token   string
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
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBytes)
	s.codec.ServeHTTP(w, r)
}

func (s *server) authorized(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(s.token)) == 1
}
