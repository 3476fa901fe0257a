package schema

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/rollbook/rollbook/runbook"
)

// TestSchemaRefusesIssue13Runbooks: the name syntax, Consul key syntax,
// read-only methods and limits are in the schema too, so an editor flags
// them before `rollbook validate` does; both refuse each case.
func TestSchemaRefusesIssue13Runbooks(t *testing.T) {
	s := compile(t)
	route := func(backend, canary string) string {
		return fmt.Sprintf("routes:\n  - {name: api, router: edge, backend: %q, subsets: [stable, %q], stable: stable, canary: %q}\n", backend, canary, canary)
	}
	head := "apiVersion: rollbook/v1\nservice: svc\n"
	pause := "steps:\n  - {name: a, pause: {duration: 1m}}\n"
	verify := func(checks string) string {
		return "steps:\n  - name: v\n    verify:\n      duration: 1m\n      checks:\n" + checks
	}
	var many strings.Builder
	for i := range runbook.MaxChecks + 1 {
		fmt.Fprintf(&many, "        - {name: c%d, http: {endpoint: edge, path: /healthz, samples: 100}}\n", i)
	}
	for name, tc := range map[string]struct{ doc, schemaSays string }{
		"backend with ;":     {head + route("be;shutdown", "canary") + pause, "does not match pattern"},
		"subset with U+202E": {head + route("be", "can\u202eary") + pause, "does not match pattern"},
		"subset with NEL":    {head + route("be", "canary\u0085x") + pause, "does not match pattern"},
		"DELETE check":       {head + verify("        - {name: wipe, http: {url: \"http://127.0.0.1:8500/v1/kv/?recurse\", method: DELETE}}\n"), "value must be one of"},
		"101 samples":        {head + verify("        - {name: c, http: {endpoint: edge, samples: 101}}\n"), "maximum: got 101, want 100"},
		"21 checks":          {head + verify(many.String()), "maxItems"},
		"absolute key":       {head + "steps:\n  - {name: f, consul: {set: {\"/etc/x\": \"1\"}}}\n", "does not match pattern"},
		"dot-dot key":        {head + "steps:\n  - {name: f, consul: {delete: [\"app/../other\"]}}\n", "does not match pattern"},
		"non-ASCII key":      {head + "steps:\n  - {name: f, consul: {set: {\"app/caf\u00e9\": \"1\"}}}\n", "does not match pattern"},
		"ftp url":            {head + verify("        - {name: c, http: {url: \"ftp://x/y\"}}\n"), "does not match pattern"},
	} {
		t.Run(name, func(t *testing.T) {
			_, perr := runbook.Parse(name+".yaml", []byte(tc.doc))
			assert.Error(t, perr, "the parser refuses it")
			err := s.Validate(yamlToJSONValue(t, []byte(tc.doc)))
			if assert.Error(t, err, "the schema refuses it") {
				assert.Contains(t, err.Error(), tc.schemaSays)
			}
		})
	}
}
