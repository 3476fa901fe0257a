package runbook

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestHugeKeyIsNotEchoed: issue 13 showed a 900 KB key echoed in full. The
// key is made of two-byte runes so that a cut in the middle of one would
// show as invalid UTF-8.
func TestHugeKeyIsNotEchoed(t *testing.T) {
	key := "app/" + strings.Repeat("é", 450_000) // 900 KB
	y := header + "steps:\n  - name: flags\n    consul:\n      set:\n        \"" + key + "\": x\n"
	_, err := Parse("t.yaml", []byte(y))
	if err == nil {
		t.Fatal("a 900 KB key was accepted")
	}
	msg := err.Error()
	if !utf8.ValidString(msg) {
		t.Error("the message was cut in the middle of a rune")
	}
	for _, line := range strings.Split(msg, "\n") {
		if len(line) > 1200 {
			t.Errorf("a message line is %d bytes: %.200s…", len(line), line)
		}
		if !strings.HasPrefix(line, "t.yaml:9: steps[0].consul.set[") {
			t.Errorf("message does not name file, line and field: %.200s", line)
		}
	}
	if !strings.Contains(msg, "more bytes]") || !strings.Contains(msg, "key \"app/") || !strings.Contains(msg, "is 900004 bytes; the limit is 512") {
		t.Errorf("message = %.600s", msg)
	}
}

// TestCheckFloodFromIssue: the runbook from issue 13 (10,000 checks of 100
// samples, about 900 KB) is refused at once, with one message about the
// count rather than thousands.
func TestCheckFloodFromIssue(t *testing.T) {
	var b strings.Builder
	b.WriteString(header + "steps:\n  - name: watch\n    verify:\n      duration: 1m\n      checks:\n")
	for i := range 10_000 {
		fmt.Fprintf(&b, "        - {name: c%05d, http: {endpoint: edge, path: /healthz, samples: 100, expectStatus: 200}}\n", i)
	}
	if b.Len() > MaxBundleBytes || b.Len() < 800_000 {
		t.Fatalf("the runbook is %d bytes; the issue's was 899 KB, under the 1 MiB limit", b.Len())
	}
	start := time.Now()
	_, err := Parse("flood.yaml", []byte(b.String()))
	took := time.Since(start)
	requireMessages(t, err, "flood.yaml:9: steps[0].verify.checks: 10000 checks; the limit is 20 per verify step or analysis (each one runs every interval)")
	if n := len(messages(err)); n != 1 {
		t.Errorf("%d messages, want 1: %.500s", n, err)
	}
	t.Logf("parsed and refused a %d-byte runbook with 10,000 checks in %s", b.Len(), took)
}

// TestReportedErrorsAreBounded: a runbook with hundreds of problems gets
// the first MaxReportedErrors and a count of the rest.
func TestReportedErrorsAreBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("apiVersion: rollbook/v1\nservice: payments-api\nsteps:\n")
	for i := range 90 {
		fmt.Fprintf(&b, "  - name: \"bad name %d\"\n    pause: {}\n", i) // 2 problems each
	}
	_, err := Parse("many.yaml", []byte(b.String()))
	got := messages(err)
	if len(got) != MaxReportedErrors+1 {
		t.Fatalf("%d messages, want %d", len(got), MaxReportedErrors+1)
	}
	if last := got[len(got)-1]; last != "many.yaml:104: 80 more problems not shown (only the first 100 are reported)" {
		t.Errorf("last message = %q", last)
	}
}

func TestTruncateRunes(t *testing.T) {
	for _, tt := range []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"abcdef", 3, "abc…[3 more bytes]"},
		{"ééé", 2, "éé…[2 more bytes]"},
		{"a\u202eb", 1, "a…[4 more bytes]"},
	} {
		if got := truncateRunes(tt.s, tt.n); got != tt.want {
			t.Errorf("truncateRunes(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
	if got := quoteShort(strings.Repeat("\u202e", 100)); !strings.HasPrefix(got, `"\u202e`) || !strings.HasSuffix(got, "…[240 more bytes]") {
		t.Errorf("quoteShort = %q", got)
	}
}

// TestLimitsOnLists: routes, subsets and queries are bounded too.
func TestLimitsOnLists(t *testing.T) {
	var b strings.Builder
	b.WriteString("apiVersion: rollbook/v1\nservice: payments-api\nroutes:\n")
	for i := range MaxRoutes + 1 {
		fmt.Fprintf(&b, "  - {name: r%d, router: edge, backend: be, subsets: [s0, s1], stable: s0, canary: s1}\n", i)
	}
	subsets := make([]string, MaxSubsets+1)
	for i := range subsets {
		subsets[i] = fmt.Sprintf("s%d", i)
	}
	fmt.Fprintf(&b, "  - {name: wide, router: edge, backend: be, subsets: [%s], stable: s0, canary: s1}\n", strings.Join(subsets, ", "))
	fmt.Fprintf(&b, "steps:\n  - name: watch\n    verify:\n      duration: 1m\n      checks:\n        - {name: q, prometheus: {query: %q, max: 1}}\n", strings.Repeat("x", MaxQueryBytes+1))
	_, err := Parse("t.yaml", []byte(b.String()))
	requireMessages(t, err,
		"t.yaml:3: routes: runbook declares 18 routes; the limit is 16",
		"t.yaml:21: routes[17].subsets: a route has at most 16 subsets, got 17",
		"t.yaml:27: steps[0].verify.checks[0].prometheus.query: query is 4097 bytes; the limit is 4096")
}
