package schema

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/invopop/jsonschema"

	"github.com/rollbook/rollbook/runbook"
)

// nameFields lists, per definition, the fields that hold a name and so
// follow runbook.NamePattern ("" is the root, the Runbook itself). A
// definition that does not exist is skipped, so that a step kind added
// later (ReleaseStep's target) only needs its entry here.
var nameFields = map[string][]string{
	"Route":           {"name", "router", "backend", "stable", "canary"},
	"Step":            {"name"},
	"MigrateStep":     {"database"},
	"TrafficStep":     {"route"},
	"Check":           {"name"},
	"HTTPCheck":       {"endpoint"},
	"PrometheusCheck": {"server"},
	"RouterCheck":     {"route", "subset"},
	"CompareCheck":    {"route", "canary", "baseline"},
	"Notify":          {"webhook", "page"},
	"Analysis":        {"from"},
	"ReleaseStep":     {"target"},
}

const nameRule = "A name: letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters."

// addSyntaxAndLimits writes the name syntax, the Consul key syntax and the
// limits (runbook.Max*) into the schema, so that an editor flags them while
// the runbook is written and shows them on hover.
func addSyntaxAndLimits(s *jsonschema.Schema) error {
	if err := addNames(s); err != nil {
		return err
	}
	defs := s.Definitions
	if p, ok := s.Properties.Get("description"); ok {
		p.MaxLength = u(runbook.MaxDescriptionBytes)
	}
	list(s, "steps", runbook.MaxSteps, "runbook.MaxSteps")
	list(s, "routes", runbook.MaxRoutes, "runbook.MaxRoutes")
	if d := defs["Route"]; d != nil {
		if p := list(d, "subsets", runbook.MaxSubsets, "runbook.MaxSubsets"); p != nil {
			p.MinItems = u(2)
			nameSchema(p.Items)
		}
	}
	if d := defs["TrafficStep"]; d != nil {
		if p, ok := d.Properties.Get("weights"); ok {
			p.PropertyNames = &jsonschema.Schema{Pattern: runbook.NamePattern}
		}
	}
	addCheckLimits(defs)
	addConsulLimits(defs)
	return nil
}

// nameSchema gives p the name syntax.
func nameSchema(p *jsonschema.Schema) {
	p.Pattern = runbook.NamePattern
	p.Description = appendSentence(p.Description, nameRule)
}

// addNames gives every name field (nameFields) and the service its syntax.
func addNames(s *jsonschema.Schema) error {
	defs := s.Definitions
	for def, fields := range nameFields {
		d := defs[def]
		if d == nil {
			continue
		}
		for _, f := range fields {
			p, ok := d.Properties.Get(f)
			if !ok {
				return fmt.Errorf("%s has no field %q", def, f)
			}
			nameSchema(p)
		}
	}
	if p, ok := s.Properties.Get("service"); ok {
		p.Pattern = runbook.ServicePattern
		p.Description = appendSentence(p.Description, "Lowercase letters, digits and '-', starting with a letter, at most 63 characters.")
	}
	return nil
}

// addCheckLimits bounds the checks: how many, HTTP methods, samples, URLs
// and paths, Prometheus queries.
func addCheckLimits(defs jsonschema.Definitions) {
	for _, def := range []string{"VerifyStep", "Analysis"} {
		if d := defs[def]; d != nil {
			if p := list(d, "checks", runbook.MaxChecks, "runbook.MaxChecks"); p != nil {
				p.MinItems = u(1)
			}
		}
	}
	if d := defs["HTTPCheck"]; d != nil {
		if p, ok := d.Properties.Get("method"); ok {
			p.Enum = []any{"GET", "HEAD"}
			p.Description = "GET (the default) or HEAD: checks only read."
		}
		if p, ok := d.Properties.Get("samples"); ok {
			p.Minimum, p.Maximum = "0", jsonNumber(runbook.MaxHTTPSamples)
			p.Description = appendSentence(p.Description, fmt.Sprintf("At most %d (runbook.MaxHTTPSamples).", runbook.MaxHTTPSamples))
		}
		if p, ok := d.Properties.Get("url"); ok {
			p.Pattern = `^https?://[!-~]+$`
			p.MaxLength = u(runbook.MaxURLBytes)
			p.Description = appendSentence(p.Description, fmt.Sprintf("An http:// or https:// URL in printable ASCII, without user:password@, at most %d bytes (runbook.MaxURLBytes); the worker's allowlist decides which hosts it may reach.", runbook.MaxURLBytes))
		}
		if p, ok := d.Properties.Get("path"); ok {
			p.Pattern = `^/[!-~]*$`
			p.MaxLength = u(runbook.MaxURLBytes)
		}
	}
	if d := defs["PrometheusCheck"]; d != nil {
		if p, ok := d.Properties.Get("query"); ok {
			p.MaxLength = u(runbook.MaxQueryBytes)
			p.Description = appendSentence(p.Description, fmt.Sprintf("At most %d bytes (runbook.MaxQueryBytes).", runbook.MaxQueryBytes))
		}
	}
}

// addConsulLimits gives Consul keys their syntax and bounds the keys and
// values of a step.
func addConsulLimits(defs jsonschema.Definitions) {
	if d := defs["ConsulStep"]; d != nil {
		key := &jsonschema.Schema{Type: "string", Pattern: runbook.ConsulKeyPattern, MaxLength: u(runbook.MaxKeyBytes)}
		keyRule := fmt.Sprintf("Keys are slash-separated printable ASCII without \".\" or \"..\" segments or a leading /, at most %d bytes (runbook.MaxKeyBytes); a step changes at most %d keys (runbook.MaxConsulOps).",
			runbook.MaxKeyBytes, runbook.MaxConsulOps)
		if p, ok := d.Properties.Get("set"); ok {
			p.PropertyNames = key
			p.MaxProperties = u(runbook.MaxConsulOps)
			if p.AdditionalProperties != nil {
				p.AdditionalProperties.MaxLength = u(runbook.MaxValueBytes)
			}
			p.Description = appendSentence(p.Description, keyRule+fmt.Sprintf(" Values are at most %d bytes (runbook.MaxValueBytes).", runbook.MaxValueBytes))
		}
		if p, ok := d.Properties.Get("delete"); ok {
			p.Items = key
			p.MaxItems = u(runbook.MaxConsulOps)
			p.Description = appendSentence(p.Description, keyRule)
		}
	}
}

// list bounds the array field of d and says so in its description.
func list(d *jsonschema.Schema, field string, max int, constName string) *jsonschema.Schema {
	p, ok := d.Properties.Get(field)
	if !ok {
		return nil
	}
	p.MaxItems = u(max)
	p.Description = appendSentence(p.Description, fmt.Sprintf("At most %d (%s).", max, constName))
	return p
}

func appendSentence(desc, s string) string {
	if strings.Contains(desc, s) {
		return desc
	}
	return strings.TrimSpace(desc + " " + s)
}

func u(n int) *uint64 {
	v := uint64(n)
	return &v
}

func jsonNumber(n int) json.Number { return json.Number(fmt.Sprint(n)) }
