package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The CI examples in examples/ci are valid YAML, and every rollbook command
// line in them names a real command and real flags.
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
		found := 0
		// Shell continuation lines join their command.
		text := strings.ReplaceAll(string(data), "\\\n", " ")
		for _, line := range strings.Split(text, "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "- "))
			var rest string
			switch {
			case strings.HasPrefix(line, "./rollbook "):
				rest = strings.TrimPrefix(line, "./rollbook ")
			case strings.HasPrefix(line, "run: go run ./starter "):
				rest = strings.TrimPrefix(line, "run: go run ./starter ")
			case strings.HasPrefix(line, "go run ./starter "):
				rest = strings.TrimPrefix(line, "go run ./starter ")
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
	}
}
