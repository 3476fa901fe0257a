package runbook

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A runbook comes from a pull request, and the names it holds travel to
// places that give characters a meaning: HAProxy's runtime API (where ';'
// separates commands), Consul's HTTP API (a name becomes a URL path
// segment), shells of release drivers, log lines, the Web UI, Markdown
// comments. So every name has one strict, ASCII-only syntax, checked
// before anything runs, instead of each consumer escaping in its own way.

// NamePattern is the syntax of every name a runbook holds: service, step,
// route, router, backend, subset, database, endpoint, webhook, Prometheus
// server, check and release target names. It admits what HAProxy, Consul
// and DNS labels all accept (payments_api, be_c_001, stable, canary-2),
// and nothing that a runtime API, URL path, shell or terminal reads as
// syntax.
const NamePattern = `^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`

// ServicePattern is the syntax of the service name, stricter than
// NamePattern: the service becomes the workflow ID (rollbook-<service>)
// and a search attribute value.
const ServicePattern = `^[a-z][a-z0-9-]{0,62}$`

// MaxNameLen is the longest name NamePattern admits.
const MaxNameLen = 63

// ConsulKeyPattern is the syntax of a Consul KV key in a consul step:
// slash-separated segments of printable ASCII (space to '~'), no empty,
// "." or ".." segment, no leading or trailing slash. Keys are at most
// MaxKeyBytes long. (Go's regexp has no look-ahead, so "not . or .." is
// spelled out: a segment starts with a character other than '.', or with
// one '.' and then another character, or with ".." and at least one more.)
const ConsulKeyPattern = `^` + keySegment + `(/` + keySegment + `)*$`

const keySegment = `([ -\-0-~][ -.0-~]*|\.[ -\-0-~][ -.0-~]*|\.\.[ -.0-~]+)`

// VersionPattern is the syntax of the version a bundle deploys: semver
// ("1.2.3", "v1.2.3-rc.1+build.7"), git shas, image tags. No shell
// metacharacters, slashes or spaces, because release drivers may pass it
// to commands. At most MaxVersionLen (128) characters.
const VersionPattern = `^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`

var (
	nameRe      = regexp.MustCompile(NamePattern)
	consulKeyRe = regexp.MustCompile(ConsulKeyPattern)
	versionRe   = regexp.MustCompile(VersionPattern)
)

// ErrName: a name, key or version does not have the required syntax.
var ErrName = errors.New("invalid name")

// CheckName returns nil when value is a valid name (NamePattern), or an
// error wrapping ErrName that names field ("backend", "step name", …),
// quotes the value (escaped and shortened) and says which character is
// wrong.
func CheckName(field, value string) error {
	switch {
	case value == "":
		return fmt.Errorf("%w: %s is required", ErrName, field)
	case nameRe.MatchString(value):
		return nil
	case len(value) > MaxNameLen && utf8.RuneCountInString(value) > MaxNameLen:
		return fmt.Errorf("%w: invalid %s %s: %d characters, at most %d", ErrName, field, quoteShort(value), utf8.RuneCountInString(value), MaxNameLen)
	}
	return fmt.Errorf("%w: invalid %s %s: %s; use letters, digits, '.', '_' and '-', starting with a letter or digit, at most %d characters",
		ErrName, field, quoteShort(value), badChar(value, func(i int, r rune) bool {
			return isAlnum(r) || (i > 0 && (r == '.' || r == '_' || r == '-'))
		}), MaxNameLen)
}

// CheckConsulKey returns nil when key is a valid Consul KV key for a
// consul step (ConsulKeyPattern, at most MaxKeyBytes), or an error
// wrapping ErrName.
func CheckConsulKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: key is empty", ErrName)
	case len(key) > MaxKeyBytes:
		return fmt.Errorf("%w: key %s is %d bytes; the limit is %d", ErrName, quoteShort(key), len(key), MaxKeyBytes)
	case consulKeyRe.MatchString(key):
		return nil
	case strings.HasPrefix(key, "/"):
		return fmt.Errorf("%w: key %s must be relative (no leading /)", ErrName, quoteShort(key))
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w: key %s has an empty segment (// or a trailing /)", ErrName, quoteShort(key))
		case ".", "..":
			return fmt.Errorf("%w: key %s must not contain %q segments", ErrName, quoteShort(key), seg)
		}
	}
	return fmt.Errorf("%w: invalid key %s: %s; keys are printable ASCII", ErrName, quoteShort(key),
		badChar(key, func(_ int, r rune) bool { return r >= ' ' && r <= '~' }))
}

// CheckVersion returns nil when v is a valid deployed version
// (VersionPattern), or an error wrapping ErrName.
func CheckVersion(v string) error {
	switch {
	case v == "":
		return fmt.Errorf("%w: version is required (for example a git tag, a git sha or an image tag)", ErrName)
	case versionRe.MatchString(v):
		return nil
	case len(v) > MaxVersionLen:
		return fmt.Errorf("%w: version is %d bytes; the limit is %d", ErrName, len(v), MaxVersionLen)
	}
	return fmt.Errorf("%w: invalid version %s: %s; use letters, digits, '.', '_', '+' and '-', starting with a letter or digit (such as v1.2.3-rc.1+build.7 or a git sha)",
		ErrName, quoteShort(v), badChar(v, func(i int, r rune) bool {
			return isAlnum(r) || (i > 0 && strings.ContainsRune("._+-", r))
		}))
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

// badChar describes the first rune of s that ok refuses, by position and
// code point, so that an invisible character (U+202E, NEL) is named
// instead of only looking wrong.
func badChar(s string, ok func(i int, r rune) bool) string {
	i := 0
	for off, r := range s {
		if r == utf8.RuneError && !utf8.ValidString(s[off:min(off+utf8.UTFMax, len(s))]) {
			return fmt.Sprintf("invalid UTF-8 at byte %d", off)
		}
		if !ok(i, r) {
			if r > 0x20 && r < 0x7f {
				return fmt.Sprintf("character %q at position %d is not allowed", r, i+1)
			}
			return fmt.Sprintf("character %U at position %d is not allowed", r, i+1)
		}
		i++
	}
	return "not allowed"
}

// quoteShort quotes s Go-style with every non-ASCII character escaped
// (so U+202E or NEL show as \u202e, \u0085) and shortens it to
// maxQuotedRunes, so that a message never echoes a huge or
// terminal-hostile value.
func quoteShort(s string) string {
	p := firstRunes(s, maxQuotedRunes)
	q := fmt.Sprintf("%+q", p)
	// Escapes make the quoted form up to ten times longer than the runes.
	for len(q) > 2*maxQuotedRunes && len(p) > 0 {
		p = firstRunes(p, utf8.RuneCountInString(p)/2)
		q = fmt.Sprintf("%+q", p)
	}
	if len(p) < len(s) {
		q += truncMarker(len(s) - len(p))
	}
	return q
}

// hiddenChar returns a description of the first character in free text
// (a description, a query) that would hide or reorder what a reader sees
// in a terminal, the Web UI or a pull request: control characters other
// than newline and tab, and the bidirectional overrides and isolates of
// "Trojan Source" (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C).
// It returns "" when there is none.
func hiddenChar(s string) string {
	i := 0
	for _, r := range s {
		i++
		switch {
		case r == '\n' || r == '\t':
		case unicode.IsControl(r), r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
			return fmt.Sprintf("character %U at position %d", r, i)
		}
	}
	return ""
}
