package workflows

import (
	"fmt"
	"strings"

	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/activities/contract"
	"github.com/rollbook/rollbook/runbook"
)

// The migrate step: forward (capture the version, apply file by file while
// learning what each file creates) and its compensation, chosen by the
// step's onRollback policy:
//
//   - keep: no activity; the schema stays as migrated and the compensation
//     records that it was kept (the stable version runs on an expanded
//     schema, and the data written meanwhile stays in the live tables);
//   - archive: MigrateDown preserves what each file's Down would destroy
//     in the rollbook_archive schema, then runs that Down;
//   - drop: MigrateDown runs the Downs and preserves nothing.

// migrateKind is the migrate step kind; each compensation is undone on its
// own.
type migrateKind struct{ noMerge }

func (migrateKind) forward(ctx workflow.Context, d *deployment, i int, _ *Resume) error {
	return d.migrate(ctx, i)
}

func (migrateKind) undo(ctx workflow.Context, d *deployment, c *Compensation, _ *undoProgress) (contract.RestoreResult, error) {
	return d.undoMigrate(ctx, c)
}

// versionOnRollback gates the onRollback policies: runs recorded before
// them migrate down on rollback, as they did when they were recorded.
const versionOnRollback = "migrate-on-rollback"

func (d *deployment) migrate(ctx workflow.Context, i int) error {
	step := d.rb.Steps[i]
	m := step.Migrate
	in := contract.MigrateInput{
		StepRef:  d.ref(step.Name),
		Database: m.Database,
		Dir:      m.Dir,
		Files:    runbook.FilesUnder(d.in.Files, m.Dir),
	}
	target, err := runbook.TargetVersion(*m, d.in.Files)
	if err != nil {
		return fmt.Errorf("resolving the target version: %w", err)
	}
	policy := ""
	if workflow.GetVersion(ctx, versionOnRollback, workflow.DefaultVersion, 1) >= 1 && !step.Irreversible {
		policy = m.RollbackPolicy()
	}
	var captured contract.SchemaState
	cctx := workflow.WithActivityOptions(ctx, captureOptions(fmt.Sprintf("%s: read schema version of %s", step.Name, m.Database)))
	if err := workflow.ExecuteActivity(cctx, contract.ActivityCaptureSchema, in).Get(ctx, &captured); err != nil {
		return fmt.Errorf("capturing the schema version of %s: %w", m.Database, err)
	}
	d.status.Steps[i].Captured = &Captured{Schema: &captured, SchemaTarget: target}
	// An irreversible migration may have no Down section: it gets no
	// compensation, and a failure half-way is reported for a human.
	ci := -1
	if !step.Irreversible {
		// The record leaves the files out: they are in the bundle once, and
		// execCompensation takes them from there. A copy per compensation
		// would be repeated in every status answer, in the result and in
		// the continue-as-new input, where a bundle near MaxBundleBytes
		// passed Temporal's 2 MiB payload limit and the server terminated
		// the deployment half-way.
		rec := in
		rec.Files = nil
		ci = d.push(Compensation{Step: step.Name, Kind: runbook.KindMigrate,
			Migrate: &contract.MigrateDownInput{MigrateInput: rec, Captured: captured, Policy: policy}})
	}
	actx := workflow.WithActivityOptions(ctx, applyOptions(fmt.Sprintf("%s: migrate %s from %d to %d", step.Name, m.Database, captured.Version, target), true))
	var res contract.MigrateResult
	up := contract.MigrateUpInput{MigrateInput: in, Target: target, Policy: policy}
	if err := workflow.ExecuteActivity(actx, contract.ActivityMigrateUp, up).Get(ctx, &res); err != nil {
		return fmt.Errorf("migrating %s to version %d: %w", m.Database, target, err)
	}
	if ci >= 0 {
		d.comps[ci].ApplyDone = true
		// Names only: what each file created, for the archive and the
		// status. The activity finds the same in the database when this
		// answer is lost.
		d.comps[ci].Migrate.Created = res.Files
	}
	d.status.Steps[i].Detail = fmt.Sprintf("schema %s: %d → %d", m.Database, res.From, res.To)
	if created := createdSummary(res.Files); created != "" {
		d.status.Steps[i].Detail += "; created " + created
	}
	if policy != "" {
		d.status.Steps[i].Detail += "; on rollback: " + policy
	}
	return nil
}

// undoMigrate runs one attempt of a migrate compensation.
func (d *deployment) undoMigrate(ctx workflow.Context, c *Compensation) (contract.RestoreResult, error) {
	in := *c.Migrate
	if in.Policy == runbook.OnRollbackKeep {
		return contract.RestoreResult{Detail: fmt.Sprintf(
			"schema of database %s kept as migrated (onRollback: keep): the previous version runs on it and the data written meanwhile stays in the live tables; a later deployment re-applies nothing",
			in.Database)}, nil
	}
	if len(in.Files) == 0 { // recorded without them (see migrate)
		in.Files = runbook.FilesUnder(d.in.Files, in.Dir)
	}
	what := fmt.Sprintf("undo %s: migrate %s down to %d", c.Step, in.Database, in.Captured.Version)
	if in.Policy == runbook.OnRollbackArchive {
		what = fmt.Sprintf("undo %s: preserve data, then migrate %s down to %d", c.Step, in.Database, in.Captured.Version)
	}
	var res contract.RestoreResult
	actx := workflow.WithActivityOptions(ctx, compOptions(what, true))
	err := workflow.ExecuteActivity(actx, contract.ActivityMigrateDown, in).Get(ctx, &res)
	return res, err
}

// recordPreserved puts what a migrate compensation kept or archived where
// operators look: the compensation, the step's detail (status, Web UI).
func (d *deployment) recordPreserved(c *Compensation, res contract.RestoreResult) {
	if c.Migrate == nil {
		return
	}
	c.Kept = c.Migrate.Policy == runbook.OnRollbackKeep
	c.Preserved = res.Archived
	i := d.stepIndex(c.Step)
	if i < 0 {
		return
	}
	st := &d.status.Steps[i]
	switch {
	case c.Kept:
		st.Detail += "; rollback kept the schema (onRollback: keep)"
	case len(c.Preserved) > 0:
		st.Detail += "; rollback preserved " + archivedSummary(c.Preserved)
	case c.Migrate.Policy == runbook.OnRollbackDrop:
		st.Detail += "; rollback dropped the data (onRollback: drop)"
	}
}

// preservedNote summarises, for notifications and the Web UI, what the
// rollback kept or archived so far ("" when nothing).
func (d *deployment) preservedNote() string {
	var parts []string
	for _, c := range d.comps {
		switch {
		case c.Kept:
			parts = append(parts, fmt.Sprintf("schema of %s kept by %s (data in the live tables)", c.Migrate.Database, c.Step))
		case len(c.Preserved) > 0:
			parts = append(parts, fmt.Sprintf("%s archived by %s: %s", c.Migrate.Database, c.Step, archivedSummary(c.Preserved)))
		}
	}
	return strings.Join(parts, "; ")
}

func archivedSummary(objs []contract.ArchivedObject) string {
	parts := make([]string, len(objs))
	for i, o := range objs {
		parts[i] = o.String()
	}
	return strings.Join(parts, ", ")
}

func createdSummary(files []contract.FileObjects) string {
	var parts []string
	for _, f := range files {
		for _, o := range f.Created {
			parts = append(parts, o.String())
		}
	}
	return strings.Join(parts, ", ")
}
