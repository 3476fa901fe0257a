package docs

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/runbook"
)

// TestRunbookExamplesAreValid: every runbook shown in README.md and docs/
// (a yaml block starting with apiVersion) parses and validates, migration
// folders included (resolved in runbooks/, where the examples' folders are).
func TestRunbookExamplesAreValid(t *testing.T) {
	found := 0
	for _, f := range []string{readme, reference} {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		var block []string
		in, start := false, 0
		for i, line := range strings.Split(string(data), "\n") {
			switch {
			case !in && strings.TrimSpace(line) == "```yaml":
				in, block, start = true, nil, i+2
			case in && strings.TrimSpace(line) == "```":
				in = false
				text := strings.Join(block, "\n") + "\n"
				if !strings.HasPrefix(text, "apiVersion: rollbook/v1") {
					continue
				}
				found++
				name := fmt.Sprintf("%s:%d", f, start)
				rb, err := runbook.Parse(name, []byte(text))
				if assert.NoError(t, err, "%s: the example runbook does not parse", name) {
					assert.NoError(t, runbook.Validate(rb, runbook.WithFile(name), runbook.WithDir("../runbooks")), "%s: the example runbook is invalid", name)
				}
			case in:
				block = append(block, line)
			}
		}
	}
	assert.GreaterOrEqual(t, found, 2, "example runbooks in README.md and %s", reference)
}
