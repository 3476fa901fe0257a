package runbook

import (
	"fmt"
	"regexp"
	"strings"
)

// KindRelease is the kind of a step that puts a version onto a target.
const KindRelease = "release"

// ReleaseStep puts a version of the service onto a target the worker knows
// by name (a route's canary subset, a group of instances) through the
// worker-configured driver, and waits until the target is healthy. Its
// compensation puts the captured version back and waits again.
type ReleaseStep struct {
	// Target is a target name from the worker configuration; the commands,
	// addresses and credentials that reach it never appear in the runbook.
	Target string `json:"target"`
	// Version to release; default the deployment's version (the bundle's
	// --version).
	Version string `json:"version,omitempty"`
}

// VersionFor returns the version the step releases: its own, or the
// deployment's.
func (r ReleaseStep) VersionFor(deployment string) string {
	if r.Version != "" {
		return r.Version
	}
	return deployment
}

// releaseVersionRe is what a released version may look like: tags, semver
// with build metadata, image references with a digest. The version reaches
// commands as an argument and deployers in a JSON body; no shell is ever
// used, but a version that could mean something to one (or start with '-'
// and pass for an option) is refused anyway.
var releaseVersionRe = regexp.MustCompile(ReleaseVersionPattern)

// ReleaseVersionPattern is the syntax of a released version (also in the
// JSON Schema); the length limit is MaxVersionLen.
const ReleaseVersionPattern = `^[A-Za-z0-9][A-Za-z0-9._+:/@=~-]*$`

// CheckReleaseVersion says why v cannot be released onto a target, or
// returns nil.
func CheckReleaseVersion(v string) error {
	switch {
	case v == "":
		return fmt.Errorf("version is empty")
	case len(v) > MaxVersionLen:
		return fmt.Errorf("version is %d bytes; the limit is %d", len(v), MaxVersionLen)
	case releaseVersionRe.MatchString(v):
		return nil
	case strings.HasPrefix(v, "-"):
		return fmt.Errorf("version %q must not start with '-' (it would read as a command option)", v)
	}
	for _, r := range v {
		if !strings.ContainsRune("._+:/@=~-", r) && !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			what := fmt.Sprintf("%q", r)
			switch {
			case r == ' ' || r == '\t':
				what = "whitespace"
			case r == '\n' || r == '\r':
				what = "a line break"
			}
			return fmt.Errorf("version %q contains %s: use letters, digits and . _ + : / @ = ~ - (no shell metacharacters, quotes or spaces)", truncate(v, 60), what)
		}
	}
	return fmt.Errorf("version %q must start with a letter or digit", v)
}

// ValidTargetName reports whether name is a valid release target name
// (the same rule as every other name a runbook gives the worker).
func ValidTargetName(name string) bool { return nameRe.MatchString(name) }

func (c *checker) checkRelease(p string, r *ReleaseStep) {
	c.name(fieldPath(p, "target"), "release target", r.Target)
	if r.Version != "" || c.written(fieldPath(p, "version")) {
		if err := CheckReleaseVersion(r.Version); err != nil {
			c.addf(fieldPath(p, "version"), "%v", err)
		}
	}
}

// checkReleaseBundleVersion: a release step without its own version
// releases the bundle's, which then has to pass the stricter release rule.
func (c *checker) checkReleaseBundleVersion(b *Bundle) {
	if checkVersion(b.Version) != "" {
		return // reported already
	}
	for i, s := range b.Runbook.Steps {
		if s.Release != nil && s.Release.Version == "" {
			if err := CheckReleaseVersion(b.Version); err != nil {
				c.addf("version", "step %s (steps[%d]) releases this version: %v", s.Name, i, err)
			}
			return
		}
	}
}

// describeRelease is the plan line of a release step.
func describeRelease(s Step) (forward, compensation string) {
	r := s.Release
	v := "the deployment's version (--version)"
	if r.Version != "" {
		v = "version " + r.Version
	}
	return fmt.Sprintf("release %s onto target %s and wait until it is healthy", v, r.Target),
		fmt.Sprintf("put the version captured on target %s before the step back, and wait until it is healthy", r.Target)
}
