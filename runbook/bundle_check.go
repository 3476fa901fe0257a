package runbook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"unicode/utf8"
)

// maxOriginField bounds each StartedBy field; they end up in the Web UI.
const maxOriginField = 1024

// Check re-validates a bundle cheaply when the workflow starts: the hash
// matches the content, the version and runbook are valid, every migration
// file a migrate step needs is present and parses (with Down sections for
// reversible steps), and the bundle fits MaxBundleBytes.
//
// It is deterministic and does no I/O, so workflow code may call it. It
// returns nil or an Errors (File is b.Source); a wrong hash wraps
// ErrHashMismatch.
func (b *Bundle) Check() error {
	file := b.Source
	if file == "" {
		file = "bundle"
	}
	c := &checker{file: file, src: filesSource(b.Files)}
	if msg := checkVersion(b.Version); msg != "" {
		c.addf("version", "%s", msg)
	}
	c.checkReleaseBundleVersion(b)
	c.checkOrigin(b.StartedBy)
	c.checkBundleFiles(b)
	c.runbook(&b.Runbook)
	c.checkHash(b)
	if data, err := json.Marshal(b); err != nil {
		c.addf("", "bundle cannot be encoded: %v", err)
	} else if len(data) > MaxBundleBytes {
		c.errs = append(c.errs, &FieldError{File: file, Err: ErrTooLarge,
			Msg: fmt.Sprintf("bundle is %d bytes, %d over the limit of %d bytes", len(data), len(data)-MaxBundleBytes, MaxBundleBytes)})
	}
	return c.errs.err()
}

func (c *checker) checkHash(b *Bundle) {
	want, err := b.ContentHash()
	switch {
	case err != nil:
		c.addf("hash", "cannot compute the content hash: %v", err)
	case b.Hash == "":
		c.errs = append(c.errs, &FieldError{File: c.file, Path: "hash", Err: ErrHashMismatch,
			Msg: "hash is missing; build bundles with rollbook (BuildBundle)"})
	case b.Hash != want:
		c.errs = append(c.errs, &FieldError{File: c.file, Path: "hash", Err: ErrHashMismatch,
			Msg: fmt.Sprintf("content hash mismatch: the bundle says %s but its content hashes to %s; it was changed after it was built", b.Hash, want)})
	}
}

func (c *checker) checkOrigin(o Origin) {
	for _, f := range []struct{ name, v string }{{"user", o.User}, {"host", o.Host}, {"ciJob", o.CIJob}, {"ciURL", o.CIURL}} {
		p := fieldPath("startedBy", f.name)
		switch {
		case len(f.v) > maxOriginField:
			c.addf(p, "is %d bytes; the limit is %d", len(f.v), maxOriginField)
		case hasControl(f.v):
			c.addf(p, "contains control characters")
		}
	}
}

// checkBundleFiles refuses files that are malformed, duplicated, or that no
// migrate step uses: a bundle carries exactly what its runbook needs.
func (c *checker) checkBundleFiles(b *Bundle) {
	dirs := map[string]bool{}
	for _, s := range b.Runbook.Steps {
		if s.Migrate != nil && checkDirSyntax(s.Migrate.Dir) == "" {
			dirs[path.Clean(s.Migrate.Dir)] = true
		}
	}
	seen := map[string]bool{}
	for i, f := range b.Files {
		p := indexPath("files", i)
		switch {
		case f.Path == "" || path.Clean(f.Path) != f.Path || strings.HasPrefix(f.Path, "/") || strings.HasPrefix(f.Path, "../") || hasControl(f.Path):
			c.addf(p, "invalid file path %q: must be a clean relative slash-separated path", f.Path)
		case seen[f.Path]:
			c.addf(p, "duplicate file %q", f.Path)
		case !dirs[path.Dir(f.Path)]:
			c.addf(p, "file %q is not in the folder of any migrate step", f.Path)
		case !utf8.ValidString(f.Content) || strings.ContainsRune(f.Content, 0):
			c.addf(p, "file %q is not UTF-8 text", f.Path)
		}
		seen[f.Path] = true
	}
}

// DecodeBundle decodes a bundle strictly (unknown fields and trailing data
// are errors, size is bounded) and checks it.
func DecodeBundle(data []byte) (*Bundle, error) {
	if len(data) > MaxBundleBytes {
		return nil, fileError("bundle", 0, ErrTooLarge, "bundle is %d bytes, %d over the limit of %d bytes",
			len(data), len(data)-MaxBundleBytes, MaxBundleBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b Bundle
	if err := dec.Decode(&b); err != nil {
		return nil, fileError("bundle", 0, ErrSyntax, "invalid bundle JSON: %v", err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return nil, fileError("bundle", 0, ErrSyntax, "invalid bundle JSON: data after the bundle object")
	}
	if err := b.Check(); err != nil {
		return nil, err
	}
	return &b, nil
}
