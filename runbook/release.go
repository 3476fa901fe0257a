package runbook

import (
	"fmt"
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

// ValidTargetName reports whether name is a valid release target name
// (the same rule as every other name a runbook gives the worker).
func ValidTargetName(name string) bool { return CheckName("release target", name) == nil }

func (c *checker) checkRelease(p string, r *ReleaseStep) {
	c.name(fieldPath(p, "target"), "release target", r.Target)
	if r.Version != "" || c.written(fieldPath(p, "version")) {
		if err := CheckVersion(r.Version); err != nil {
			c.addf(fieldPath(p, "version"), "%s", nameMsg(err))
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
