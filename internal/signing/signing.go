// Package signing signs deployment bundles with Ed25519 and verifies them
// against the public keys a worker trusts.
//
// CI holds the private key (rollbook deploy --sign-key FILE, or
// ROLLBOOK_SIGNING_KEY_FILE); the worker's configuration lists the public keys
// (signing.trustedKeys) and, with signing.require, refuses unsigned or
// tampered bundles in its preflight. Keys are PEM files: PKCS#8 "PRIVATE KEY"
// and PKIX "PUBLIC KEY", the formats `openssl genpkey -algorithm ed25519`
// writes, so either tool can make them.
package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/rollbook/rollbook/internal/clip"
	"github.com/rollbook/rollbook/runbook"
)

// EnvKeyFile names the variable the CLI reads the private key's path from
// when --sign-key is not given.
const EnvKeyFile = "ROLLBOOK_SIGNING_KEY_FILE"

// Sentinel errors of Verify, checked with errors.Is.
var (
	// ErrUnsigned: the bundle carries no signature.
	ErrUnsigned = errors.New("bundle is not signed")
	// ErrUntrustedKey: the bundle is signed by a key the worker does not list.
	ErrUntrustedKey = errors.New("bundle is signed by a key this worker does not trust")
	// ErrBadSignature: the signature does not match the bundle (it was
	// changed after signing) or is malformed.
	ErrBadSignature = errors.New("bundle signature does not verify")
)

// maxSignatureField bounds what a Verify error echoes from the bundle.
const maxSignatureField = 128

// KeyID names a public key: the first 16 hex characters of the SHA-256 of
// its raw bytes.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])[:16]
}

// GenerateKeyFiles writes a new key pair: the private key to privPath (mode
// 0600, refused if the file exists, so a key is never overwritten by
// mistake) and the public key to pubPath. It returns the key ID.
func GenerateKeyFiles(privPath, pubPath string) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generating an Ed25519 key: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("encoding the private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encoding the public key: %w", err)
	}
	if err := writeNew(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		return "", err
	}
	if err := writeNew(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		_ = os.Remove(privPath)
		return "", err
	}
	return KeyID(pub), nil
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("writing key file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing key file %s: %w", path, err)
	}
	return nil
}

func readPEM(path, wantType string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("key file %s: no PEM block", path)
	}
	if block.Type != wantType {
		return nil, fmt.Errorf("key file %s: PEM block is %q, want %q", path, block.Type, wantType)
	}
	return block.Bytes, nil
}

// LoadPrivateKey reads a PKCS#8 PEM Ed25519 private key.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key file %s: %T is not an Ed25519 private key", path, k)
	}
	return priv, nil
}

// LoadPublicKey reads a PKIX PEM Ed25519 public key.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	der, err := readPEM(path, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("key file %s: %T is not an Ed25519 public key", path, k)
	}
	return pub, nil
}

// Sign signs b (whose Hash must already be its content hash) and sets
// b.Signature.
func Sign(b *runbook.Bundle, priv ed25519.PrivateKey) error {
	msg, err := b.SigningMessage()
	if err != nil {
		return err
	}
	pub, ok := priv.Public().(ed25519.PublicKey)
	if !ok {
		return errors.New("signing: not an Ed25519 private key")
	}
	b.Signature = &runbook.Signature{
		Algorithm: runbook.SignatureAlgorithm,
		KeyID:     KeyID(pub),
		Value:     base64.StdEncoding.EncodeToString(ed25519.Sign(priv, msg)),
	}
	return nil
}

// Trusted is the set of public keys a worker accepts bundle signatures from.
type Trusted struct {
	keys map[string]ed25519.PublicKey
}

// NewTrusted returns a key set.
func NewTrusted(keys ...ed25519.PublicKey) *Trusted {
	t := &Trusted{keys: map[string]ed25519.PublicKey{}}
	for _, k := range keys {
		t.keys[KeyID(k)] = k
	}
	return t
}

// LoadTrusted reads public key files.
func LoadTrusted(paths []string) (*Trusted, error) {
	var keys []ed25519.PublicKey
	for _, p := range paths {
		k, err := LoadPublicKey(p)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return NewTrusted(keys...), nil
}

// IDs lists the trusted key IDs, sorted.
func (t *Trusted) IDs() []string {
	ids := make([]string, 0, len(t.keys))
	for id := range t.keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Verify checks b's signature against the trusted keys. b.Hash must have
// been checked against the content first (runbook.Bundle.Check).
//
// Errors wrap ErrUnsigned, ErrUntrustedKey or ErrBadSignature.
func (t *Trusted) Verify(b *runbook.Bundle) error {
	s := b.Signature
	if s == nil {
		return ErrUnsigned
	}
	if s.Algorithm != runbook.SignatureAlgorithm {
		return fmt.Errorf("%w: algorithm %q is not %q", ErrBadSignature, clipField(s.Algorithm), runbook.SignatureAlgorithm)
	}
	pub, ok := t.keys[s.KeyID]
	if !ok {
		return fmt.Errorf("%w: key %q (trusted: %s)", ErrUntrustedKey, clipField(s.KeyID), strings.Join(t.IDs(), ", "))
	}
	sig, err := base64.StdEncoding.DecodeString(s.Value)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: the signature value is not a base64 Ed25519 signature", ErrBadSignature)
	}
	msg, err := b.SigningMessage()
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, msg, sig) {
		return fmt.Errorf("%w: key %s did not sign this hash, service, version and startedBy (the bundle was changed after signing)", ErrBadSignature, s.KeyID)
	}
	return nil
}

func clipField(s string) string {
	if len(s) <= maxSignatureField {
		return s
	}
	return clip.Prefix(s, maxSignatureField) + "…"
}
