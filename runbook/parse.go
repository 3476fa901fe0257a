package runbook

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"sort"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
)

// Parse decodes a runbook strictly and validates everything that can be
// checked without the file system (Load adds the migration folder checks).
// file names the runbook in messages.
//
// On failure it returns nil and an Errors holding every problem found, each
// with the file, line and field path. Problems with the file as a whole wrap
// ErrTooLarge, ErrBinary, ErrEmpty, ErrSyntax, ErrNotMapping,
// ErrMultipleDocuments or ErrAliasBomb.
func Parse(file string, data []byte) (*Runbook, error) {
	rb, _, errs := parse(file, data, nil)
	errs = atLine1(errs)
	if len(errs) > 0 {
		return nil, errs
	}
	return rb, nil
}

// parse returns the runbook (possibly partial when there are errors), the
// line of every field path, and the problems found. src, when not nil,
// enables the migration folder checks.
func parse(file string, data []byte, src migrationSource) (*Runbook, positions, Errors) {
	if len(data) > MaxBundleBytes {
		return nil, nil, sizeError(file, int64(len(data)))
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if errs := checkText(file, data); errs != nil {
		return nil, nil, errs
	}
	body, errs := parseDocument(file, data)
	if errs != nil {
		return nil, nil, errs
	}
	aliases, errs := resolveAliases(file, body)
	if errs != nil {
		return nil, nil, errs
	}
	d := &decoder{file: file, aliases: aliases, pos: positions{"": nodeLine(body)}}
	var rb Runbook
	d.decode(body, reflect.ValueOf(&rb).Elem(), "", 1, 0)

	// Semantic errors below a field that did not decode would only repeat
	// the decoding error in other words, so they are left out.
	c := &checker{file: file, pos: d.pos, src: src}
	c.runbook(&rb)
	errs = d.errs
	for _, e := range c.errs {
		if !belowAny(e.Path, d.errs) && !d.incomplete[e.Path] {
			errs = append(errs, e)
		}
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
	return &rb, d.pos, errs.bounded()
}

// atLine1 gives file-level errors without a position line 1, so that every
// message of a parsed file has the file:line: form editors and CI
// annotations understand.
func atLine1(errs Errors) Errors {
	for _, e := range errs {
		if e.Line == 0 {
			e.Line = 1
		}
	}
	return errs
}

func belowAny(path string, errs Errors) bool {
	for _, e := range errs {
		if e.Path != "" && under(path, e.Path) {
			return true
		}
	}
	return false
}

// parseDocument parses data as exactly one YAML document whose top level is
// a mapping, and returns that mapping.
func parseDocument(file string, data []byte) (body ast.Node, errs Errors) {
	defer func() {
		// The parser is third-party code fed untrusted input; a panic in it
		// must become a clear refusal, not a crashed CLI or worker.
		if r := recover(); r != nil {
			body, errs = nil, fileError(file, 0, ErrSyntax, "YAML parser failed: %v", r)
		}
	}()
	// Duplicate keys are allowed here only so that the decoder can report
	// all of them (with both lines) instead of the parser stopping at one.
	tokens := lexer.Tokenize(string(data))
	if errs := prescan(file, tokens); errs != nil {
		return nil, errs
	}
	f, err := parser.Parse(tokens, 0, parser.AllowDuplicateMapKey())
	if err != nil {
		return nil, syntaxError(file, err)
	}
	var docs []*ast.DocumentNode
	for _, doc := range f.Docs {
		if doc != nil && doc.Body != nil {
			docs = append(docs, doc)
		}
	}
	switch {
	case len(docs) == 0:
		return nil, fileError(file, 0, ErrEmpty, "file is empty (only whitespace or comments); a runbook needs apiVersion, service and steps")
	case len(docs) > 1:
		line := nodeLine(docs[1].Body)
		if docs[1].Start != nil && docs[1].Start.Position != nil {
			line = docs[1].Start.Position.Line
		}
		return nil, fileError(file, line, ErrMultipleDocuments,
			"file holds %d YAML documents; a runbook is a single document (remove the extra ---)", len(docs))
	}
	body = docs[0].Body
	for {
		a, ok := body.(*ast.AnchorNode)
		if !ok {
			break
		}
		body = a.Value
	}
	if _, ok := body.(*ast.MappingNode); !ok {
		return nil, fileError(file, nodeLine(body), ErrNotMapping,
			"the top level must be a mapping (apiVersion: …, service: …, steps: …), got %s", describe(body))
	}
	return body, nil
}

func syntaxError(file string, err error) Errors {
	var ye yaml.Error
	if errors.As(err, &ye) {
		line := 0
		if t := ye.GetToken(); t != nil && t.Position != nil {
			line = t.Position.Line
		}
		return fileError(file, line, ErrSyntax, "invalid YAML: %s", ye.GetMessage())
	}
	return fileError(file, 0, ErrSyntax, "invalid YAML: %v", fmt.Sprint(err))
}
