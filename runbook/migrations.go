package runbook

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// ErrMigration: a migration file is misnamed, duplicated or malformed.
var ErrMigration = errors.New("invalid migration")

// Migration is one goose SQL migration file carried in a bundle.
type Migration struct {
	Version int64
	// Path is relative to the runbook's folder, slash-separated.
	Path string
	// HasDown is true when the file has a -- +goose Down section holding
	// SQL (not only comments or blank lines).
	HasDown bool
}

// migrationName is goose's naming: a positive integer version, an
// underscore, a name.
var migrationName = regexp.MustCompile(`^([0-9]+)_([^/]+)\.sql$`)

// FilesUnder returns the files directly inside dir (goose does not recurse),
// sorted by path.
func FilesUnder(files []File, dir string) []File {
	dir = path.Clean(dir)
	var out []File
	for _, f := range files {
		if path.Dir(f.Path) == dir {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// ParseMigrations returns the goose SQL migrations directly inside dir,
// sorted by version. Files not ending in .sql are ignored, as goose does.
// Misnamed files, duplicate versions and files that goose would not parse
// or that hold annotations rollbook refuses (see CheckMigrationSQL) are
// reported as errors wrapping ErrMigration.
func ParseMigrations(files []File, dir string) ([]Migration, error) {
	migs, problems := parseMigrations(files, dir)
	if len(problems) > 0 {
		errs := make([]error, len(problems))
		for i, p := range problems {
			errs[i] = fmt.Errorf("%w: %s", ErrMigration, p)
		}
		return nil, errors.Join(errs...)
	}
	return migs, nil
}

// TargetVersion returns the version a migrate step migrates up to: its
// Version when set (which must exist in its folder), else the highest.
func TargetVersion(step MigrateStep, files []File) (int64, error) {
	migs, err := ParseMigrations(files, step.Dir)
	if err != nil {
		return 0, err
	}
	if len(migs) == 0 {
		return 0, fmt.Errorf("%w: no migrations in %q", ErrMigration, step.Dir)
	}
	if step.Version == 0 {
		return migs[len(migs)-1].Version, nil
	}
	if !hasVersion(migs, step.Version) {
		return 0, fmt.Errorf("%w: version %d is not in %q", ErrMigration, step.Version, step.Dir)
	}
	return step.Version, nil
}

func parseMigrations(files []File, dir string) ([]Migration, []string) {
	var migs []Migration
	var problems []string
	byVersion := map[int64]string{}
	for _, f := range FilesUnder(files, dir) {
		name := path.Base(f.Path)
		if !strings.HasSuffix(name, ".sql") {
			continue
		}
		m := migrationName.FindStringSubmatch(name)
		var v int64
		var err error
		if m != nil {
			v, err = strconv.ParseInt(m[1], 10, 64)
		}
		if m == nil || err != nil || v <= 0 {
			problems = append(problems, fmt.Sprintf("migration file %s is not named <version>_<name>.sql with a positive version", f.Path))
			continue
		}
		if other, dup := byVersion[v]; dup {
			problems = append(problems, fmt.Sprintf("migrations %s and %s have the same version %d", other, f.Path, v))
			continue
		}
		byVersion[v] = f.Path
		sql, err := ParseMigrationSQL(f.Path, []byte(f.Content))
		if err != nil {
			msg, _ := strings.CutPrefix(err.Error(), ErrMigration.Error()+": ")
			problems = append(problems, "migration "+msg)
			continue
		}
		// A Down section with only comments or blank lines would make goose
		// "roll back" by doing nothing, which is worse than refusing.
		migs = append(migs, Migration{Version: v, Path: f.Path, HasDown: len(sql.Down) > 0})
	}
	sort.Slice(migs, func(i, j int) bool { return migs[i].Version < migs[j].Version })
	return migs, problems
}
