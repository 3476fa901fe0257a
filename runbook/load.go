package runbook

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// Load reads, parses and validates the runbook at path, including the
// migration folders on disk. It returns nil and an Errors naming the file
// and line of every problem, or a plain error when the file cannot be read.
func Load(path string) (*Runbook, error) {
	rb, _, err := load(path)
	return rb, err
}

// load also returns the migration files the runbook references, sorted by
// path, for the bundle.
func load(path string) (*Runbook, []File, error) {
	data, err := readBounded(path)
	if err != nil {
		return nil, nil, err
	}
	src := &diskSource{root: filepath.Dir(path)}
	rb, _, errs := parse(path, data, src)
	if len(errs) > 0 {
		return nil, nil, atLine1(errs)
	}
	return rb, dedupFiles(src.read), nil
}

// readBounded reads a runbook, refusing a file larger than MaxBundleBytes
// before reading it all (a runbook path could name a device or a huge log).
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading runbook: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading runbook: %w", err)
	}
	if info.IsDir() {
		return nil, fmt.Errorf("reading runbook %s: is a folder", path)
	}
	if info.Mode().IsRegular() && info.Size() > MaxBundleBytes {
		return nil, atLine1(sizeError(path, info.Size()))
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxBundleBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading runbook %s: %w", path, err)
	}
	if len(data) > MaxBundleBytes {
		return nil, atLine1(sizeError(path, int64(len(data))))
	}
	return data, nil
}

func dedupFiles(files []File) []File {
	seen := map[string]bool{}
	var out []File
	for _, f := range files {
		if !seen[f.Path] {
			seen[f.Path] = true
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}
