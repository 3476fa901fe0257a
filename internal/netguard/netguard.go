// Package netguard decides where the worker's outgoing HTTP requests may go
// and keeps URL secrets out of the text they produce.
//
// A runbook comes from a pull request, so a check URL it holds is untrusted:
// an Allowlist written by the worker's operator says which hosts such URLs
// may reach, and it is enforced at connect time, on the connection's actual
// peer address (net.Dialer.Control), so that neither DNS rebinding nor an
// HTTP proxy nor a redirect gets around it.
//
// An allowlist entry is one of:
//
//   - an IP address ("127.0.0.1", "::1") or a CIDR ("10.0.0.0/8"): a
//     connection is allowed when the peer's IP lies in it, whatever name the
//     URL used. A runbook's own DNS name that resolves into an allowed range
//     is therefore allowed; one that resolves (or rebinds) anywhere else is
//     refused when it connects.
//   - a hostname ("status.example.com", exact, case-insensitive, no
//     wildcards): a URL naming exactly that host may connect to whatever
//     addresses the name resolves to at the moment of the connection. The
//     trust is in that name's DNS, which the operator controls; the
//     resolution and the connection happen in the same dial, so there is
//     no earlier answer to rebind.
//
// Ports are not restricted: an allowed host is allowed on every port.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// ErrNotAllowed is wrapped by every refusal of a connection or redirect.
var ErrNotAllowed = errors.New("not allowed by the worker's configuration")

// Allowlist is a parsed list of hosts, IPs and CIDRs. The zero value (and
// nil) allows nothing.
type Allowlist struct {
	prefixes []netip.Prefix
	names    map[string]bool
	entries  []string
}

var hostnameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

// ParseAllowlist parses entries (IPs, CIDRs, hostnames). An entry with a
// scheme, a port, a path or a wildcard is an error naming it.
func ParseAllowlist(entries []string) (*Allowlist, error) {
	a := &Allowlist{names: map[string]bool{}}
	for i, e := range entries {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
			return nil, fmt.Errorf("entry %d is empty", i)
		case strings.Contains(e, "/"):
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, fmt.Errorf("entry %q: not an IP, a CIDR or a hostname", e)
			}
			a.prefixes = append(a.prefixes, p.Masked())
		default:
			if ip, err := netip.ParseAddr(e); err == nil {
				ip = ip.WithZone("").Unmap()
				a.prefixes = append(a.prefixes, netip.PrefixFrom(ip, ip.BitLen()))
				break
			}
			name := strings.TrimSuffix(strings.ToLower(e), ".")
			if len(name) > 253 || !hostnameRE.MatchString(name) {
				return nil, fmt.Errorf("entry %q: not an IP, a CIDR or a hostname (no scheme, port or wildcard)", e)
			}
			a.names[name] = true
		}
		a.entries = append(a.entries, e)
	}
	return a, nil
}

// MustAllowlist is ParseAllowlist for entries known to be valid; it panics
// otherwise.
func MustAllowlist(entries ...string) *Allowlist {
	a, err := ParseAllowlist(entries)
	if err != nil {
		panic(err)
	}
	return a
}

// Empty reports whether the list allows nothing.
func (a *Allowlist) Empty() bool { return a == nil || len(a.entries) == 0 }

// String lists the entries, for messages.
func (a *Allowlist) String() string {
	if a.Empty() {
		return "(none)"
	}
	return strings.Join(a.entries, ", ")
}

// AllowsIP reports whether ip lies in an IP or CIDR entry.
func (a *Allowlist) AllowsIP(ip netip.Addr) bool {
	if a == nil {
		return false
	}
	ip = ip.WithZone("").Unmap()
	for _, p := range a.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// AllowsName reports whether host is a hostname entry (IP literals are
// judged by AllowsIP).
func (a *Allowlist) AllowsName(host string) bool {
	if a == nil {
		return false
	}
	return a.names[strings.TrimSuffix(strings.ToLower(host), ".")]
}

// MayReach reports whether a URL host (name or IP literal, no port) can be
// allowed at all: an allowed name or IP, or, when the list has IP ranges, a
// name that may resolve into one. False means every connection would be
// refused, so callers can refuse the URL before sending anything.
func (a *Allowlist) MayReach(host string) bool {
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return a.AllowsIP(ip)
	}
	return a.AllowsName(host) || (a != nil && len(a.prefixes) > 0)
}

// NotAllowedError is a refused connection: the URL's host and the peer
// address it would have connected to.
type NotAllowedError struct {
	Host string
	Peer string
	List string
}

func (e *NotAllowedError) Error() string {
	return fmt.Sprintf("connecting to %s (host %s) refused: not in the allowed hosts (%s)", e.Peer, e.Host, e.List)
}

func (e *NotAllowedError) Unwrap() error { return ErrNotAllowed }

// DialContext connects like net.Dialer.DialContext, refusing, before the
// connection is made, every peer the list does not allow (see the package
// documentation for how names and IPs are judged).
func (a *Allowlist) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	byName := a.AllowsName(host)
	d := net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
		// Control runs for every address the dialer tries, after name
		// resolution and before connect: the address here is the peer.
		Control: func(_, address string, _ syscall.RawConn) error {
			if byName {
				return nil
			}
			h, _, err := net.SplitHostPort(address)
			if err != nil {
				return fmt.Errorf("peer address %q: %w", address, err)
			}
			ip, err := netip.ParseAddr(h)
			if err != nil || !a.AllowsIP(ip) {
				return &NotAllowedError{Host: host, Peer: h, List: a.String()}
			}
			return nil
		},
	}
	return d.DialContext(ctx, network, addr)
}

// Transport returns an HTTP transport that dials through the allowlist and
// never uses a proxy (a proxy would be the peer, and would reach anything).
func (a *Allowlist) Transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = a.DialContext
	t.MaxResponseHeaderBytes = 64 << 10
	return t
}

// Client returns an HTTP client that dials through the allowlist and
// follows redirects only within the original host (SameHostRedirect).
func (a *Allowlist) Client() *http.Client {
	return &http.Client{Transport: a.Transport(), CheckRedirect: SameHostRedirect}
}

// maxRedirects is net/http's default limit.
const maxRedirects = 10

// SameHostRedirect is an http.Client CheckRedirect that follows redirects
// only to the host (and port) of the original request: a URL the operator
// allowed must not lead the worker somewhere else.
func SameHostRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	orig := via[0].URL
	if !strings.EqualFold(req.URL.Host, orig.Host) {
		return fmt.Errorf("redirect from %s to %s refused: only redirects within the same host are followed: %w",
			RedactURL(orig.String()), RedactURL(req.URL.String()), ErrNotAllowed)
	}
	return nil
}

// RedactURL returns raw without user info, query and fragment: these carry
// tokens ("https://hooks.example.com/x?token=…", "http://user:pass@host").
// A URL that does not parse is not echoed at all.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "[unparseable URL]"
	}
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	if u.Opaque != "" {
		return u.Scheme + ":[redacted]"
	}
	s := r.String()
	if u.User != nil {
		s = strings.Replace(s, "://", "://redacted@", 1)
	}
	if u.RawQuery != "" || u.ForceQuery {
		s += "?redacted"
	}
	return s
}

// urlInText matches URLs as net/http, url.Parse and the Prometheus client
// print them in error messages (unquoted or inside quotes).
var urlInText = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>` + "`" + `]+`)

// RedactText replaces every URL in s with its RedactURL form, so that an
// error message quoting a request URL does not carry its credentials or
// query string into history or logs.
func RedactText(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlInText.ReplaceAllStringFunc(s, func(m string) string {
		// A URL at the end of a sentence or inside parentheses: keep the
		// punctuation out of the parse.
		trimmed := strings.TrimRight(m, ".,;:)]}")
		return RedactURL(trimmed) + m[len(trimmed):]
	})
}

// RedactError is RedactText of err's message ("" for nil).
func RedactError(err error) string {
	if err == nil {
		return ""
	}
	return RedactText(err.Error())
}
