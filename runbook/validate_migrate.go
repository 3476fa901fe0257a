package runbook

import (
	"path"
	"strings"
)

func (c *checker) checkMigrate(p string, m *MigrateStep, irreversible bool) {
	c.name(fieldPath(p, "database"), "database", m.Database)
	dirOK := false
	if msg := checkDirSyntax(m.Dir); msg != "" {
		c.addf(fieldPath(p, "dir"), "%s", msg)
	} else {
		dirOK = true
	}
	if m.Version < 0 {
		c.addf(fieldPath(p, "version"), "must be 0 (the highest) or a migration version, got %d", m.Version)
	}
	switch m.Phase {
	case "", PhaseExpand, PhaseContract:
	default:
		c.addf(fieldPath(p, "phase"), "unknown phase %q (use expand or contract, or leave it out)", m.Phase)
	}
	switch m.OnRollback {
	case "", OnRollbackKeep, OnRollbackArchive, OnRollbackDrop:
	default:
		c.addf(fieldPath(p, "onRollback"), "unknown onRollback policy %q (use keep, archive or drop, or leave it out: expand keeps, other phases archive)", m.OnRollback)
	}
	if irreversible && m.OnRollback != "" {
		c.addf(fieldPath(p, "onRollback"), "an irreversible step is never rolled back; onRollback %q would not be used: remove it", m.OnRollback)
	}
	if dirOK && c.src != nil {
		c.checkMigrationFiles(p, m, irreversible)
	}
}

// checkDirSyntax returns why dir cannot be a migration folder, or "". The
// folder must stay inside the runbook's folder, so that a bundle carries
// everything and a runbook cannot read the rest of the machine.
func checkDirSyntax(dir string) string {
	switch {
	case dir == "":
		return "dir is required (the migrations folder, relative to the runbook's folder)"
	case strings.HasPrefix(dir, "/") || strings.Contains(dir, `\`) || (len(dir) > 1 && dir[1] == ':'):
		return "dir " + quote(dir) + " must be a relative slash-separated path inside the runbook's folder"
	case hasControl(dir):
		return "dir " + quote(dir) + " contains control characters"
	}
	for _, seg := range strings.Split(dir, "/") {
		if seg == ".." {
			return "dir " + quote(dir) + " must not contain '..': the migrations must live inside the runbook's folder"
		}
	}
	if path.Clean(dir) == "." {
		return "dir " + quote(dir) + " is the runbook's folder itself; put migrations in a subfolder"
	}
	return ""
}

// checkMigrationFiles checks the migrations a step will apply: they exist,
// parse, the target version is among them and, for a reversible step, each
// one up to the target can be rolled back.
func (c *checker) checkMigrationFiles(p string, m *MigrateStep, irreversible bool) {
	dp := fieldPath(p, "dir")
	files, err := c.src.files(m.Dir)
	if err != nil {
		c.addErr(dp, err)
		return
	}
	migs, problems := parseMigrations(files, m.Dir)
	for _, pr := range problems {
		c.addf(dp, "%s", pr)
	}
	if len(problems) > 0 {
		return
	}
	if len(migs) == 0 {
		c.addf(dp, "migration folder %q holds no goose SQL migrations (<version>_<name>.sql)", m.Dir)
		return
	}
	target := migs[len(migs)-1].Version
	if m.Version > 0 {
		if !hasVersion(migs, m.Version) {
			c.addf(fieldPath(p, "version"), "version %d is not in %q (versions %d to %d)", m.Version, m.Dir, migs[0].Version, target)
			return
		}
		target = m.Version
	}
	if irreversible {
		return
	}
	for _, mg := range migs {
		if mg.Version <= target && !mg.HasDown {
			c.addf(dp, "migration %s has no Down section with SQL; a reversible migrate step must be able to roll back: add a -- +goose Down section, or mark the step irreversible: true", mg.Path)
		}
	}
}

func hasVersion(migs []Migration, v int64) bool {
	for _, m := range migs {
		if m.Version == v {
			return true
		}
	}
	return false
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }
