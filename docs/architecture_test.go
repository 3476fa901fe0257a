package docs

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	architecture = "architecture.md"
	modulePath   = "github.com/rollbook/rollbook"
)

// faultsAllowed are the product packages that may import internal/faults
// (architecture.md, "What may import what"): the worker arms the crash
// points and hands them to the activities as hooks.
var faultsAllowed = []string{"internal/worker"}

// mapRow is one row of the package map: the paths it covers and whether
// they are dev-only.
type mapRow struct {
	paths   []string
	devOnly bool
}

var codePathRe = regexp.MustCompile("`([^`]+)`")

func packageMap(t *testing.T) []mapRow {
	t.Helper()
	data, err := os.ReadFile(architecture)
	require.NoError(t, err)
	var rows []mapRow
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "## ") {
			in = strings.TrimSpace(line) == "## Package map"
			continue
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		require.Len(t, cells, 3, "%s: %q: | path | what it does | kind |", architecture, line)
		r := mapRow{devOnly: strings.Contains(cells[2], "dev-only")}
		require.True(t, r.devOnly || strings.TrimSpace(cells[2]) == "product", "%s: %q: kind is product or dev-only", architecture, line)
		for _, m := range codePathRe.FindAllStringSubmatch(cells[0], -1) {
			r.paths = append(r.paths, strings.TrimSuffix(m[1], "/"))
		}
		rows = append(rows, r)
	}
	require.Greater(t, len(rows), 10, "%s: package map rows", architecture)
	return rows
}

// cover returns the row whose path is the longest prefix of dir.
func cover(rows []mapRow, dir string) (mapRow, bool) {
	best, bestLen := mapRow{}, -1
	for _, r := range rows {
		for _, p := range r.paths {
			if (dir == p || strings.HasPrefix(dir, p+"/")) && len(p) > bestLen {
				best, bestLen = r, len(p)
			}
		}
	}
	return best, bestLen >= 0
}

// modulePackages maps each Go package directory of the module (relative,
// slash-separated) to the rollbook packages its non-test files import.
func modulePackages(t *testing.T) map[string][]string {
	t.Helper()
	pkgs := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(path, ".."+string(filepath.Separator)))
		if d.IsDir() {
			name := d.Name()
			if path != ".." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil && path != ".." {
				return filepath.SkipDir // another module (tools/consul)
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(rel))
		if _, ok := pkgs[dir]; !ok {
			pkgs[dir] = nil
		}
		for _, imp := range f.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return err
			}
			if p == modulePath || strings.HasPrefix(p, modulePath+"/") {
				pkgs[dir] = append(pkgs[dir], strings.TrimPrefix(strings.TrimPrefix(p, modulePath), "/"))
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.Contains(t, pkgs, "workflows")
	return pkgs
}

// TestPackageMapCoversTheTree: every package of the module is on the map
// in architecture.md, so a new package cannot appear without a line saying
// what it is for and whether it is product or dev tooling.
func TestPackageMapCoversTheTree(t *testing.T) {
	rows := packageMap(t)
	for dir := range modulePackages(t) {
		_, ok := cover(rows, dir)
		assert.True(t, ok, "package %s is not on the package map in docs/%s", dir, architecture)
	}
	for _, r := range rows {
		for _, p := range r.paths {
			_, err := os.Stat(filepath.Join("..", p))
			assert.NoError(t, err, "docs/%s lists %s", architecture, p)
		}
	}
}

// TestProductDoesNotImportDevTooling: what the map calls product never
// imports what it calls dev-only, but for the crash points' allowance.
func TestProductDoesNotImportDevTooling(t *testing.T) {
	rows := packageMap(t)
	for dir, imports := range modulePackages(t) {
		from, ok := cover(rows, dir)
		if !ok || from.devOnly {
			continue
		}
		for _, imp := range imports {
			to, ok := cover(rows, imp)
			if !ok || !to.devOnly {
				continue
			}
			if imp == "internal/faults" && slices.Contains(faultsAllowed, dir) {
				continue
			}
			assert.Fail(t, "product imports dev tooling", "%s imports %s, which docs/%s marks dev-only", dir, imp, architecture)
		}
	}
}
