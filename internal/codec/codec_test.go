package codec

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

func mustCodec(t *testing.T, active string, keys map[string][]byte) *Codec {
	t.Helper()
	c, err := New(&Keyring{Active: active, Keys: keys})
	require.NoError(t, err)
	return c
}

type secret struct {
	SQL    string `json:"sql"`
	Reason string `json:"reason"`
}

func TestRoundTripThroughDataConverter(t *testing.T) {
	c := mustCodec(t, "k1", map[string][]byte{"k1": newKey(t)})
	dc := c.DataConverter()
	in := secret{SQL: "ALTER TABLE ledger ADD COLUMN iban TEXT", Reason: "error budget burning"}
	p, err := dc.ToPayload(in)
	require.NoError(t, err)
	assert.Equal(t, MetadataEncodingEncrypted, string(p.Metadata[converter.MetadataEncoding]))
	assert.Equal(t, "k1", string(p.Metadata[MetadataKeyID]))
	assert.Equal(t, "AES-256-GCM", string(p.Metadata[MetadataCipher]))
	assert.False(t, bytes.Contains(p.Data, []byte("ALTER TABLE")), "plaintext in the payload")
	assert.False(t, bytes.Contains(p.Data, []byte("json/plain")), "original metadata in clear")

	var out secret
	require.NoError(t, dc.FromPayload(p, &out))
	assert.Equal(t, in, out)

	// Same input, fresh nonce: the ciphertexts differ.
	p2, err := dc.ToPayload(in)
	require.NoError(t, err)
	assert.NotEqual(t, p.Data, p2.Data)
}

func TestRoundTripKeepsMetadataAndEmptyPayloads(t *testing.T) {
	c := mustCodec(t, "k1", map[string][]byte{"k1": newKey(t)})
	in := []*commonpb.Payload{
		{Metadata: map[string][]byte{"encoding": []byte("binary/null")}},
		{Metadata: map[string][]byte{"encoding": []byte("json/plain"), "x": []byte("y")}, Data: []byte(`"v"`)},
	}
	enc, err := c.Encode(in)
	require.NoError(t, err)
	require.Len(t, enc, 2)
	dec, err := c.Decode(enc)
	require.NoError(t, err)
	for i := range in {
		assert.Equal(t, in[i].Metadata, dec[i].Metadata)
		assert.Equal(t, in[i].Data, dec[i].Data)
	}
}

func TestWrongKey(t *testing.T) {
	enc, err := mustCodec(t, "k1", map[string][]byte{"k1": newKey(t)}).Encode([]*commonpb.Payload{{Data: []byte("x")}})
	require.NoError(t, err)

	// Same id, other key material: authentication fails.
	_, err = mustCodec(t, "k1", map[string][]byte{"k1": newKey(t)}).Decode(enc)
	assert.ErrorIs(t, err, ErrDecrypt)
	assert.Contains(t, err.Error(), `"k1"`)

	// Id not in the keyring.
	_, err = mustCodec(t, "k2", map[string][]byte{"k2": newKey(t)}).Decode(enc)
	assert.ErrorIs(t, err, ErrUnknownKey)
	assert.Contains(t, err.Error(), `"k1"`)
}

func TestRotation(t *testing.T) {
	old, cur := newKey(t), newKey(t)
	before := mustCodec(t, "2025-01", map[string][]byte{"2025-01": old})
	encOld, err := before.Encode([]*commonpb.Payload{{Data: []byte("written before the rotation")}})
	require.NoError(t, err)

	after := mustCodec(t, "2025-06", map[string][]byte{"2025-06": cur, "2025-01": old})
	encNew, err := after.Encode([]*commonpb.Payload{{Data: []byte("written after")}})
	require.NoError(t, err)
	assert.Equal(t, "2025-06", string(encNew[0].Metadata[MetadataKeyID]), "the active key encrypts")

	dec, err := after.Decode(append(encOld, encNew...))
	require.NoError(t, err)
	assert.Equal(t, "written before the rotation", string(dec[0].Data))
	assert.Equal(t, "written after", string(dec[1].Data))

	// Once the old key is dropped, old payloads name it in the error.
	dropped := mustCodec(t, "2025-06", map[string][]byte{"2025-06": cur})
	_, err = dropped.Decode(encOld)
	assert.ErrorIs(t, err, ErrUnknownKey)
	assert.Contains(t, err.Error(), "2025-01")
}

func TestTampering(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	c := mustCodec(t, "a", map[string][]byte{"a": k1, "b": k2})
	enc, err := c.Encode([]*commonpb.Payload{{Data: []byte("weights 90/10")}})
	require.NoError(t, err)

	for name, mutate := range map[string]func(p *commonpb.Payload){
		"flipped ciphertext byte": func(p *commonpb.Payload) { p.Data[len(p.Data)-20] ^= 1 },
		"flipped nonce byte":      func(p *commonpb.Payload) { p.Data[0] ^= 1 },
		"truncated":               func(p *commonpb.Payload) { p.Data = p.Data[:10] },
		// The key id is authenticated: relabelling fails even with a
		// key the keyring holds.
		"relabelled key id": func(p *commonpb.Payload) { p.Metadata[MetadataKeyID] = []byte("b") },
	} {
		t.Run(name, func(t *testing.T) {
			p := &commonpb.Payload{Metadata: map[string][]byte{}, Data: bytes.Clone(enc[0].Data)}
			for k, v := range enc[0].Metadata {
				p.Metadata[k] = bytes.Clone(v)
			}
			mutate(p)
			_, err := c.Decode([]*commonpb.Payload{p})
			assert.ErrorIs(t, err, ErrDecrypt)
		})
	}
}

func TestDecodePassesPlainPayloadsThrough(t *testing.T) {
	c := mustCodec(t, "k", map[string][]byte{"k": newKey(t)})
	plain, err := converter.GetDefaultDataConverter().ToPayload("written before encryption was on")
	require.NoError(t, err)
	dec, err := c.Decode([]*commonpb.Payload{plain})
	require.NoError(t, err)
	assert.Same(t, plain, dec[0])
}

func TestNewRefusesBadKeyrings(t *testing.T) {
	_, err := New(&Keyring{})
	assert.Error(t, err)
	_, err = New(&Keyring{Active: "x", Keys: map[string][]byte{"x": make([]byte, 16)}})
	assert.ErrorContains(t, err, "16 bytes")
	_, err = New(&Keyring{Active: "y", Keys: map[string][]byte{"x": newKey(t)}})
	assert.ErrorContains(t, err, `active key "y"`)
}

func TestParseKeys(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	text := "# rollbook payload keys, newest first\n" +
		"2025-06:" + hex.EncodeToString(k1) + "\n" +
		"2025-01:" + base64.StdEncoding.EncodeToString(k2) + "\n"
	kr, err := ParseKeys(text, "")
	require.NoError(t, err)
	assert.Equal(t, "2025-06", kr.Active)
	assert.Equal(t, k1, kr.Keys["2025-06"])
	assert.Equal(t, k2, kr.Keys["2025-01"])

	kr, err = ParseKeys(text, "2025-01")
	require.NoError(t, err)
	assert.Equal(t, "2025-01", kr.Active)

	// Comma-separated on one line (an environment variable), bare keys get
	// a stable derived id, url-safe base64 without padding is accepted.
	kr, err = ParseKeys(base64.RawURLEncoding.EncodeToString(k1)+", other:"+hex.EncodeToString(k2), "")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(kr.Active, "k-"), kr.Active)
	kr2, err := ParseKeys(hex.EncodeToString(k1), "")
	require.NoError(t, err)
	assert.Equal(t, kr.Active, kr2.Active, "the derived id depends only on the key")

	for _, bad := range []struct{ text, active, msg string }{
		{"", "", "no key found"},
		{"# only a comment\n", "", "no key found"},
		{"a:" + hex.EncodeToString(k1[:16]), "", "16 bytes"},
		{"a:not-a-key!", "", "not 32 bytes"},
		{"a:" + hex.EncodeToString(k1) + "\na:" + hex.EncodeToString(k2), "", "listed twice"},
		{"a b:" + hex.EncodeToString(k1), "", "key #1"},
		{"bad/id:" + hex.EncodeToString(k1), "", "invalid key id"},
		{"a:" + hex.EncodeToString(k1), "zz", `active key id "zz"`},
	} {
		_, err := ParseKeys(bad.text, bad.active)
		if assert.Error(t, err, bad.text) {
			assert.Contains(t, err.Error(), bad.msg)
			assert.NotContains(t, err.Error(), hex.EncodeToString(k1), "key material in an error")
		}
	}
}

func TestLoadAndFromEnv(t *testing.T) {
	key := newKey(t)
	file := filepath.Join(t.TempDir(), "keys")
	require.NoError(t, os.WriteFile(file, []byte("prod-1:"+hex.EncodeToString(key)+"\n"), 0o600))

	c, err := Load(Source{KeyFile: file})
	require.NoError(t, err)
	assert.Equal(t, "prod-1", c.ActiveKeyID())

	t.Setenv("MY_KEYS", "prod-2:"+base64.StdEncoding.EncodeToString(key))
	c, err = Load(Source{KeyEnv: "MY_KEYS"})
	require.NoError(t, err)
	assert.Equal(t, "prod-2", c.ActiveKeyID())

	_, err = Load(Source{KeyEnv: "NOT_SET_ANYWHERE"})
	assert.ErrorContains(t, err, "NOT_SET_ANYWHERE is empty")
	_, err = Load(Source{KeyFile: file, KeyEnv: "MY_KEYS"})
	assert.ErrorContains(t, err, "not both")
	_, err = Load(Source{KeyFile: filepath.Join(t.TempDir(), "missing")})
	assert.ErrorContains(t, err, "reading key file")
	t.Setenv("BROKEN_KEYS", "x:"+hex.EncodeToString(key[:8]))
	_, err = Load(Source{KeyEnv: "BROKEN_KEYS"})
	assert.ErrorContains(t, err, "$BROKEN_KEYS")

	t.Setenv(EnvKey, "")
	t.Setenv(EnvKeyFile, "")
	c, err = FromEnv()
	require.NoError(t, err)
	assert.Nil(t, c, "no variable: encryption off")

	t.Setenv(EnvKeyFile, file)
	c, err = FromEnv()
	require.NoError(t, err)
	assert.Equal(t, "prod-1", c.ActiveKeyID())

	t.Setenv(EnvKeyFile, "")
	t.Setenv(EnvKey, "a:"+hex.EncodeToString(key)+",b:"+hex.EncodeToString(newKey(t)))
	t.Setenv(EnvKeyID, "b")
	c, err = FromEnv()
	require.NoError(t, err)
	assert.Equal(t, "b", c.ActiveKeyID())

	t.Setenv(EnvKeyFile, file)
	_, err = FromEnv()
	assert.ErrorContains(t, err, "not both", "both variables set must be refused")
}
