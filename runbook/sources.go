package runbook

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// migrationSource yields the files of a migration folder: from the disk when
// loading a runbook, from the bundle when the workflow checks it.
type migrationSource interface {
	files(dir string) ([]File, error)
}

type filesSource []File

func (s filesSource) files(dir string) ([]File, error) { return FilesUnder(s, dir), nil }

// diskSource reads migration folders below root, refusing anything that
// resolves outside it, and remembers what it read for the bundle.
type diskSource struct {
	root  string
	read  []File
	bytes int
	// done caches folders already read, so two steps sharing a folder do
	// not count its bytes twice.
	done map[string][]File
}

func (s *diskSource) files(dir string) ([]File, error) {
	if f, ok := s.done[path.Clean(dir)]; ok {
		return f, nil
	}
	root, err := filepath.Abs(s.root)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve the runbook's folder %s: %w", s.root, err)
	}
	rootReal, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve the runbook's folder %s: %w", s.root, err)
	}
	full := filepath.Join(root, filepath.FromSlash(dir))
	if _, err := os.Lstat(full); err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("migration folder %q does not exist (looked for %s)", dir, filepath.Join(s.root, filepath.FromSlash(dir)))
		}
		return nil, fmt.Errorf("reading migration folder %q: %w", dir, err)
	}
	resolved, err := filepath.EvalSymlinks(full)
	if err == nil {
		resolved, err = filepath.Abs(resolved)
	}
	if err != nil {
		return nil, fmt.Errorf("migration folder %q cannot be resolved (a broken symlink?): %w", dir, err)
	}
	if !inside(rootReal, resolved) {
		return nil, fmt.Errorf("migration folder %q resolves to %s, outside the runbook's folder (a symlink?); migrations must live inside it", dir, relTo(rootReal, resolved))
	}
	if info, err := os.Stat(resolved); err != nil || !info.IsDir() {
		return nil, fmt.Errorf("migration folder %q is not a folder", dir)
	}
	entries, err := os.ReadDir(resolved)
	if err != nil {
		return nil, fmt.Errorf("reading migration folder %q: %w", dir, err)
	}
	var out []File
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		rel := path.Join(path.Clean(dir), e.Name())
		f, err := s.readFile(rootReal, filepath.Join(resolved, e.Name()), rel)
		if err != nil {
			return nil, err
		}
		if f != nil {
			out = append(out, *f)
		}
	}
	s.read = append(s.read, out...)
	if s.done == nil {
		s.done = map[string][]File{}
	}
	s.done[path.Clean(dir)] = out
	return out, nil
}

// readFile reads one migration file; nil (no error) for a folder that
// happens to end in .sql.
func (s *diskSource) readFile(rootReal, file, rel string) (*File, error) {
	resolved, err := filepath.EvalSymlinks(file)
	if err != nil {
		return nil, fmt.Errorf("migration file %s cannot be resolved: %w", rel, err)
	}
	if !inside(rootReal, resolved) {
		return nil, fmt.Errorf("migration file %s resolves to %s, outside the runbook's folder (a symlink?)", rel, relTo(rootReal, resolved))
	}
	info, err := os.Stat(resolved)
	if err != nil {
		return nil, fmt.Errorf("reading migration file %s: %w", rel, err)
	}
	if info.IsDir() {
		return nil, nil
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("migration file %s is not a regular file", rel)
	}
	if s.bytes+int(info.Size()) > MaxBundleBytes {
		return nil, fmt.Errorf("%w: migration files exceed %d bytes (at %s); the bundle could not carry them", ErrTooLarge, MaxBundleBytes, rel)
	}
	data, err := os.ReadFile(resolved)
	if err != nil {
		return nil, fmt.Errorf("reading migration file %s: %w", rel, err)
	}
	s.bytes += len(data)
	// The bundle carries contents as JSON strings, which cannot hold
	// arbitrary bytes without changing them (and so the hash).
	if !utf8.Valid(data) || strings.ContainsRune(string(data), 0) {
		return nil, fmt.Errorf("%w: migration file %s is not UTF-8 text", ErrBinary, rel)
	}
	return &File{Path: rel, Content: string(data)}, nil
}

// inside reports whether path p is root or below it (both absolute and
// symlink-free).
func inside(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	if err != nil || filepath.IsAbs(rel) {
		return false
	}
	return rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// relTo shows p relative to root when it can (messages then do not depend
// on where the checkout lives).
func relTo(root, p string) string {
	if rel, err := filepath.Rel(root, p); err == nil {
		return filepath.ToSlash(rel)
	}
	return p
}
