package cli

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestValidateInvalidCorpus runs `rollbook validate` on every invalid runbook
// of the corpus: each must exit 1 and print every expected message, with
// the file and line.
func TestValidateInvalidCorpus(t *testing.T) {
	// Run where the corpus's messages were recorded, so paths match.
	t.Chdir("../../runbook")
	expected := readExpected(t, "testdata/invalid/expected.txt")
	require.GreaterOrEqual(t, len(expected), 30)
	for file, lines := range expected {
		if file == "migration-dir-symlink.yaml" {
			continue // its symlink is made at run time by the runbook package's own test
		}
		path := "testdata/invalid/" + file
		t.Run(file, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Run(context.Background(), []string{"validate", path}, &out, &errOut)
			assert.Equal(t, ExitBadInput, code)
			for _, want := range lines {
				assert.Contains(t, errOut.String(), want)
			}
		})
	}
}

func TestValidateExamples(t *testing.T) {
	files, err := filepath.Glob("../../runbooks/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var out, errOut bytes.Buffer
	code := Run(context.Background(), append([]string{"validate"}, files...), &out, &errOut)
	assert.Equal(t, ExitOK, code, errOut.String())
}

func TestPlanPrintsCompensations(t *testing.T) {
	var out, errOut bytes.Buffer
	code := Run(context.Background(), []string{"plan", "../../runbooks/payments-api.yaml"}, &out, &errOut)
	require.Equal(t, ExitOK, code, errOut.String())
	s := out.String()
	for _, want := range []string{"expand-schema [migrate]", "undo: migrate database payments down", "canary-50 [traffic]", "undo: restore the captured weights",
		"release-canary [release]", "undo: put the version captured on target canary before the step back",
		"promote-stable [release]", "onto target stable and wait until it is healthy — promotion: route api sends 100 % to its canary",
		"undo: put the version captured on target stable before the step back",
		"stable-100 [traffic]", "promotion: route api back on the promoted stable (stable)"} {
		assert.Contains(t, s, want)
	}
}

func TestUsageErrorsExit1(t *testing.T) {
	for _, args := range [][]string{{"deploy"}, {"deploy", "x.yaml"}, {"nosuchcommand"}, {"abort", "svc"}, {"plan", "--nope", "x"}} {
		var out, errOut bytes.Buffer
		assert.Equal(t, ExitBadInput, Run(context.Background(), args, &out, &errOut), "%v: %s", args, errOut.String())
	}
}

func TestTemporalDownExits6(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	var out, errOut bytes.Buffer
	code := Run(context.Background(), []string{"--connect-timeout", "1s", "deploy", "../../runbooks/config-only.yaml", "--version", "v1"}, &out, &errOut)
	assert.Equal(t, ExitUnreachable, code, errOut.String())
	assert.Contains(t, errOut.String(), "cannot reach Temporal at 127.0.0.1:1")
}

func readExpected(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		file := strings.TrimPrefix(strings.SplitN(line, ":", 2)[0], "testdata/invalid/")
		out[file] = append(out[file], line)
	}
	require.NoError(t, sc.Err())
	return out
}
