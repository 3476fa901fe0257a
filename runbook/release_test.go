package runbook

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReleaseStepParses(t *testing.T) {
	src := header + `steps:
  - name: release-canary
    release: {target: canary}
  - name: pin-stable
    release: {target: stable-pool.eu_1, version: "1.4.2-rc.1+b7.abc"}
`
	rb, err := Parse("ok.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	s := rb.Steps[0]
	if s.Kind() != KindRelease || !s.Mutating() {
		t.Errorf("kind %q mutating %v, want release and true", s.Kind(), s.Mutating())
	}
	if got := s.Release.VersionFor("v2"); got != "v2" {
		t.Errorf("default version = %q, want the deployment's v2", got)
	}
	if got := rb.Steps[1].Release.VersionFor("v2"); got != "1.4.2-rc.1+b7.abc" {
		t.Errorf("explicit version = %q", got)
	}
}

func TestReleaseStepRefusesBadInput(t *testing.T) {
	cases := []struct {
		name, step string
		want       string
	}{
		{"no target", `release: {version: v1}`,
			`ok.yaml:7: steps[0].release.target: release target is required`},
		{"target with slash", `release: {target: "../canary"}`,
			`ok.yaml:7: steps[0].release.target: invalid release target "../canary": character '.' at position 1 is not allowed; use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters`},
		{"leading dash target", `release: {target: "-canary"}`,
			`ok.yaml:7: steps[0].release.target: invalid release target "-canary": character '-' at position 1 is not allowed; use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters`},
		{"long target", `release: {target: ` + strings.Repeat("a", 64) + `}`,
			`ok.yaml:7: steps[0].release.target: invalid release target "` + strings.Repeat("a", 64) + `": 64 characters, at most 63`},
		{"semicolon", `release: {target: canary, version: "v2; rm -rf /"}`,
			`ok.yaml:7: steps[0].release.version: invalid version "v2; rm -rf /": character ';' at position 3 is not allowed; use letters, digits, '.', '_', '+' and '-', starting with a letter or digit (such as v1.2.3-rc.1+build.7 or a git sha)`},
		{"command substitution", `release: {target: canary, version: "$(id)"}`,
			`ok.yaml:7: steps[0].release.version: invalid version "$(id)": character '$' at position 1 is not allowed; use letters, digits, '.', '_', '+' and '-', starting with a letter or digit (such as v1.2.3-rc.1+build.7 or a git sha)`},
		{"backtick", "release: {target: canary, version: \"v`id`\"}",
			"ok.yaml:7: steps[0].release.version: invalid version \"v`id`\": character '`' at position 2 is not allowed; use letters, digits, '.', '_', '+' and '-', starting with a letter or digit (such as v1.2.3-rc.1+build.7 or a git sha)"},
		{"quote", `release: {target: canary, version: "v2'"}`,
			`ok.yaml:7: steps[0].release.version: invalid version "v2'": character '\'' at position 3 is not allowed; use letters, digits, '.', '_', '+' and '-', starting with a letter or digit (such as v1.2.3-rc.1+build.7 or a git sha)`},
		{"pipe", `release: {target: canary, version: "v2|cat"}`,
			`ok.yaml:7: steps[0].release.version: invalid version "v2|cat": character '|' at position 3 is not allowed; use letters, digits, '.', '_', '+' and '-', starting with a letter or digit (such as v1.2.3-rc.1+build.7 or a git sha)`},
		{"space", `release: {target: canary, version: "v2 v3"}`,
			`ok.yaml:7: steps[0].release.version: invalid version "v2 v3": character U+0020 at position 3 is not allowed; use letters, digits, '.', '_', '+' and '-', starting with a letter or digit (such as v1.2.3-rc.1+build.7 or a git sha)`},
		{"newline", `release: {target: canary, version: "v2\nv3"}`,
			`ok.yaml:7: steps[0].release.version: invalid version "v2\nv3": character U+000A at position 3 is not allowed; use letters, digits, '.', '_', '+' and '-', starting with a letter or digit (such as v1.2.3-rc.1+build.7 or a git sha)`},
		{"option", `release: {target: canary, version: "--help"}`,
			`ok.yaml:7: steps[0].release.version: invalid version "--help": character '-' at position 1 is not allowed; use letters, digits, '.', '_', '+' and '-', starting with a letter or digit (such as v1.2.3-rc.1+build.7 or a git sha)`},
		{"empty written", `release: {target: canary, version: ""}`,
			`ok.yaml:7: steps[0].release.version: version is required (for example a git tag, a git sha or an image tag)`},
		{"two kinds", "release: {target: canary}\n    pause: {duration: 5s}",
			`ok.yaml:6: steps[0]: step "r" has 2 kinds (pause, release); set exactly one`},
		{"unknown field", `release: {target: canary, command: "./deploy.sh"}`,
			`ok.yaml:7: steps[0].release.command: unknown field "command"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := header + "steps:\n  - name: r\n    " + tc.step + "\n"
			_, err := Parse("ok.yaml", []byte(src))
			requireMessages(t, err, tc.want)
		})
	}
}

// A release step without a version releases the bundle's: the bundle's
// version then has to pass the release rule, and a runbook without such a
// step keeps the looser bundle rule.
func TestBundleVersionCheckedForRelease(t *testing.T) {
	dir := t.TempDir()
	write := func(name, steps string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(header+"steps:\n"+steps), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rel := write("rel.yaml", "  - name: r\n    release: {target: canary}\n")
	if _, err := BuildBundle(rel, "v2", Origin{}); err != nil {
		t.Fatalf("v2: %v", err)
	}
	_, err := BuildBundle(rel, "v2$(id)", Origin{})
	requireMessages(t, err, rel+`: version: invalid version "v2$(id)": character '$' at position 3 is not allowed; use letters, digits, '.', '_', '+' and '-', starting with a letter or digit (such as v1.2.3-rc.1+build.7 or a git sha)`)
}

func TestPlanShowsRelease(t *testing.T) {
	rb, err := Parse("ok.yaml", []byte(header+"steps:\n  - name: r\n    release: {target: canary}\n  - name: s\n    release: {target: stable, version: v9}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := Plan(rb)
	if p[0].Kind != KindRelease ||
		p[0].Forward != "release the deployment's version (--version) onto target canary and wait until it is healthy" ||
		p[0].Compensation != "put the version captured on target canary before the step back, and wait until it is healthy" {
		t.Errorf("plan[0] = %+v", p[0])
	}
	if !strings.Contains(p[1].Forward, "release version v9 onto target stable") {
		t.Errorf("plan[1] = %+v", p[1])
	}
}
