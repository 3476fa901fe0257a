package runbook

import (
	"fmt"
	"unicode/utf8"
)

// Limits on the amount of work a runbook can ask for. A runbook comes from a
// pull request; without them, a 900 KB file could ask the worker for
// 10,000 checks of 100 requests each every second. Each is far above what
// a real deployment needs. (MaxHTTPSamples, MaxConsulOps, MaxKeyBytes,
// MaxValueBytes and MaxSteps are the others.)
const (
	// MaxChecks bounds the checks of one verify step, of the background
	// analysis and of the rollback verification.
	MaxChecks = 20
	// MaxRoutes bounds the routes a runbook declares.
	MaxRoutes = 16
	// MaxSubsets bounds the subsets (servers) of one route.
	MaxSubsets = 16
	// MaxQueryBytes bounds a Prometheus query.
	MaxQueryBytes = 4096
	// MaxURLBytes bounds an http check's url, and its endpoint path.
	MaxURLBytes = 2048
	// MaxDescriptionBytes bounds the runbook's description.
	MaxDescriptionBytes = 4096
)

// Bounds on what messages echo back. A message quotes the value it is about
// so that the author finds it, but never a huge one: it would flood CI logs,
// workflow history and the Web UI.
const (
	// maxQuotedRunes bounds a value quoted inside a message.
	maxQuotedRunes = 80
	// maxMsgRunes bounds a whole message.
	maxMsgRunes = 400
	// maxPathRunes bounds a field path (a map key is part of its path).
	maxPathRunes = 160
	// MaxReportedErrors bounds the problems reported for one runbook or
	// bundle; the rest are counted in one last line.
	MaxReportedErrors = 100
)

// firstRunes returns the longest prefix of s holding at most n runes; it
// never splits a UTF-8 sequence.
func firstRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	off := 0
	for i := 0; i < n && off < len(s); i++ {
		_, size := utf8.DecodeRuneInString(s[off:])
		off += size
	}
	return s[:off]
}

// truncMarker says how much of a value was left out.
func truncMarker(dropped int) string {
	return fmt.Sprintf("…[%d more bytes]", dropped)
}

// truncateRunes shortens s to n runes plus a marker saying how much was
// cut; s is returned unchanged when it is short enough.
func truncateRunes(s string, n int) string {
	p := firstRunes(s, n)
	if len(p) == len(s) {
		return s
	}
	return p + truncMarker(len(s)-len(p))
}

// bounded keeps the first MaxReportedErrors problems and replaces the rest
// by one line that counts them (at the line of the first one left out, so
// that it still reads file:line:).
func (es Errors) bounded() Errors {
	if len(es) <= MaxReportedErrors {
		return es
	}
	rest := es[MaxReportedErrors]
	out := append(Errors(nil), es[:MaxReportedErrors]...)
	return append(out, &FieldError{File: rest.File, Line: rest.Line,
		Msg: fmt.Sprintf("%d more problems not shown (only the first %d are reported)", len(es)-MaxReportedErrors, MaxReportedErrors)})
}
