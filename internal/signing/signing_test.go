package signing

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/runbook"
)

func keyPair(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "k.pem"), filepath.Join(dir, "k.pub.pem")
	_, err := GenerateKeyFiles(priv, pub)
	require.NoError(t, err)
	return priv, pub
}

func signedBundle(t *testing.T, privPath string) *runbook.Bundle {
	t.Helper()
	b := &runbook.Bundle{Runbook: runbook.Runbook{APIVersion: runbook.APIVersion, Service: "pay"}, Version: "v1",
		StartedBy: runbook.Origin{User: "ci", CIJob: "deploy#1"}}
	h, err := b.ContentHash()
	require.NoError(t, err)
	b.Hash = h
	priv, err := LoadPrivateKey(privPath)
	require.NoError(t, err)
	require.NoError(t, Sign(b, priv))
	return b
}

func TestKeyFiles(t *testing.T) {
	priv, pub := keyPair(t)
	st, err := os.Stat(priv)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "the private key is readable by its owner only")
	_, err = GenerateKeyFiles(priv, pub+".2")
	assert.Error(t, err, "an existing key is never overwritten")
	_, err = LoadPublicKey(priv)
	assert.ErrorContains(t, err, `PEM block is "PRIVATE KEY", want "PUBLIC KEY"`)
}

func TestVerify(t *testing.T) {
	priv, pub := keyPair(t)
	otherPriv, otherPub := keyPair(t)
	trusted, err := LoadTrusted([]string{pub})
	require.NoError(t, err)

	require.NoError(t, trusted.Verify(signedBundle(t, priv)))

	for name, tc := range map[string]struct {
		change func(b *runbook.Bundle)
		want   error
	}{
		"unsigned":         {func(b *runbook.Bundle) { b.Signature = nil }, ErrUnsigned},
		"version changed":  {func(b *runbook.Bundle) { b.Version = "v2" }, ErrBadSignature},
		"service changed":  {func(b *runbook.Bundle) { b.Runbook.Service = "other" }, ErrBadSignature},
		"startedBy forged": {func(b *runbook.Bundle) { b.StartedBy.User = "alice" }, ErrBadSignature},
		"hash changed":     {func(b *runbook.Bundle) { b.Hash = "00" + b.Hash[2:] }, ErrBadSignature},
		"garbage value":    {func(b *runbook.Bundle) { b.Signature.Value = "!!" }, ErrBadSignature},
		"other algorithm":  {func(b *runbook.Bundle) { b.Signature.Algorithm = "rsa" }, ErrBadSignature},
		"untrusted key": {func(b *runbook.Bundle) {
			k, err := LoadPrivateKey(otherPriv)
			require.NoError(t, err)
			require.NoError(t, Sign(b, k))
		}, ErrUntrustedKey},
	} {
		t.Run(name, func(t *testing.T) {
			b := signedBundle(t, priv)
			tc.change(b)
			err := trusted.Verify(b)
			require.Error(t, err)
			assert.True(t, errors.Is(err, tc.want), "%v is not %v", err, tc.want)
		})
	}

	// Source is not signed: it is only the path the CLI was given.
	b := signedBundle(t, priv)
	b.Source = "elsewhere.yaml"
	assert.NoError(t, trusted.Verify(b))

	both, err := LoadTrusted([]string{pub, otherPub})
	require.NoError(t, err)
	assert.Len(t, both.IDs(), 2)
	assert.NoError(t, both.Verify(signedBundle(t, otherPriv)))
}
