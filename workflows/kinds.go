package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/activities/contract"
	"github.com/rollbook/rollbook/runbook"
)

// stepKind is what the saga loop needs of one kind of step. Each kind lives
// in its own file (migrate.go, consul.go, traffic.go, release.go, verify.go,
// pause.go) with its forward action, its undo and its merge rule, so adding
// a kind touches that file, this table and its activity.
type stepKind interface {
	// forward runs step i. A mutating kind captures the current state,
	// pushes its compensation, then applies. resume is the carried state
	// when a continued run resumes at this step, nil otherwise.
	forward(ctx workflow.Context, d *deployment, i int, resume *Resume) error
	// undo runs one attempt of compensation c; p keeps its progress
	// across attempts.
	undo(ctx workflow.Context, d *deployment, c *Compensation, p *undoProgress) (contract.RestoreResult, error)
	// merge folds the pending compensations below comps[i] that can be
	// undone together with it, and returns the lowest index merged (i
	// itself when nothing merges).
	merge(d *deployment, i int) int
}

// stepKinds maps a runbook step kind to its implementation.
var stepKinds = map[string]stepKind{
	runbook.KindMigrate: migrateKind{},
	runbook.KindConsul:  consulKind{},
	runbook.KindTraffic: trafficKind{},
	runbook.KindRelease: releaseKind{},
	runbook.KindVerify:  verifyKind{},
	runbook.KindPause:   pauseKind{},
}

// compensationKind is the kind whose undo runs c, told by which input c
// carries (histories recorded before Compensation.Kind existed have only
// that); nil when c has none.
func compensationKind(c *Compensation) stepKind {
	switch {
	case c.Migrate != nil:
		return migrateKind{}
	case c.KV != nil:
		return consulKind{}
	case c.Traffic != nil:
		return trafficKind{}
	case c.Release != nil:
		return releaseKind{}
	}
	return nil
}

// undoProgress is what one compensation's attempts share: the stages of a
// gradual traffic restore, planned on the first attempt, and how many are
// done.
type undoProgress struct {
	planned bool
	stages  []map[string]int
	stage   int
}

// noMerge is the merge rule of kinds whose compensations are undone one by
// one.
type noMerge struct{}

func (noMerge) merge(_ *deployment, i int) int { return i }

// noUndo is the undo of kinds that change nothing and push no compensation.
type noUndo struct{}

func (noUndo) undo(_ workflow.Context, _ *deployment, c *Compensation, _ *undoProgress) (contract.RestoreResult, error) {
	return contract.RestoreResult{}, fmt.Errorf("compensation of %s has no action", c.Step)
}
