package codec

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Environment variables the CLI, the worker (when its configuration has no
// codec section) and the codec server read.
const (
	// EnvKey holds the keys inline.
	EnvKey = "ROLLBOOK_CODEC_KEY"
	// EnvKeyFile names a file holding the keys (preferred: no secret in the
	// process environment).
	EnvKeyFile = "ROLLBOOK_CODEC_KEY_FILE"
	// EnvKeyID picks the active key; default the first one listed.
	EnvKeyID = "ROLLBOOK_CODEC_KEY_ID"
)

// Keyring is a set of AES-256 keys by id; Active encrypts, all decrypt.
type Keyring struct {
	Active string
	Keys   map[string][]byte
}

// IDs returns the key ids, sorted.
func (k *Keyring) IDs() []string {
	ids := make([]string, 0, len(k.Keys))
	for id := range k.Keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// ParseKeys reads a key list: entries separated by newlines, commas or
// spaces, each "ID:KEY" or a bare "KEY", where KEY is 32 bytes written as
// 64 hex digits or in base64. A bare key gets the id "k-" plus the first 8
// hex digits of its SHA-256, so every process derives the same id. Lines
// starting with # are comments. The first entry is the active key unless
// active names another.
//
// To rotate: put the new key first and keep the old ones after it until no
// running deployment's history needs them.
func ParseKeys(text, active string) (*Keyring, error) {
	k := &Keyring{Keys: map[string][]byte{}}
	var order []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, entry := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			id, raw, named := strings.Cut(entry, ":")
			if !named {
				raw, id = entry, ""
			}
			key, err := decodeKey(raw)
			if err != nil {
				if named {
					return nil, fmt.Errorf("codec: key %q: %w", id, err)
				}
				return nil, fmt.Errorf("codec: key #%d: %w", len(order)+1, err)
			}
			if !named {
				sum := sha256.Sum256(key)
				id = "k-" + hex.EncodeToString(sum[:4])
			}
			if !validID(id) {
				return nil, fmt.Errorf("codec: key #%d: invalid key id %q", len(order)+1, id)
			}
			if _, dup := k.Keys[id]; dup {
				return nil, fmt.Errorf("codec: key id %q is listed twice", id)
			}
			k.Keys[id] = key
			order = append(order, id)
		}
	}
	if len(order) == 0 {
		return nil, errors.New("codec: no key found (want ID:KEY entries, KEY = 32 bytes in hex or base64)")
	}
	k.Active = order[0]
	if active != "" {
		if _, ok := k.Keys[active]; !ok {
			return nil, fmt.Errorf("codec: active key id %q is not among the keys (%s)", active, strings.Join(order, ", "))
		}
		k.Active = active
	}
	return k, nil
}

// validID: ids travel in payload metadata and log lines, so they are kept
// to a plain alphabet.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-", r)) {
			return false
		}
	}
	return true
}

func decodeKey(s string) ([]byte, error) {
	if b, err := hex.DecodeString(s); err == nil {
		if len(b) == KeySize {
			return b, nil
		}
		// 43 or 44 characters is base64 of 32 bytes that happens to
		// look like hex; anything else in hex digits is a short key.
		if len(s) != 43 && len(s) != 44 {
			return nil, fmt.Errorf("is %d bytes in hex, want %d (%d hex digits)", len(b), KeySize, 2*KeySize)
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != KeySize {
				return nil, fmt.Errorf("decodes to %d bytes, want %d (AES-256)", len(b), KeySize)
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("not %d bytes in hex or base64", KeySize)
}

// Source says where a process finds its keys: a file, or an environment
// variable holding them inline (exactly one), and optionally the active id.
type Source struct {
	KeyFile string
	KeyEnv  string
	KeyID   string
}

// Load reads the keys from src and returns a codec. Messages name the file
// or variable, never the key material.
func Load(src Source) (*Codec, error) {
	var text string
	switch {
	case src.KeyFile != "" && src.KeyEnv != "":
		return nil, errors.New("codec: set either a key file or a key variable, not both")
	case src.KeyFile != "":
		b, err := os.ReadFile(src.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("codec: reading key file: %w", err)
		}
		text = string(b)
	case src.KeyEnv != "":
		text = os.Getenv(src.KeyEnv)
		if strings.TrimSpace(text) == "" {
			return nil, fmt.Errorf("codec: environment variable %s is empty", src.KeyEnv)
		}
	default:
		return nil, errors.New("codec: no key file or key variable given")
	}
	where := src.KeyFile
	if where == "" {
		where = "$" + src.KeyEnv
	}
	k, err := ParseKeys(text, src.KeyID)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	c, err := New(k)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return c, nil
}

// FromEnv returns the codec described by ROLLBOOK_CODEC_KEY_FILE or
// ROLLBOOK_CODEC_KEY (and ROLLBOOK_CODEC_KEY_ID), or nil when neither is
// set: encryption is off.
func FromEnv() (*Codec, error) {
	src := Source{KeyFile: os.Getenv(EnvKeyFile), KeyID: os.Getenv(EnvKeyID)}
	if os.Getenv(EnvKey) != "" {
		src.KeyEnv = EnvKey
	}
	if src.KeyFile == "" && src.KeyEnv == "" {
		return nil, nil
	}
	return Load(src)
}

// ErrKeyFileExposed: the key file can be read (or written) by users other
// than its owner.
var ErrKeyFileExposed = errors.New("codec: key file is accessible to group or others")

// CheckKeyFileMode returns an error wrapping ErrKeyFileExposed when path's
// permission bits give group or others any access (the keys decrypt every
// payload); callers warn with it. Other errors are stat failures.
func CheckKeyFileMode(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("codec: key file: %w", err)
	}
	if mode := st.Mode().Perm(); mode&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o; run chmod 600 on it", ErrKeyFileExposed, path, mode)
	}
	return nil
}
