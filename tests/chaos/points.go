package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rollbook/rollbook/workflows"
)

// Paths a run takes after its kill.
const (
	pathSuccess  = "success"  // ends succeeded
	pathRollback = "rollback" // the canary turns bad: rolled-back
	pathAbort    = "abort"    // an operator aborts: aborted
	harnessPause = "paused"   // kill point driven by the harness, not by ROLLBOOK_CRASHPOINT
	stepApproval = "approval" // the approval pause step inserted into the runbook
	stepExpand   = "expand-schema"
	stepContract = "contract-schema"
	stepFlags    = "feature-flags"
	// The first traffic step and its verification, after release-canary.
	stepFirstTraffic = "canary-10"
	stepFirstVerify  = "verify-10"
)

// killPoint is one run of the campaign: where the worker dies, and how the
// deployment is steered so that the kill lands on the path planned for it.
type killPoint struct {
	// Name is the ROLLBOOK_CRASHPOINT value (internal/faults syntax), or
	// paused:<then> for the harness-driven kill while paused at approval.
	Name string `json:"point"`
	// Kind is what is interrupted: migrate, consul, traffic, verify, pause, release.
	Kind string `json:"kind"`
	// Phase: capture, apply, compensate, mid-migration, archive (between a
	// file's archive and its Down), verify, paused.
	Phase string `json:"phase"`
	Path  string `json:"path"`
	// BadFromStart makes the canary fail before the deployment starts:
	// verify-10 fails, rolling back from 10 %.
	BadFromStart bool `json:"badFromStart,omitempty"`
	// BadAt makes the canary fail when this step starts.
	BadAt string `json:"badAt,omitempty"`
	// AbortAt sends abort when this step starts.
	AbortAt string `json:"abortAt,omitempty"`
	// AbortAfterKill sends abort while the worker is dead (before the new
	// one starts): the abort meets an activity stranded on a dead worker.
	AbortAfterKill bool `json:"abortAfterKill,omitempty"`
	// Why says what the point tests.
	Why string `json:"why"`
}

func (p killPoint) crashpoint() string {
	if strings.HasPrefix(p.Name, harnessPause+":") {
		return ""
	}
	return p.Name
}

func (p killPoint) expected() string {
	switch p.Path {
	case pathRollback:
		return string(workflows.OutcomeRolledBack)
	case pathAbort:
		return string(workflows.OutcomeAborted)
	}
	return string(workflows.OutcomeSucceeded)
}

func (p killPoint) trigger() string {
	var t []string
	if p.BadFromStart {
		t = append(t, "canary bad from the start")
	}
	if p.BadAt != "" {
		t = append(t, "canary bad at "+p.BadAt)
	}
	if p.AbortAt != "" {
		t = append(t, "abort at "+p.AbortAt)
	}
	if p.AbortAfterKill {
		t = append(t, "abort while the worker is dead")
	}
	return strings.Join(t, ", ")
}

// catalogue lists every kill point: before and after capture, apply and
// compensate of each mutating kind, between the files of a migration up and
// down, during verification, during the gradual traffic restore and while
// paused at an approval. Forward points alternate between the success and
// the rollback paths so that half the runs roll back; compensate points are
// on the rollback path by nature.
var catalogue = []killPoint{
	// migrate (expand-schema: 3 files)
	{Name: "before:CaptureSchema@expand-schema", Kind: "migrate", Phase: "capture", Path: pathSuccess,
		Why: "the capture attempt dies before reading; its retry runs on the new worker"},
	{Name: "after:CaptureSchema@expand-schema", Kind: "migrate", Phase: "capture", Path: pathSuccess,
		Why: "the capture read the version but the answer is lost"},
	{Name: "before:MigrateUp@expand-schema", Kind: "migrate", Phase: "apply", Path: pathAbort, AbortAfterKill: true,
		Why: "abort while the migration is stranded on a dead worker: the compensation waits for it and migrates down nothing"},
	{Name: "mid1:MigrateUp@expand-schema", Kind: "migrate", Phase: "mid-migration", Path: pathRollback, BadFromStart: true,
		Why: "killed after file 1 of 3 committed: the retry applies 2 and 3, the rollback reverts all"},
	{Name: "mid2:MigrateUp@expand-schema", Kind: "migrate", Phase: "mid-migration", Path: pathSuccess,
		Why: "killed after file 2 of 3 committed: the retry applies only file 3"},
	{Name: "after:MigrateUp@expand-schema", Kind: "migrate", Phase: "apply", Path: pathSuccess,
		Why: "the schema is at 3 but the answer is lost: the retry finds it done"},
	{Name: "before:MigrateDown@expand-schema", Kind: "migrate", Phase: "compensate", Path: pathRollback, BadFromStart: true,
		Why: "the migrate-down attempt dies before it starts"},
	{Name: "mid1:MigrateDown@expand-schema", Kind: "migrate", Phase: "mid-migration", Path: pathAbort, AbortAt: "verify-10",
		Why: "killed after one Down file: the retry reverts the other two"},
	// preserve-then-Down (onRollback: archive): the Downs run 3, 2, 1;
	// file 2 added external_reference, file 1 created ledger_entries.
	{Name: "archived2:MigrateDown@expand-schema", Kind: "migrate", Phase: "archive", Path: pathRollback, BadFromStart: true,
		Why: "killed after external_reference's values were archived, before file 2's Down: the retry archives again (no duplicate, rows written since included) and then drops the column"},
	{Name: "archived3:MigrateDown@expand-schema", Kind: "migrate", Phase: "archive", Path: pathAbort, AbortAt: "verify-10",
		Why: "killed after ledger_entries was copied into rollbook_archive, before DROP TABLE: the retry upserts the copy and runs the Down"},
	{Name: "after:MigrateDown@expand-schema", Kind: "migrate", Phase: "compensate", Path: pathRollback, BadFromStart: true,
		Why: "the schema is back at 0 but the answer is lost: the retry reports already restored"},

	// consul (feature-flags: one existing key changed, one new key)
	{Name: "before:CaptureKV@feature-flags", Kind: "consul", Phase: "capture", Path: pathSuccess,
		Why: "the key capture dies before reading"},
	{Name: "after:CaptureKV@feature-flags", Kind: "consul", Phase: "capture", Path: pathSuccess,
		Why: "the captured keys are lost; the retry captures the same"},
	{Name: "before:ApplyKV@feature-flags", Kind: "consul", Phase: "apply", Path: pathRollback, BadFromStart: true,
		Why: "the transaction never ran; the rollback restores nothing that was not written"},
	{Name: "after:ApplyKV@feature-flags", Kind: "consul", Phase: "apply", Path: pathSuccess,
		Why: "the transaction committed but the answer is lost: the CAS retry recognises its own write"},
	{Name: "before:RestoreKV@feature-flags", Kind: "consul", Phase: "compensate", Path: pathAbort, AbortAt: "verify-10",
		Why: "the restore dies before it reads"},
	{Name: "after:RestoreKV@feature-flags", Kind: "consul", Phase: "compensate", Path: pathRollback, BadFromStart: true,
		Why: "keys restored (one deleted) but the answer is lost: the retry reports already restored"},

	// traffic (canary-10 / canary-50 / canary-100)
	{Name: "before:CaptureWeights@canary-10", Kind: "traffic", Phase: "capture", Path: pathSuccess,
		Why: "the weight capture dies before reading"},
	{Name: "after:CaptureWeights@canary-50", Kind: "traffic", Phase: "capture", Path: pathRollback, BadAt: "verify-50",
		Why: "the captured 90/10 is lost; the retry captures it again and the rollback goes 50 → 10 → 0"},
	{Name: "before:SetWeights@canary-50", Kind: "traffic", Phase: "apply", Path: pathAbort, AbortAfterKill: true,
		Why: "abort while the weight change is stranded: the undo finds the weights still captured"},
	{Name: "after:SetWeights@canary-10", Kind: "traffic", Phase: "apply", Path: pathSuccess,
		Why: "weights at 90/10 but the answer is lost: the retry finds them at target"},
	{Name: "before:SetWeights@canary-100", Kind: "traffic", Phase: "apply", Path: pathSuccess,
		Why: "the last weight change dies before it writes"},
	{Name: "after:SetWeights@canary-100", Kind: "traffic", Phase: "apply", Path: pathRollback, BadAt: "verify-100",
		Why: "weights at 0/100 with the answer lost, then the canary fails: the restore from 100 % is gradual"},
	{Name: "before:RestoreWeights@canary-10", Kind: "traffic", Phase: "compensate", Path: pathRollback, BadFromStart: true,
		Why: "the weight restore dies before it reads"},
	{Name: "after:RestoreWeights@canary-10", Kind: "traffic", Phase: "compensate", Path: pathAbort, AbortAt: "verify-10",
		Why: "weights back at the captured raw 256/0 but the answer is lost: the retry reports already restored"},
	{Name: "after:RestoreWeights@canary-100#1", Kind: "traffic", Phase: "compensate", Path: pathAbort, AbortAt: "verify-100",
		Why: "during the gradual restore 100 → 50 → 10 → 0: killed after the 50 % stage, the retry goes on from there"},
	{Name: "before:RestoreWeights@canary-50#2", Kind: "traffic", Phase: "compensate", Path: pathRollback, BadAt: "verify-50",
		Why: "during the gradual restore 50 → 10 → 0: killed before the last stage"},

	// verification
	{Name: "before:Measure@verify-50#2", Kind: "verify", Phase: "verify", Path: pathSuccess,
		Why: "a measurement round of verify-50 dies in flight"},
	// continuous checks: the canary's error checks of the example are
	// watched by WatchRouter (the analysis from canary-10, each verify
	// step), so a bad canary is caught by a watch, not by a Measure round.
	{Name: "after:WatchRouter@analysis", Kind: "verify", Phase: "verify", Path: pathRollback, BadFromStart: true,
		Why: "the analysis's watch tripped on the canary's errors but the answer dies with the worker: after the heartbeat timeout the retry watches a fresh window, trips again and the rollback runs"},
	{Name: "before:WatchRouter@verify-50", Kind: "verify", Phase: "verify", Path: pathRollback, BadAt: "verify-50",
		Why: "the verify step's watch dies before its first reading; the new worker's watches catch the canary turning bad"},

	// paused at the approval step (harness-driven: no crash point)
	{Name: harnessPause + ":approve", Kind: "pause", Phase: "paused", Path: pathSuccess,
		Why: "killed while waiting for approval; approved on the new worker"},
	{Name: harnessPause + ":abort", Kind: "pause", Phase: "paused", Path: pathAbort,
		Why: "killed while waiting for approval; aborted on the new worker"},

	// contract (the point of no return)
	{Name: "before:CaptureSchema@contract-schema", Kind: "migrate", Phase: "capture", Path: pathSuccess,
		Why: "the last capture before the point of no return dies"},
	{Name: "before:MigrateUp@contract-schema", Kind: "migrate", Phase: "apply", Path: pathSuccess,
		Why: "the irreversible migration dies before it starts"},
	{Name: "after:MigrateUp@contract-schema", Kind: "migrate", Phase: "apply", Path: pathSuccess,
		Why: "the irreversible migration committed but the answer is lost"},

	// release (release-canary onto the idle canary; promote-stable onto stable after the
	// canary took 100 %): mid1 is inside the activity, after the deploy replaced the
	// instance and before the health wait. The state check includes the version each
	// target serves.
	{Name: "before:CaptureRelease@release-canary", Kind: "release", Phase: "capture", Path: pathSuccess,
		Why: "the version capture dies before reading the canary"},
	{Name: "before:ApplyRelease@release-canary", Kind: "release", Phase: "apply", Path: pathAbort, AbortAfterKill: true,
		Why: "abort while the release is stranded on a dead worker: the compensation waits for it and puts the captured version back"},
	{Name: "mid1:ApplyRelease@release-canary", Kind: "release", Phase: "apply", Path: pathRollback, BadFromStart: true,
		Why: "killed after the canary was replaced, before its health wait: the retry finds the version there, the rollback puts the old one back"},
	{Name: "after:ApplyRelease@release-canary", Kind: "release", Phase: "apply", Path: pathSuccess,
		Why: "the canary runs the new version, healthy, but the answer is lost: the retry deploys nothing"},
	{Name: "mid1:ApplyRelease@promote-stable", Kind: "release", Phase: "apply", Path: pathSuccess,
		Why: "killed in the middle of the promotion (stable replaced, not yet health-checked): the new worker finishes it"},
	{Name: "after:ApplyRelease@promote-stable", Kind: "release", Phase: "apply", Path: pathAbort, AbortAt: "verify-stable",
		Why: "the promotion's answer is lost, then an abort: traffic back to the canary, stable back to the old version"},
	{Name: "before:RestoreRelease@release-canary", Kind: "release", Phase: "compensate", Path: pathRollback, BadFromStart: true,
		Why: "the canary's restore dies before it reads"},
	{Name: "mid1:RestoreRelease@release-canary", Kind: "release", Phase: "compensate", Path: pathAbort, AbortAt: "verify-10",
		Why: "killed after the old version was put back, before the health wait: the retry finds it there (already restored)"},
	{Name: "after:RestoreRelease@release-canary", Kind: "release", Phase: "compensate", Path: pathRollback, BadAt: "verify-50",
		Why: "the canary is back at the old version but the answer is lost"},
	{Name: "mid1:RestoreRelease@promote-stable", Kind: "release", Phase: "compensate", Path: pathAbort, AbortAt: "verify-stable",
		Why: "an abort after the promotion: killed while putting the old version back onto stable"},
}

// selectPoints picks points by exact name or substring, comma-separated;
// "" or "all" selects everything.
func selectPoints(spec string) ([]killPoint, error) {
	if spec == "" || spec == "all" {
		return catalogue, nil
	}
	var out []killPoint
	seen := map[string]bool{}
	for _, want := range strings.Split(spec, ",") {
		want = strings.TrimSpace(want)
		if want == "" {
			continue
		}
		exact := slices.ContainsFunc(catalogue, func(p killPoint) bool { return p.Name == want })
		found := false
		for _, p := range catalogue {
			if p.Name == want || (!exact && strings.Contains(p.Name, want)) {
				found = true
				if !seen[p.Name] {
					seen[p.Name] = true
					out = append(out, p)
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("-points: no kill point matches %q (see -list)", want)
		}
	}
	return out, nil
}
