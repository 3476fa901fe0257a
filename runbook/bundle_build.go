package runbook

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
)

// MaxVersionLen bounds a bundle's version string.
const MaxVersionLen = 128

// hashDomain prefixes the hashed bytes so that a bundle hash can never be
// confused with the hash of some other JSON document.
const hashDomain = "rollbook-bundle-v1\n"

// BuildBundle loads the runbook at path (with all file-system checks) and
// packs it with the migration files it references, the version being
// deployed and who started it. The bundle is checked exactly as the
// workflow will check it, so a bundle that builds is accepted.
func BuildBundle(path, version string, origin Origin) (*Bundle, error) {
	if msg := checkVersion(version); msg != "" {
		return nil, Errors{{File: path, Path: "version", Msg: msg}}
	}
	rb, files, err := load(path)
	if err != nil {
		return nil, err
	}
	b := &Bundle{Runbook: *rb, Version: version, Source: path, Files: files, StartedBy: origin}
	b.Hash, err = b.ContentHash()
	if err != nil {
		return nil, err
	}
	if err := b.Check(); err != nil {
		return nil, err
	}
	return b, nil
}

// ContentHash computes the bundle's content hash: the hex SHA-256 of
//
//	"rollbook-bundle-v1\n" + JSON({"runbook": …, "version": …, "files": […]})
//
// where the JSON is encoding/json's output for the model types (struct
// fields in declaration order, map keys sorted, durations as strings) and
// files are sorted by path. Source, StartedBy and Hash are not part of it:
// they describe a deployment, not what it deploys, so the same content
// started from two CI jobs has the same hash.
func (b *Bundle) ContentHash() (string, error) {
	files := append([]File(nil), b.Files...)
	sort.SliceStable(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	canon := struct {
		Runbook Runbook `json:"runbook"`
		Version string  `json:"version"`
		Files   []File  `json:"files"`
	}{b.Runbook, b.Version, files}
	data, err := json.Marshal(canon)
	if err != nil {
		return "", fmt.Errorf("encoding bundle for its hash: %w", err)
	}
	sum := sha256.Sum256(append([]byte(hashDomain), data...))
	return hex.EncodeToString(sum[:]), nil
}

// checkVersion returns why v cannot be a deployed version, or "" (see
// CheckVersion).
func checkVersion(v string) string {
	if err := CheckVersion(v); err != nil {
		return nameMsg(err)
	}
	return ""
}
