package runbook

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. A FieldError wraps one of them when the problem is of a
// kind callers branch on, so errors.Is works through Errors too.
var (
	// ErrEmpty: the file holds nothing but whitespace and comments.
	ErrEmpty = errors.New("runbook is empty")
	// ErrBinary: the file is not text (NUL bytes, invalid UTF-8, control
	// characters).
	ErrBinary = errors.New("runbook is not a text file")
	// ErrTooLarge: the file or bundle exceeds MaxBundleBytes.
	ErrTooLarge = errors.New("too large")
	// ErrSyntax: the file is not valid YAML.
	ErrSyntax = errors.New("YAML syntax error")
	// ErrNotMapping: the top level is not a YAML mapping.
	ErrNotMapping = errors.New("runbook must be a YAML mapping")
	// ErrMultipleDocuments: the file holds more than one YAML document.
	ErrMultipleDocuments = errors.New("runbook must be a single YAML document")
	// ErrAliasBomb: alias expansion would exceed the node budget.
	ErrAliasBomb = errors.New("YAML alias expansion too large")
	// ErrHashMismatch: a bundle's content does not hash to its Hash.
	ErrHashMismatch = errors.New("bundle hash mismatch")
)

// FieldError is one problem in a runbook, located by file, line and the
// dotted path of the field (steps[2].traffic.weights.canary).
type FieldError struct {
	File string
	// Line is 1-based; 0 when unknown (a runbook that did not come from
	// YAML, such as a bundle).
	Line int
	// Path is the dotted field path; empty for file-level problems.
	Path string
	Msg  string
	// Err is an optional sentinel this error is an instance of.
	Err error
}

// Error renders file:line: path: message, leaving out the parts that are
// unknown.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		// A map key is part of the path, so the path is as long as the
		// longest key the author wrote.
		b.WriteString(truncateRunes(e.Path, maxPathRunes))
		b.WriteString(": ")
	}
	b.WriteString(clip(e.Msg))
	return b.String()
}

// Unwrap returns the sentinel, if any.
func (e *FieldError) Unwrap() error { return e.Err }

// Errors is every problem found in one runbook or bundle. It is returned as
// an error only when non-empty.
type Errors []*FieldError

// Error joins the errors, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the individual errors to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// err returns es as an error, or nil when there is nothing to report (so a
// nil Errors never becomes a non-nil error interface).
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es.bounded()
}

// clip shortens msg to maxMsgRunes (rune-safe, with a marker saying how
// much was cut), so a message stays readable when it quotes a huge value.
func clip(msg string) string { return truncateRunes(msg, maxMsgRunes) }

// fileError is a problem with the file as a whole.
func fileError(file string, line int, sentinel error, format string, args ...any) Errors {
	return Errors{{File: file, Line: line, Msg: fmt.Sprintf(format, args...), Err: sentinel}}
}
