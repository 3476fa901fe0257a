package activities

import (
	"fmt"
	"unicode/utf8"
)

// maxEcho bounds how much of one input (a key, a name, a query, a URL) an
// error message or a measurement quotes: the input comes from a runbook
// and may be huge, while the message lands in history, status and logs.
const maxEcho = 200

// clip returns s cut to at most n bytes on a rune boundary, saying how
// much was left out, so that the quoted part is still valid UTF-8.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d more bytes)", s[:cut], len(s)-cut)
}
