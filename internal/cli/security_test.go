package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestValidateRefusesIssue13Runbooks: each crafted runbook of issue 13 that
// `rollbook validate` used to accept now exits 1 with a message naming the
// file, the line and the field.
func TestValidateRefusesIssue13Runbooks(t *testing.T) {
	t.Chdir("../../runbook")
	for file, want := range map[string]string{
		"envsub-secret.yaml":       `testdata/invalid/envsub-secret.yaml:9: steps[0].migrate.dir: migration migrations-envsub/00001_read_secret.sql line 2: annotation "-- +goose ENVSUB ON" is goose's ENVSUB ON, which would substitute the worker's environment variables (database DSNs, tokens) into the SQL`,
		"indented-down.yaml":       `testdata/invalid/indented-down.yaml:9: steps[0].migrate.dir: migration migrations-indented-down/00001_create_a.sql line 4: annotation "  -- +goose Down" is indented`,
		"http-delete-consul.yaml":  `testdata/invalid/http-delete-consul.yaml:11: steps[0].verify.checks[0].http.method: method "DELETE" is not allowed: checks only read, use GET or HEAD`,
		"backend-injection.yaml":   `testdata/invalid/backend-injection.yaml:8: routes[0].backend: invalid backend "be;shutdown": character ';' at position 3 is not allowed`,
		"invisible-names.yaml":     `testdata/invalid/invisible-names.yaml:8: routes[0].backend: invalid backend "payments_api\u202e": character U+202E at position 13 is not allowed`,
		"raw-invisible-names.yaml": `testdata/invalid/raw-invisible-names.yaml:9: routes[0].subsets[1]: invalid subset "canary\u0085raw": character U+0085 at position 7 is not allowed`,
		"too-many-checks.yaml":     `testdata/invalid/too-many-checks.yaml:10: steps[0].verify.checks: 21 checks; the limit is 20 per verify step or analysis`,
	} {
		t.Run(file, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Run(context.Background(), []string{"validate", "testdata/invalid/" + file}, &out, &errOut)
			assert.Equal(t, ExitBadInput, code)
			assert.Contains(t, errOut.String(), want)
			assert.NotContains(t, out.String(), ": ok")
		})
	}
}

// TestValidateRefusesCheckFlood: the issue's 10,000 checks × 100 samples.
func TestValidateRefusesCheckFlood(t *testing.T) {
	var b strings.Builder
	b.WriteString("apiVersion: rollbook/v1\nservice: payments-api\nsteps:\n  - name: watch\n    verify:\n      duration: 1m\n      checks:\n")
	for i := range 10_000 {
		fmt.Fprintf(&b, "        - {name: c%05d, http: {endpoint: edge, path: /healthz, samples: 100}}\n", i)
	}
	path := filepath.Join(t.TempDir(), "flood.yaml")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	var out, errOut bytes.Buffer
	code := Run(context.Background(), []string{"validate", path}, &out, &errOut)
	assert.Equal(t, ExitBadInput, code)
	assert.Contains(t, errOut.String(), path+":7: steps[0].verify.checks: 10000 checks; the limit is 20")
	assert.Less(t, errOut.Len(), 1000, "one message, not one per check")
}

// planFixture writes a valid runbook whose strings are as hostile as
// validation allows: Markdown and HTML in a migration folder name, Consul
// keys and values, a Prometheus query and a URL.
func planFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	mdir := "m|<b>x</b>`y`[l](http://e)"
	require.NoError(t, os.MkdirAll(filepath.Join(dir, mdir), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, mdir, "00001_a.sql"), []byte("-- +goose Up\nSELECT 1;\n-- +goose Down\nSELECT 2;\n"), 0o644))
	rb := `apiVersion: rollbook/v1
service: payments-api
routes:
  - {name: api, router: edge, backend: payments_api, subsets: [stable, canary], stable: stable, canary: canary}
steps:
  - name: schema
    migrate: {database: payments, dir: "` + mdir + `"}
  - name: flags
    consul:
      set:
        "app/<img src=x onerror=alert(1)>|` + "`k`" + `[a](b)": "line1\nline2 | <script>alert(1)</script> ` + "`code`" + ` ![i](http://x/i.png)"
  - name: canary
    traffic: {route: api, weights: {stable: 90, canary: 10}}
  - name: watch
    verify:
      duration: 1m
      interval: 10s
      checks:
        - name: healthz
          http: {endpoint: edge, path: /healthz}
        - name: status
          http: {url: "https://status.example.com/healthz?x=<b>|` + "`c`" + `", method: HEAD, samples: 3}
        - name: errors
          prometheus: {query: "sum(rate(x[1m])) | ` + "`y`" + ` <b>\n</b>", max: 1}
analysis:
  from: canary
  checks:
    - name: canary-errors
      router: {route: api, subset: canary, maxErrorRate: 0.05}
`
	path := filepath.Join(dir, "hostile.yaml")
	require.NoError(t, os.WriteFile(path, []byte(rb), 0o644))
	return path
}

// TestPlanShowsCheckRequests: a reviewer sees every request a check sends.
func TestPlanShowsCheckRequests(t *testing.T) {
	var out, errOut bytes.Buffer
	code := Run(context.Background(), []string{"plan", planFixture(t)}, &out, &errOut)
	require.Equal(t, ExitOK, code, errOut.String())
	s := out.String()
	assert.Contains(t, s, "healthz (http GET endpoint edge /healthz)")
	assert.Contains(t, s, "status (http HEAD https://status.example.com/healthz?x=<b>|`c` ×3)")
	assert.Contains(t, s, `errors (prometheus default: "sum(rate(x[1m])) | `+"`y`"+` <b>\n</b>" ≤ 1)`)
	assert.Contains(t, s, "Background analysis from step canary: canary-errors (router: route api subset canary error rate ≤ 0.05)")
}

// TestPlanMarkdownEscapesEverything: nothing a runbook holds can add a
// table row or cell, HTML, a link, an image or code to the pull-request
// comment.
func TestPlanMarkdownEscapesEverything(t *testing.T) {
	var out, errOut bytes.Buffer
	code := Run(context.Background(), []string{"plan", "--markdown", planFixture(t)}, &out, &errOut)
	require.Equal(t, ExitOK, code, errOut.String())
	s := out.String()
	var rows []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "| ") {
			rows = append(rows, line)
		}
	}
	require.Len(t, rows, 1+4, "a header and one row per step:\n%s", s)
	for _, row := range rows {
		assert.Equal(t, 6, unescaped(row, '|'), "cells of %q", row)
	}
	for _, c := range "`[]!<>*_" {
		assert.Zero(t, unescaped(s, c), "unescaped %q in\n%s", c, s)
	}
	assert.Contains(t, s, `&lt;img src\=x onerror\=alert\(1\)&gt;\|\`+"`k\\`"+`\[a\]\(b\)`)
	assert.Contains(t, s, `status \(http HEAD https\:\/\/status\.example\.com\/healthz\?x\=&lt;b&gt;\|\`+"`c\\`")
}

// unescaped counts occurrences of c in s not preceded by a backslash.
func unescaped(s string, c rune) int {
	n := 0
	prev := rune(0)
	for _, r := range s {
		if r == c && prev != '\\' {
			n++
		}
		if prev == '\\' && r == '\\' {
			prev = 0
			continue
		}
		prev = r
	}
	return n
}
