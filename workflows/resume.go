package workflows

import (
	"fmt"
	"slices"

	"go.temporal.io/sdk/temporal"

	"github.com/rollbook/rollbook/runbook"
)

// ErrTypeInvalidResume refuses a continue-as-new input whose carried state
// does not fit its bundle.
const ErrTypeInvalidResume = "RollbookInvalidResume"

// compStates are the states a carried compensation may be in: continue-as-new
// happens during the forward phase, before any compensation ran.
var carriedCompStates = []CompState{CompPending, CompDiscarded}

// checkResume checks Input.Resume the way Bundle.Check checks the bundle:
// anyone who may start workflows can write it, and the workflow indexes
// steps and runs compensations from it. Every field must fit the bundle's
// runbook: the step index names a verify step, the check states match that
// step's checks, the status lists the runbook's steps, and every carried
// compensation undoes an earlier mutating step of the same kind on the same
// database, keys, route or release target. It returns nil or a non-retryable error naming
// the field; nothing has run when it fails.
func checkResume(in *Input) error {
	r := in.Resume
	if r == nil {
		return nil
	}
	if msg := resumeProblem(&in.Runbook, in.Version, r); msg != "" {
		return temporal.NewNonRetryableApplicationError("invalid resume state: "+msg, ErrTypeInvalidResume, nil)
	}
	return nil
}

func resumeProblem(rb *runbook.Runbook, version string, r *Resume) string {
	steps := rb.Steps
	switch {
	case r.Generation < 1:
		return fmt.Sprintf("resume.generation: %d; a continued run is generation 1 or later", r.Generation)
	case r.StepIndex < 0 || r.StepIndex >= len(steps):
		return fmt.Sprintf("resume.stepIndex: %d is outside the runbook's steps 0–%d", r.StepIndex, len(steps)-1)
	case steps[r.StepIndex].Verify == nil:
		return fmt.Sprintf("resume.stepIndex: step %d (%s) is a %s step; a run continues only in a verify step", r.StepIndex, steps[r.StepIndex].Name, steps[r.StepIndex].Kind())
	}
	if msg := checkRunProblem("resume.verify", r.Verify, len(steps[r.StepIndex].Verify.Checks)); msg != "" {
		return msg
	}
	if r.Verify.Name != steps[r.StepIndex].Name {
		return fmt.Sprintf("resume.verify.name: %q is not step %d's name %q", r.Verify.Name, r.StepIndex, steps[r.StepIndex].Name)
	}
	if r.Analysis != nil {
		if rb.Analysis == nil {
			return "resume.analysis: the runbook has no analysis"
		}
		if msg := checkRunProblem("resume.analysis", r.Analysis, len(rb.Analysis.Checks)); msg != "" {
			return msg
		}
	}
	if msg := statusProblem(rb, &r.Status); msg != "" {
		return msg
	}
	if r.Pivot != "" {
		i := stepIndexIn(steps, r.Pivot)
		if i < 0 || i >= r.StepIndex || !steps[i].Irreversible {
			return fmt.Sprintf("resume.pivot: %q is not an irreversible step before step %d", r.Pivot, r.StepIndex)
		}
	}
	if len(r.Comps) > len(steps) {
		return fmt.Sprintf("resume.compensations: %d entries for %d steps", len(r.Comps), len(steps))
	}
	for i := range r.Comps {
		if msg := compProblem(rb, version, r.StepIndex, i, &r.Comps[i]); msg != "" {
			return msg
		}
	}
	return ""
}

func checkRunProblem(field string, run *CheckRun, checks int) string {
	switch {
	case run == nil:
		return field + ": required"
	case len(run.Trackers) != checks || len(run.First) != checks:
		return fmt.Sprintf("%s: state for %d/%d checks, the step has %d", field, len(run.Trackers), len(run.First), checks)
	case run.Round < 0:
		return fmt.Sprintf("%s.round: %d is negative", field, run.Round)
	case len(run.Prev) > checks:
		return fmt.Sprintf("%s.previous: %d measurements for %d checks", field, len(run.Prev), checks)
	case run.StartedAt.IsZero():
		return field + ".startedAt: required"
	}
	return ""
}

func statusProblem(rb *runbook.Runbook, s *Status) string {
	switch {
	case s.Service != rb.Service:
		return fmt.Sprintf("resume.status.service: %q is not the runbook's service %q", s.Service, rb.Service)
	case s.StartedAt.IsZero():
		return "resume.status.startedAt: required"
	case len(s.Steps) != len(rb.Steps):
		return fmt.Sprintf("resume.status.steps: %d entries, the runbook has %d steps", len(s.Steps), len(rb.Steps))
	case len(s.Rounds) > maxRounds:
		return fmt.Sprintf("resume.status.rounds: %d entries; at most %d are kept", len(s.Rounds), maxRounds)
	case len(s.Ignored) > maxIgnored:
		return fmt.Sprintf("resume.status.ignoredSignals: %d entries; at most %d are kept", len(s.Ignored), maxIgnored)
	}
	for i, st := range s.Steps {
		if st.Name != rb.Steps[i].Name || st.Kind != rb.Steps[i].Kind() {
			return fmt.Sprintf("resume.status.steps[%d]: %s %q is not the runbook's %s step %q", i, st.Kind, st.Name, rb.Steps[i].Kind(), rb.Steps[i].Name)
		}
	}
	return ""
}

// compProblem checks that carried compensation i undoes step of the runbook
// before the resumed step, of the same kind and on the same target, so a
// forged input cannot make the rollback touch anything the runbook does not.
func compProblem(rb *runbook.Runbook, version string, before, i int, c *Compensation) string {
	f := fmt.Sprintf("resume.compensations[%d]", i)
	si := stepIndexIn(rb.Steps, c.Step)
	if si < 0 || si >= before {
		return fmt.Sprintf("%s.step: %q is not a step before step %d", f, c.Step, before)
	}
	step := rb.Steps[si]
	if !step.Mutating() || c.Kind != step.Kind() {
		return fmt.Sprintf("%s.kind: %q does not undo %s step %q", f, c.Kind, step.Kind(), step.Name)
	}
	if !slices.Contains(carriedCompStates, c.State) {
		return fmt.Sprintf("%s.state: %q; a carried compensation is %s", f, c.State, "pending or discarded")
	}
	set := 0
	for _, p := range []bool{c.Migrate != nil, c.KV != nil, c.Traffic != nil, c.Release != nil} {
		if p {
			set++
		}
	}
	if set != 1 {
		return fmt.Sprintf("%s: exactly one of migrate, kv, traffic, release must be set, got %d", f, set)
	}
	switch {
	case step.Migrate != nil:
		if c.Migrate == nil || c.Migrate.Database != step.Migrate.Database || c.Migrate.Dir != step.Migrate.Dir {
			return fmt.Sprintf("%s.migrate: does not name step %q's database and folder", f, step.Name)
		}
	case step.Consul != nil:
		if c.KV == nil || !sameKeys(c.KV.Ops, step.Consul.Ops()) {
			return fmt.Sprintf("%s.kv.ops: not the keys of step %q", f, step.Name)
		}
		if len(c.KV.Captured.Entries) != len(c.KV.Ops) {
			return fmt.Sprintf("%s.kv.captured: %d entries for %d keys", f, len(c.KV.Captured.Entries), len(c.KV.Ops))
		}
	case step.Release != nil:
		if c.Release == nil || c.Release.Target != step.Release.Target || c.Release.Applied != "" && c.Release.Applied != step.Release.VersionFor(version) {
			return fmt.Sprintf("%s.release: not step %q's target and version", f, step.Name)
		}
	case step.Traffic != nil:
		var route *runbook.Route
		for j := range rb.Routes {
			if rb.Routes[j].Name == step.Traffic.Route {
				route = &rb.Routes[j]
			}
		}
		if c.Traffic == nil || route == nil || !sameRouteDef(c.Traffic.Route, *route) {
			return fmt.Sprintf("%s.traffic.route: not step %q's route", f, step.Name)
		}
	}
	return ""
}

// sameKeys compares keys and operations; values may be left out of a
// record (they are the runbook's, see consul).
func sameKeys(a, b []runbook.KVOp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || a[i].Delete != b[i].Delete {
			return false
		}
	}
	return true
}

func sameRouteDef(a, b runbook.Route) bool {
	return a.Name == b.Name && a.Router == b.Router && a.Backend == b.Backend && a.Stable == b.Stable &&
		a.Canary == b.Canary && slices.Equal(a.Subsets, b.Subsets)
}

func stepIndexIn(steps []runbook.Step, name string) int {
	for i, s := range steps {
		if s.Name == name {
			return i
		}
	}
	return -1
}
