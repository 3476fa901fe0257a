package schema

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/runbook"
)

const committed = "../../runbooks/" + FileName

// TestCommittedSchemaIsUpToDate fails when a runbook type changed and the
// schema in runbooks/ was not regenerated.
func TestCommittedSchemaIsUpToDate(t *testing.T) {
	want, err := Generate("..")
	require.NoError(t, err)
	got, err := os.ReadFile(committed)
	require.NoError(t, err, "run: go generate ./runbook")
	if !bytes.Equal(got, want) {
		t.Fatalf("runbooks/%s is out of date with the types in runbook/: run `go generate ./runbook` (or `make schema`) and commit the result", FileName)
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	a, err := Generate("..")
	require.NoError(t, err)
	b, err := Generate("..")
	require.NoError(t, err)
	assert.Equal(t, a, b)
}

func compile(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(committed)
	require.NoError(t, err)
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	require.NoError(t, c.AddResource(FileName, doc))
	s, err := c.Compile(FileName)
	require.NoError(t, err)
	return s
}

// yamlToJSONValue converts a YAML document into the value the validator
// takes (numbers as json.Number).
func yamlToJSONValue(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	require.NoError(t, yaml.Unmarshal(data, &v))
	j, err := json.Marshal(v)
	require.NoError(t, err)
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	require.NoError(t, err)
	return out
}

// TestExamplesValidate: every runbook in runbooks/ is valid against the
// schema and points editors at it on its first line.
func TestExamplesValidate(t *testing.T) {
	s := compile(t)
	files, err := filepath.Glob("../../runbooks/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			first, _, _ := bufio.NewReader(bytes.NewReader(data)).ReadLine()
			assert.Equal(t, "# yaml-language-server: $schema=./"+FileName, string(first),
				"the first line tells editors where the schema is")
			if err := s.Validate(yamlToJSONValue(t, data)); err != nil {
				t.Errorf("%s does not validate against the schema:\n%v", f, err)
			}
			_, err = runbook.Parse(f, data)
			assert.NoError(t, err, "the parser accepts it too")
		})
	}
}

// TestSchemaAgreesWithParser: runbooks the parser accepts validate, and the
// structural mistakes the schema can see are refused by both.
func TestSchemaAgreesWithParser(t *testing.T) {
	s := compile(t)
	const base = `apiVersion: rollbook/v1
service: svc
routes:
  - {name: api, router: edge, backend: be, subsets: [stable, canary], stable: stable, canary: canary}
steps:
`
	valid := map[string]string{
		"pause with approval": `  - name: approve
    pause: {approval: true, timeout: 1h}
`,
		"router check without maxErrorRate": `  - name: shift
    traffic: {route: api, weights: {stable: 90, canary: 10}}
  - name: watch
    verify:
      duration: 1m
      interval: 1.5s
      checks:
        - name: errors
          router: {route: api, subset: canary}
`,
		"prometheus, compare and a gradual rollback": `  - name: shift
    traffic: {route: api, weights: {stable: 90, canary: 10}}
  - name: watch
    verify:
      duration: 1h30m
      checks:
        - name: p99
          prometheus: {query: "histogram_quantile(0.99, x)", max: 0.5}
        - name: compare
          successThreshold: 3
          compare: {route: api, metrics: [errors, latency], significance: 0.01}
rollback:
  traffic: {steps: [50, 10], interval: 5s}
  stuckAfter: 10m
`,
	}
	for name, steps := range valid {
		t.Run("valid/"+name, func(t *testing.T) {
			doc := base + steps
			_, err := runbook.Parse(name+".yaml", []byte(doc))
			require.NoError(t, err, "test runbook must be valid for the parser")
			assert.NoError(t, s.Validate(yamlToJSONValue(t, []byte(doc))))
		})
	}

	invalid := map[string]struct{ steps, schemaSays string }{
		"unknown field": {`  - name: a
    pause: {duration: 1m, color: red}
`, "additional properties 'color'"},
		"two kinds in a step": {`  - name: a
    pause: {duration: 1m}
    traffic: {route: api, weights: {stable: 0, canary: 100}}
`, "oneOf"},
		"no kind": {`  - name: a
    irreversible: false
`, "oneOf"},
		"duration as a number": {`  - name: a
    pause: {duration: 30}
`, "want string"},
		"duration without unit": {`  - name: a
    pause: {duration: "30"}
`, "does not match pattern"},
		"check with two kinds": {`  - name: a
    verify:
      duration: 1m
      checks:
        - name: c
          http: {url: "http://x/healthz"}
          router: {route: api, subset: canary}
`, "oneOf"},
		"weight as a string": {`  - name: a
    traffic: {route: api, weights: {stable: "90", canary: 10}}
`, "want integer"},
		"bad phase": {`  - name: a
    migrate: {database: db, dir: m, phase: sideways}
`, "value must be one of"},
	}
	for name, tc := range invalid {
		t.Run("invalid/"+name, func(t *testing.T) {
			doc := base + tc.steps
			_, perr := runbook.Parse(name+".yaml", []byte(doc))
			assert.Error(t, perr, "the parser refuses it")
			err := s.Validate(yamlToJSONValue(t, []byte(doc)))
			if assert.Error(t, err, "the schema refuses it") {
				assert.Contains(t, err.Error(), tc.schemaSays)
			}
		})
	}

	// Top-level mistakes.
	for name, doc := range map[string]string{
		"wrong apiVersion":  strings.Replace(base, "rollbook/v1", "rollbook/v2", 1) + "  - {name: a, pause: {duration: 1m}}\n",
		"missing steps":     "apiVersion: rollbook/v1\nservice: svc\n",
		"unknown top-level": base + "  - {name: a, pause: {duration: 1m}}\nowner: me\n",
	} {
		t.Run("invalid/"+name, func(t *testing.T) {
			_, perr := runbook.Parse(name+".yaml", []byte(doc))
			assert.Error(t, perr)
			assert.Error(t, s.Validate(yamlToJSONValue(t, []byte(doc))))
		})
	}
}

func TestDurationPatternMatchesParser(t *testing.T) {
	s := compile(t)
	for _, d := range []string{"0", "30s", "1m30s", "1.5h", "250ms", "10us", "1h0m0s", ".5s"} {
		var v runbook.Duration
		require.NoError(t, v.UnmarshalText([]byte(d)), d)
		doc := "apiVersion: rollbook/v1\nservice: svc\nsteps:\n  - {name: a, pause: {duration: \"" + d + "\"}}\n"
		assert.NoError(t, s.Validate(yamlToJSONValue(t, []byte(doc))), d)
	}
	for _, d := range []string{"30", "5 m", "1d", "-5s", "s", ""} {
		doc := "apiVersion: rollbook/v1\nservice: svc\nsteps:\n  - {name: a, pause: {duration: \"" + d + "\"}}\n"
		assert.Error(t, s.Validate(yamlToJSONValue(t, []byte(doc))), d)
	}
}
