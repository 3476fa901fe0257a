package runbook

import (
	"encoding/json"
	"fmt"
)

// signatureDomain prefixes the signed bytes, so that a bundle signature can
// never be replayed as a signature over some other document.
const signatureDomain = "rollbook-bundle-signature-v1\n"

// SignatureAlgorithm is the only signature algorithm bundles use.
const SignatureAlgorithm = "ed25519"

// Signature is a detached signature over a bundle's SigningMessage, made
// with a private key CI holds; the worker's configuration lists the public
// keys it trusts (internal/signing).
type Signature struct {
	Algorithm string `json:"alg"`
	// KeyID names the public key (hex SHA-256 of the raw key, first 16
	// characters), so the worker can say which key signed or was expected.
	KeyID string `json:"keyID"`
	// Value is the base64 (standard encoding) signature.
	Value string `json:"value"`
}

// SigningMessage returns the bytes a bundle signature covers: the content
// hash (runbook, version and migration files, see ContentHash) and the
// fields that say what is deployed and by whom — service, version and
// StartedBy. Source is left out: it is only the path the CLI was given.
//
// The message is built from b.Hash, so callers must have checked that the
// hash matches the content (Check does) before trusting a verification.
func (b *Bundle) SigningMessage() ([]byte, error) {
	m := struct {
		Hash      string `json:"hash"`
		Service   string `json:"service"`
		Version   string `json:"version"`
		StartedBy Origin `json:"startedBy"`
	}{b.Hash, b.Runbook.Service, b.Version, b.StartedBy}
	data, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding the signed fields of bundle %s: %w", b.Hash, err)
	}
	return append([]byte(signatureDomain), data...), nil
}
