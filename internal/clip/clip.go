// Package clip shortens text that is echoed into errors, history, status and
// logs, without ever splitting a UTF-8 sequence. Every place that bounds a
// quoted string uses it, so the rule (cut on a rune boundary, say that
// something was cut) is written once.
package clip

import (
	"fmt"
	"unicode/utf8"
)

// Prefix returns the longest prefix of s of at most n bytes that does not
// split a UTF-8 sequence; s itself when it is short enough.
func Prefix(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n < 0 {
		n = 0
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// Ellipsis returns s cut to at most n bytes (plus the ellipsis) on a rune
// boundary, followed by "…" when something was cut.
func Ellipsis(s string, n int) string {
	p := Prefix(s, n)
	if len(p) == len(s) {
		return s
	}
	return p + "…"
}

// Bytes returns s cut to at most n bytes on a rune boundary, saying how many
// bytes were left out: "…(12 more bytes)".
func Bytes(s string, n int) string {
	p := Prefix(s, n)
	if len(p) == len(s) {
		return s
	}
	return fmt.Sprintf("%s…(%d more bytes)", p, len(s)-len(p))
}
