package runbook

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/invalid/expected.txt from the current messages")

const invalidDir = "testdata/invalid"

// fileLine is the shape every message has: file:line: …
var fileLine = regexp.MustCompile(`^[^:]+:[1-9][0-9]*: `)

// minInvalid is the corpus size the issue asks for; the corpus may only
// grow.
const minInvalid = 35

// linkEscape creates testdata/invalid/escape-link, a symlink to a folder
// outside the corpus folder. It is made at run time (and git-ignored) so
// that a checkout never carries a link pointing out of the repository.
func linkEscape(t *testing.T) {
	t.Helper()
	link := filepath.Join(invalidDir, "escape-link")
	target := filepath.Join("..", "..", "..", "runbooks", "payments-api", "migrations")
	if got, err := os.Readlink(link); err == nil && got == target {
		return
	}
	_ = os.Remove(link)
	if err := os.Symlink(target, link); err != nil {
		t.Skipf("cannot create symlink fixture: %v", err)
	}
	t.Cleanup(func() { _ = os.Remove(link) })
}

// TestInvalidCorpus loads every runbook in testdata/invalid: each must fail,
// and each line expected.txt holds for it must be among its messages.
func TestInvalidCorpus(t *testing.T) {
	linkEscape(t)
	files, err := filepath.Glob(filepath.Join(invalidDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < minInvalid {
		t.Fatalf("corpus has %d runbooks, want at least %d", len(files), minInvalid)
	}
	got := map[string][]string{}
	for _, f := range files {
		_, err := Load(f)
		if err == nil {
			t.Errorf("%s: loaded without error", f)
			continue
		}
		var errs Errors
		if !errors.As(err, &errs) {
			t.Errorf("%s: error is %T, want Errors: %v", f, err, err)
			continue
		}
		got[f] = strings.Split(err.Error(), "\n")
		for _, line := range got[f] {
			if !fileLine.MatchString(line) || !strings.HasPrefix(line, f+":") {
				t.Errorf("%s: message does not start with file:line: %q", f, line)
			}
		}
	}
	golden := filepath.Join(invalidDir, "expected.txt")
	if *update {
		writeGolden(t, golden, files, got)
		return
	}
	want := readGolden(t, golden)
	for _, f := range files {
		lines, ok := want[f]
		if !ok {
			t.Errorf("%s: no expected messages in %s (run go test -run TestInvalidCorpus -update and review)", f, golden)
			continue
		}
		for _, w := range lines {
			if !contains(got[f], w) {
				t.Errorf("%s: missing expected message\n  want: %s\n  got:\n    %s", f, w, strings.Join(got[f], "\n    "))
			}
		}
	}
	for f := range want {
		if _, ok := got[f]; !ok && !contains(files, f) {
			t.Errorf("%s has expected messages but no such runbook", f)
		}
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func readGolden(t *testing.T, name string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		file, _, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("%s: malformed line %q", name, line)
		}
		want[file] = append(want[file], line)
	}
	return want
}

func writeGolden(t *testing.T, name string, files []string, got map[string][]string) {
	t.Helper()
	sort.Strings(files)
	var b strings.Builder
	b.WriteString("# Expected messages for the invalid runbook corpus, one per line, grouped by file.\n")
	b.WriteString("# Every line must appear among the file's messages. Regenerate with\n")
	b.WriteString("#   go test ./runbook -run TestInvalidCorpus -update\n")
	b.WriteString("# and review the diff.\n")
	for _, f := range files {
		b.WriteString("\n")
		for _, l := range got[f] {
			b.WriteString(l + "\n")
		}
	}
	if err := os.WriteFile(name, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
