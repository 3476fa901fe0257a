package docs

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	readme       = "../README.md"
	reference    = "runbook.md"
	committedSch = "../runbooks/rollbook.schema.json"
	// readmeLimit keeps the README a first screen plus links (issue 15).
	readmeLimit = 12 * 1024
)

// schemaDoc is the part of the JSON Schema the reference is held to.
type schemaDoc struct {
	Properties map[string]schemaProp `json:"properties"`
	Required   []string              `json:"required"`
	Defs       map[string]schemaDef  `json:"$defs"`
}

type schemaDef struct {
	Properties map[string]schemaProp `json:"properties"`
	Required   []string              `json:"required"`
	OneOf      []struct {
		Required []string `json:"required"`
	} `json:"oneOf"`
}

type schemaProp struct {
	Type        string      `json:"type"`
	Ref         string      `json:"$ref"`
	Items       *schemaProp `json:"items"`
	Enum        []string    `json:"enum"`
	Const       string      `json:"const"`
	Pattern     string      `json:"pattern"`
	Description string      `json:"description"`
}

// refRow is one field row of a reference table:
// | field | type | required | default | meaning |.
type refRow struct {
	line                               int
	field, typ, required, def, meaning string
}

// readSchema loads the committed schema; runbook/schema's tests keep it in
// step with the Go types, so holding the page to it holds it to the types.
func readSchema(t *testing.T) map[string]schemaDef {
	t.Helper()
	data, err := os.ReadFile(committedSch)
	require.NoError(t, err)
	var s schemaDoc
	require.NoError(t, json.Unmarshal(data, &s))
	defs := map[string]schemaDef{"Runbook": {Properties: s.Properties, Required: s.Required}}
	for name, d := range s.Defs {
		defs[name] = d
	}
	return defs
}

// referenceSections splits docs/runbook.md's "## Reference" into its "###"
// sections, keyed by the heading's first word (the schema definition name),
// each with its table rows keyed by field.
func referenceSections(t *testing.T) map[string]map[string]refRow {
	t.Helper()
	data, err := os.ReadFile(reference)
	require.NoError(t, err)
	sections := map[string]map[string]refRow{}
	var cur map[string]refRow
	var curName string
	inRef := false
	for i, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			inRef = strings.TrimSpace(line) == "## Reference"
			cur = nil
			continue
		case !inRef:
			continue
		case strings.HasPrefix(line, "### "):
			curName = strings.Fields(strings.TrimPrefix(line, "### "))[0]
			require.NotContains(t, sections, curName, "%s:%d: a second section for %s", reference, i+1, curName)
			cur = map[string]refRow{}
			sections[curName] = cur
			continue
		}
		if cur == nil || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		require.Len(t, cells, 5, "%s:%d: a row is | field | type | required | default | meaning |", reference, i+1)
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		field := strings.Trim(cells[0], "`")
		require.NotContains(t, cur, field, "%s:%d: %s.%s twice", reference, i+1, curName, field)
		cur[field] = refRow{line: i + 1, field: field, typ: cells[1], required: cells[2], def: cells[3], meaning: cells[4]}
	}
	return sections
}

// TestRunbookReferenceMatchesSchema: every field of every runbook type is
// documented in docs/runbook.md with its type, whether it is required, its
// default (when the Go doc comment names one), its allowed values, and
// nothing is documented that the schema does not have.
func TestRunbookReferenceMatchesSchema(t *testing.T) {
	defs := readSchema(t)
	sections := referenceSections(t)
	for name, def := range defs {
		rows, ok := sections[name]
		if !assert.True(t, ok, "%s has no \"### %s\" section under \"## Reference\"", reference, name) {
			continue
		}
		oneOf := map[string]bool{}
		for _, o := range def.OneOf {
			for _, r := range o.Required {
				oneOf[r] = true
			}
		}
		for field, p := range def.Properties {
			row, ok := rows[field]
			if !assert.True(t, ok, "%s: section %s does not document field %q", reference, name, field) {
				continue
			}
			where := fmt.Sprintf("%s:%d (%s.%s)", reference, row.line, name, field)
			switch {
			case slices.Contains(def.Required, field):
				assert.Equal(t, "yes", row.required, "%s: the schema requires it", where)
			case oneOf[field]:
				assert.Equal(t, "one kind", row.required, "%s: exactly one kind is set", where)
			default:
				assert.Equal(t, "no", row.required, "%s: the schema does not require it", where)
			}
			assert.Contains(t, row.typ, typeWord(p), "%s: type", where)
			if ref := refName(p); ref != "" {
				assert.Contains(t, row.typ, "["+ref+"]", "%s: links its type", where)
			}
			if strings.Contains(strings.ToLower(p.Description), "default") {
				assert.NotContains(t, []string{"", "—", "none"}, row.def, "%s: the Go doc comment names a default: %q", where, p.Description)
			}
			for _, v := range p.Enum {
				assert.Contains(t, row.typ+row.def+row.meaning, "`"+v+"`", "%s: allowed value %q", where, v)
			}
			if p.Const != "" {
				assert.Contains(t, row.meaning, "`"+p.Const+"`", "%s: the only value", where)
			}
		}
		for field, row := range rows {
			_, ok := def.Properties[field]
			assert.True(t, ok, "%s:%d: %s has no field %q (removed or renamed?)", reference, row.line, name, field)
		}
	}
	for name := range sections {
		_, ok := defs[name]
		assert.True(t, ok, "%s: section %q names no type of the schema", reference, name)
	}
}

// typeWord is the word the type column must hold for a schema property.
func typeWord(p schemaProp) string {
	switch {
	case p.Ref != "":
		return refName(p)
	case p.Type == "array":
		return "list"
	case p.Type == "object":
		return "map"
	case p.Type == "string" && strings.Contains(p.Pattern, "(ns|us|"):
		return "duration"
	case p.Type == "string" && (strings.HasPrefix(p.Description, "A name:") || strings.Contains(p.Description, " A name: ")):
		return "name"
	}
	return p.Type
}

func refName(p schemaProp) string {
	if p.Items != nil {
		return refName(*p.Items)
	}
	return strings.TrimPrefix(p.Ref, "#/$defs/")
}

// The check kinds and step kinds each have a reference section (a new kind
// cannot be added without one): they are the oneOf branches of Check and Step.
func TestEveryKindHasASection(t *testing.T) {
	defs := readSchema(t)
	sections := referenceSections(t)
	for _, union := range []string{"Step", "Check"} {
		require.NotEmpty(t, defs[union].OneOf, union)
		for _, o := range defs[union].OneOf {
			for _, kind := range o.Required {
				ref := refName(defs[union].Properties[kind])
				require.NotEmpty(t, ref, "%s.%s", union, kind)
				assert.Contains(t, sections, ref, "%s kind %q (%s) has no reference section", union, kind, ref)
			}
		}
	}
}

// TestReadmeIsAFirstScreen: the README stays short and opens with what
// rollbook is and the two commands, exactly as the Makefile has them.
func TestReadmeIsAFirstScreen(t *testing.T) {
	data, err := os.ReadFile(readme)
	require.NoError(t, err)
	assert.LessOrEqual(t, len(data), readmeLimit, "README.md is %d bytes; keep it under %d and move details to docs/", len(data), readmeLimit)
	lines := strings.Split(string(data), "\n")
	first := strings.Join(lines[:min(len(lines), 30)], "\n")
	assert.Contains(t, first, "Temporal workflows")
	assert.Contains(t, first, "make demo")
	assert.Contains(t, first, "make test")
	mk, err := os.ReadFile("../Makefile")
	require.NoError(t, err)
	for _, target := range []string{"demo", "test"} {
		assert.Regexp(t, regexp.MustCompile(`(?m)^`+target+`:`), string(mk), "make %s", target)
	}
}

var (
	linkRe    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	headingRe = regexp.MustCompile(`^#{1,6} (.+)$`)
	fenceRe   = regexp.MustCompile("^\\s*```")
	// GitHub drops these from a heading's anchor.
	anchorDrop = regexp.MustCompile("[^\\p{L}\\p{N} _-]")
)

// anchors are the heading anchors GitHub generates for a Markdown file.
func anchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	out := map[string]bool{}
	seen := map[string]int{}
	inFence := false
	for _, line := range strings.Split(string(data), "\n") {
		if fenceRe.MatchString(line) {
			inFence = !inFence
			continue
		}
		m := headingRe.FindStringSubmatch(line)
		if inFence || m == nil {
			continue
		}
		a := strings.ReplaceAll(anchorDrop.ReplaceAllString(strings.ToLower(strings.TrimSpace(m[1])), ""), " ", "-")
		if n := seen[a]; n > 0 {
			out[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

func TestAnchorRule(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.md")
	require.NoError(t, os.WriteFile(p, []byte("# The CLI (`starter/`, binary `rollbook`)\n## Step — `steps[]`\n## A\n## A\n```\n# not a heading\n```\n"), 0o644))
	got := anchors(t, p)
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	assert.Equal(t, []string{"a", "a-1", "step--steps", "the-cli-starter-binary-rollbook"}, keys)
}

// TestRelativeLinksResolve: every relative link in README.md and docs/*.md
// names a file or folder of the repository, and an anchor names a heading
// of the file it points at.
func TestRelativeLinksResolve(t *testing.T) {
	files, err := filepath.Glob("*.md")
	require.NoError(t, err)
	files = append(files, readme)
	require.Greater(t, len(files), 5)
	checked := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		inFence := false
		for i, line := range strings.Split(string(data), "\n") {
			if fenceRe.MatchString(line) {
				inFence = !inFence
			}
			if inFence {
				continue
			}
			for _, m := range linkRe.FindAllStringSubmatch(line, -1) {
				target := m[1]
				u, err := url.Parse(target)
				if !assert.NoError(t, err, "%s:%d: %s", f, i+1, target) || u.Scheme != "" {
					continue
				}
				where := fmt.Sprintf("%s:%d: link %s", f, i+1, target)
				path := f
				if u.Path != "" {
					path = filepath.Join(filepath.Dir(f), u.Path)
					_, err := os.Stat(path)
					if !assert.NoError(t, err, "%s: no such file", where) {
						continue
					}
				}
				if u.Fragment != "" {
					if assert.True(t, strings.HasSuffix(path, ".md"), "%s: an anchor into a file that is not Markdown", where) {
						assert.True(t, anchors(t, path)[u.Fragment], "%s: %s has no heading with anchor #%s", where, path, u.Fragment)
					}
				}
				checked++
			}
		}
	}
	assert.Greater(t, checked, 20, "links checked")
}
