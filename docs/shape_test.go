package docs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// maxFuncLines is the longest a function may be in the packages a reader
// of rollbook's core goes through (architecture.md): past it a function no
// longer reads top-down, and it is split instead.
const maxFuncLines = 80

// shapedDirs are the folders whose functions must stay short.
var shapedDirs = []string{"workflows", "activities", "runbook", "internal/cli"}

// TestFunctionsStayShort: no function (or method, or function literal
// assigned at top level) in shapedDirs spans more than maxFuncLines lines,
// counted from its func line to its closing brace. Test files are exempt.
func TestFunctionsStayShort(t *testing.T) {
	fset := token.NewFileSet()
	for _, dir := range shapedDirs {
		err := filepath.WalkDir(filepath.Join("..", dir), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			for _, decl := range f.Decls {
				fn, ok := decl.(*ast.FuncDecl)
				if !ok || fn.Body == nil {
					continue
				}
				start, end := fset.Position(fn.Pos()).Line, fset.Position(fn.End()).Line
				if n := end - start + 1; n > maxFuncLines {
					t.Errorf("%s:%d: %s is %d lines (at most %d): split it so it reads top-down", path, start, fn.Name.Name, n, maxFuncLines)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
