package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// releaseOverlay holds what v3's pull request adds to the runbook's folder, at the paths it
// would have there: its own migration, payments-api/migrations/00005_create_payment_events.sql.
const releaseOverlay = "examples/demo/v3-release"

// nextRelease writes the runbook as v3's pull request would have it into dst: a copy of the
// runbook's folder (the runbook file unchanged, its migration folders) with the files of
// overlay added. An overlay file that would replace one of the runbook's own is refused:
// a pull request that rewrites an applied migration is not what the demo shows. It returns
// the path of the runbook in dst.
func nextRelease(runbookPath, overlay, dst string) (string, error) {
	src := filepath.Dir(runbookPath)
	if err := os.RemoveAll(dst); err != nil {
		return "", fmt.Errorf("preparing v3's runbook folder %s: %w", dst, err)
	}
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		return "", fmt.Errorf("copying the runbook folder %s to %s: %w", src, dst, err)
	}
	err := fs.WalkDir(os.DirFS(overlay), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		to := filepath.Join(dst, filepath.FromSlash(p))
		if _, err := os.Stat(to); err == nil {
			return fmt.Errorf("%s would replace the runbook folder's own %s", filepath.Join(overlay, p), p)
		}
		b, err := os.ReadFile(filepath.Join(overlay, filepath.FromSlash(p)))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("adding v3's files from %s to %s: %w", overlay, dst, err)
	}
	return filepath.Join(dst, filepath.Base(runbookPath)), nil
}
