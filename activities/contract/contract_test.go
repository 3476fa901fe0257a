package contract

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSpecsCoverEveryName: every Activity* constant has exactly one Spec,
// so the worker's registration test covers it.
func TestSpecsCoverEveryName(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "contract.go", nil, 0)
	require.NoError(t, err)
	var names []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			for _, n := range s.(*ast.ValueSpec).Names {
				if strings.HasPrefix(n.Name, "Activity") {
					names = append(names, n.Name)
				}
			}
		}
	}
	require.NotEmpty(t, names)
	seen := map[string]int{}
	for _, s := range Specs {
		seen[s.Name]++
		assert.NotNil(t, s.In, s.Name)
	}
	assert.Len(t, Specs, len(names), "one Spec per Activity constant")
	for name, n := range seen {
		assert.Equal(t, 1, n, "Spec %s is listed %d times", name, n)
	}
}

// heavy are the packages only the worker may link: database drivers, goose,
// the Consul and Prometheus API clients, and the test file system.
var heavy = regexp.MustCompile(`goose|pgx|sqlite|consul/api|prometheus/client_golang/api|testing/fstest`)

// TestLightDependencies: the contract, the workflows and the CLI link none
// of what the activities need to do their work. The deterministic side
// stays small, and the CLI does not ship database drivers.
func TestLightDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	for _, pkg := range []string{
		"github.com/rollbook/rollbook/activities/contract",
		"github.com/rollbook/rollbook/workflows",
		"github.com/rollbook/rollbook/starter/rollbook",
	} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		require.NoError(t, err, string(out))
		var bad []string
		for _, dep := range strings.Fields(string(out)) {
			if heavy.MatchString(dep) {
				bad = append(bad, dep)
			}
		}
		assert.Empty(t, bad, "%s depends on heavy packages", pkg)
		if pkg == "github.com/rollbook/rollbook/workflows" {
			assert.NotContains(t, strings.Fields(string(out)), "github.com/rollbook/rollbook/activities", "workflows must not import the activity implementations")
		}
	}
}
