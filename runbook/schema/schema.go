// Package schema generates the JSON Schema of rollbook runbooks from the Go
// types in package runbook, so that editors (the YAML language server, via
// the "# yaml-language-server: $schema=" comment in each runbook) validate
// and complete runbooks while they are written.
//
// The schema is structural: field names and types, required fields as the
// parser requires them, no unknown fields, durations as Go duration strings,
// exactly one kind per step and per check. Rules that need the whole
// document (weights summing to 100, routes and steps that exist, migration
// files) stay with `rollbook validate`, which remains the authority.
package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/invopop/jsonschema"

	"github.com/rollbook/rollbook/runbook"
)

// FileName is the schema's name in runbooks/.
const FileName = "rollbook.schema.json"

// DurationPattern matches what runbook.Duration accepts: Go duration
// syntax without a sign ("30s", "1m30s", "1.5h", "250ms", "0").
const DurationPattern = `^(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`

const runbookImportPath = "github.com/rollbook/rollbook/runbook"

// optional lists fields without omitempty that the parser nonetheless
// accepts when absent (their zero value means something).
var optional = map[string][]string{
	// maxErrorRate 0 tolerates no error at all.
	"RouterCheck": {"maxErrorRate"},
}

// Generate returns the schema, indented and ending in a newline. srcDir is
// the runbook package's source folder; its doc comments become the
// schema's descriptions (what editors show on hover).
func Generate(srcDir string) ([]byte, error) {
	r, err := reflector(srcDir)
	if err != nil {
		return nil, err
	}
	s := r.Reflect(&runbook.Runbook{})
	s.Title = "rollbook runbook (" + runbook.APIVersion + ")"
	s.Description = "A deployment recipe for one service: ordered steps (migrate, consul, traffic, verify, pause, release), " +
		"each undone in reverse order when verification fails or an operator aborts. Generated from the Go types in " +
		"runbook/ by `go generate ./runbook`; `rollbook validate` checks the rules a schema cannot express."

	if p, ok := s.Properties.Get("apiVersion"); ok {
		p.Const = runbook.APIVersion
	}
	for name, def := range s.Definitions {
		for _, field := range optional[name] {
			def.Required = remove(def.Required, field)
		}
	}
	// A step and a check are unions: exactly one kind field is set.
	if err := exactlyOneOf(s.Definitions["Step"], reflect.TypeFor[runbook.Step](),
		"One step of the runbook: a name and exactly one kind, each undone by its compensation on rollback."); err != nil {
		return nil, err
	}
	if err := exactlyOneOf(s.Definitions["Check"], reflect.TypeFor[runbook.Check](),
		"A named check of one kind, with the judgement knobs shared by all kinds."); err != nil {
		return nil, err
	}
	// notify names a webhook, a paging service, or both.
	if d := s.Definitions["Notify"]; d != nil {
		d.AnyOf = []*jsonschema.Schema{{Required: []string{"webhook"}}, {Required: []string{"page"}}}
	}
	walk(s, func(p *jsonschema.Schema) {
		if p.Pattern == DurationPattern && !strings.Contains(p.Description, "duration such as") {
			p.Description = strings.TrimSpace(p.Description + " A duration such as 30s, 5m or 1h30m.")
		}
	})
	addEnums(s.Definitions)
	if err := addSyntaxAndLimits(s); err != nil {
		return nil, err
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// reflector reads the runbook types with their doc comments from srcDir;
// durations are strings in Go syntax.
func reflector(srcDir string) (*jsonschema.Reflector, error) {
	r := &jsonschema.Reflector{
		Anonymous:      true,
		ExpandedStruct: true,
		Mapper: func(t reflect.Type) *jsonschema.Schema {
			if t == reflect.TypeFor[runbook.Duration]() {
				return &jsonschema.Schema{
					Type:        "string",
					Pattern:     DurationPattern,
					Description: "A duration in Go syntax, such as 30s, 5m or 1h30m.",
					Examples:    []any{"30s", "5m", "1h30m"},
				}
			}
			return nil
		},
	}
	if err := addComments(r, srcDir); err != nil {
		return nil, fmt.Errorf("reading doc comments in %s: %w", srcDir, err)
	}
	r.LookupComment = func(t reflect.Type, field string) string {
		return describe(r.CommentMap, t, field)
	}
	return r, nil
}

// addEnums lists the allowed values of the fields that have a fixed set.
func addEnums(defs jsonschema.Definitions) {
	if d := defs["MigrateStep"]; d != nil {
		if p, ok := d.Properties.Get("phase"); ok {
			p.Enum = []any{runbook.PhaseExpand, runbook.PhaseContract}
		}
		if p, ok := d.Properties.Get("onRollback"); ok {
			for _, v := range runbook.OnRollbackPolicies {
				p.Enum = append(p.Enum, v)
			}
		}
	}
	if d := defs["ReleaseStep"]; d != nil {
		if p, ok := d.Properties.Get("version"); ok {
			p.Pattern = runbook.VersionPattern
		}
	}
	if d := defs["RouterCheck"]; d != nil {
		if p, ok := d.Properties.Get("maxErrorRate"); ok {
			p.Minimum, p.Maximum = "0", "1"
		}
	}
}

// exactlyOneOf adds oneOf [{required: [kind]}…] for every pointer-to-struct
// field of t (the kinds), so that none or two kinds fail validation.
func exactlyOneOf(def *jsonschema.Schema, t reflect.Type, description string) error {
	if def == nil {
		return fmt.Errorf("no definition for %s", t.Name())
	}
	var kinds []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			kinds = append(kinds, name)
		}
	}
	if len(kinds) < 2 {
		return fmt.Errorf("%s has %d kind fields", t.Name(), len(kinds))
	}
	def.OneOf = nil
	for _, k := range kinds {
		def.OneOf = append(def.OneOf, &jsonschema.Schema{Required: []string{k}})
	}
	def.Description = fmt.Sprintf("%s Set exactly one of: %s.", description, strings.Join(kinds, ", "))
	return nil
}

// describe returns the doc comment of a type or field for the schema: a
// field's comment starts with its YAML name rather than its Go name, and
// lines are joined (paragraphs stay apart).
func describe(comments map[string]string, t reflect.Type, field string) string {
	key := t.PkgPath() + "." + t.Name()
	if field != "" {
		key += "." + field
	}
	txt := comments[key]
	if field != "" {
		if f, ok := t.FieldByName(field); ok {
			if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
				if rest, ok := strings.CutPrefix(txt, field+" "); ok {
					txt = name + " " + rest
				} else if rest, ok := strings.CutPrefix(txt, field+","); ok {
					txt = name + "," + rest
				}
			}
		}
	}
	paras := strings.Split(strings.TrimSpace(txt), "\n\n")
	for i, p := range paras {
		paras[i] = strings.Join(strings.Fields(p), " ")
	}
	return strings.Join(paras, "\n\n")
}

// walk calls f on every schema below s.
func walk(s *jsonschema.Schema, f func(*jsonschema.Schema)) {
	if s == nil {
		return
	}
	f(s)
	for _, d := range s.Definitions {
		walk(d, f)
	}
	if s.Properties != nil {
		for p := s.Properties.Oldest(); p != nil; p = p.Next() {
			walk(p.Value, f)
		}
	}
	walk(s.Items, f)
	walk(s.AdditionalProperties, f)
	for _, o := range s.OneOf {
		walk(o, f)
	}
}

func remove(list []string, v string) []string {
	out := list[:0:0]
	for _, s := range list {
		if s != v {
			out = append(out, s)
		}
	}
	return out
}

// addComments loads the doc comments of srcDir. The reflector keys them by
// import path joined with each file's folder as walked from the working
// directory, so the base is chosen to make that join land on the runbook
// package's import path wherever the generator or the test runs.
func addComments(r *jsonschema.Reflector, srcDir string) error {
	abs, err := filepath.Abs(srcDir)
	if err != nil {
		return err
	}
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	walk, err := filepath.Rel(cwd, abs)
	if err != nil {
		return err
	}
	back, err := filepath.Rel(abs, cwd)
	if err != nil {
		return err
	}
	base := path.Join(runbookImportPath, filepath.ToSlash(back))
	return r.AddGoComments(base, walk)
}
