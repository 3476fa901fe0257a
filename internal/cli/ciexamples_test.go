package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goCommandPkg is the package a CI example builds or runs (`go build -o
// rollbook ./starter/rollbook`, `go run ./starter/rollbook …`).
var goCommandPkg = regexp.MustCompile(`^go (?:build|run|install)\b.*?\s(\./\S+)`)

// The CI examples in examples/ci are valid YAML, every rollbook command
// line in them names a real command and real flags, and what they build is
// the CLI's main package.
func TestCIExamplesUseRealCommands(t *testing.T) {
	files, err := filepath.Glob("../../examples/ci/*.yml")
	require.NoError(t, err)
	require.Len(t, files, 2)
	root := (&app{}).rootCommand()
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		var doc map[string]any
		require.NoError(t, yaml.Unmarshal(data, &doc), f)
		found, builds := 0, 0
		// Shell continuation lines join their command.
		text := strings.ReplaceAll(string(data), "\\\n", " ")
		for _, line := range strings.Split(text, "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "- "))
			line = strings.TrimPrefix(line, "run: ")
			if m := goCommandPkg.FindStringSubmatch(line); m != nil {
				main, err := os.ReadFile(filepath.Join("../..", m[1], "main.go"))
				if assert.NoError(t, err, "%s: %q builds a package that is not there", f, line) {
					assert.Contains(t, string(main), "\npackage main\n", "%s: %q", f, line)
				}
				assert.Equal(t, "rollbook", filepath.Base(m[1]), "%s: %q: the CLI's package is starter/rollbook", f, line)
				builds++
			}
			var rest string
			switch {
			case strings.HasPrefix(line, "./rollbook "):
				rest = strings.TrimPrefix(line, "./rollbook ")
			case strings.HasPrefix(line, "go run ./starter/rollbook "):
				rest = strings.TrimPrefix(line, "go run ./starter/rollbook ")
			default:
				continue
			}
			if i := strings.IndexAny(rest, "|>"); i >= 0 {
				rest = rest[:i]
			}
			args := strings.Fields(strings.TrimSuffix(strings.TrimSpace(rest), "\\"))
			cmd, _, err := root.Find(args)
			require.NoError(t, err, "%s: %q", f, line)
			require.NotEqual(t, root, cmd, "%s: %q names no command", f, line)
			for _, a := range args {
				if !strings.HasPrefix(a, "--") {
					continue
				}
				name := strings.SplitN(strings.TrimPrefix(a, "--"), "=", 2)[0]
				assert.NotNil(t, cmd.Flags().Lookup(name), "%s: %s has no flag --%s", f, cmd.Name(), name)
			}
			found++
		}
		assert.GreaterOrEqual(t, found, 2, "%s: rollbook command lines", f)
		assert.NotZero(t, builds, "%s: builds the CLI", f)
	}
}
