// Package codec encrypts Temporal payloads with AES-256-GCM, so that what a
// deployment carries — migration SQL, Consul values, abort reasons — is
// ciphertext in Temporal's history and visibility store. The worker, the CLI
// and the codec server (rollbook codec-server, for the Web UI) share it.
//
// Every encrypted payload names the key that sealed it in its metadata
// (encryption-key-id), so keys can rotate: a keyring holds one active key,
// which encrypts, and any number of older keys, which still decrypt.
package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

// Payload metadata written by the codec.
const (
	// MetadataEncodingEncrypted is the value of the "encoding" metadata of
	// an encrypted payload; the original payload (metadata and data) is in
	// the ciphertext.
	MetadataEncodingEncrypted = "binary/encrypted"
	// MetadataKeyID names the key that encrypted the payload.
	MetadataKeyID = "encryption-key-id"
	// MetadataCipher names the algorithm, for readers of raw history.
	MetadataCipher = "encryption-cipher"
	cipherName     = "AES-256-GCM"
)

// KeySize is the length of an AES-256 key in bytes.
const KeySize = 32

// Errors returned by Decode (wrapped with the payload's key id).
var (
	// ErrUnknownKey: the payload was encrypted with a key this keyring
	// does not hold (rotated out too early, or another deployment's key).
	ErrUnknownKey = errors.New("codec: payload encrypted with an unknown key")
	// ErrDecrypt: authentication failed — wrong key material under that
	// id, or the payload was altered.
	ErrDecrypt = errors.New("codec: cannot decrypt payload (wrong key or tampered data)")
	// ErrPlaintext: a codec that requires encryption met a payload that is
	// not encrypted (sent by a client without the key).
	ErrPlaintext = errors.New("codec: refusing an unencrypted payload: this worker requires encryption (codec.requireEncryption); send it through a client or codec server that has the payload key")
)

// EncodingRefused is the encoding of the payload a signal receives instead
// of a refused plaintext one (see Codec.DataConverter): it carries no data,
// and the workflow records the signal as ignored, naming this encoding.
const EncodingRefused = "binary/refused-unencrypted"

// Codec is a converter.PayloadCodec that encrypts with the keyring's active
// key and decrypts with any of its keys.
type Codec struct {
	active  string
	aeads   map[string]cipher.AEAD
	require bool
}

var _ converter.PayloadCodec = (*Codec)(nil)

// New returns a codec for the keyring. It fails when the keyring is empty,
// a key is not 32 bytes, or the active id is not among the keys.
func New(k *Keyring) (*Codec, error) {
	if k == nil || len(k.Keys) == 0 {
		return nil, errors.New("codec: no encryption key")
	}
	c := &Codec{active: k.Active, aeads: make(map[string]cipher.AEAD, len(k.Keys))}
	for id, key := range k.Keys {
		if len(key) != KeySize {
			return nil, fmt.Errorf("codec: key %q is %d bytes, want %d (AES-256)", id, len(key), KeySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("codec: key %q: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("codec: key %q: %w", id, err)
		}
		c.aeads[id] = aead
	}
	if _, ok := c.aeads[c.active]; !ok {
		return nil, fmt.Errorf("codec: active key %q is not in the keyring (ids: %v)", c.active, k.IDs())
	}
	return c, nil
}

// RequireEncryption returns a codec that refuses, in Decode, every payload
// that is not encrypted, except a null payload (encoding binary/null, no
// data), which the SDK and tools send for an absent value and which carries
// nothing. Histories written before encryption was turned on no longer
// replay with it: turn it on once no running workflow holds plaintext.
func (c *Codec) RequireEncryption() *Codec {
	r := *c
	r.require = true
	return &r
}

// RequiresEncryption reports whether Decode refuses plaintext payloads.
func (c *Codec) RequiresEncryption() bool { return c.require }

// ActiveKeyID is the id of the key Encode uses.
func (c *Codec) ActiveKeyID() string { return c.active }

// additionalData binds the ciphertext to the key id, so that relabelling a
// payload with another id fails authentication instead of decrypting.
func additionalData(keyID string) []byte { return []byte("rollbook-codec/v1:" + keyID) }

// Encode encrypts every payload with the active key.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	aead := c.aeads[c.active]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return payloads, fmt.Errorf("codec: marshalling payload: %w", err)
		}
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return payloads, fmt.Errorf("codec: nonce: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(MetadataEncodingEncrypted),
				MetadataKeyID:              []byte(c.active),
				MetadataCipher:             []byte(cipherName),
			},
			Data: aead.Seal(nonce, nonce, plain, additionalData(c.active)),
		}
	}
	return out, nil
}

// Decode decrypts encrypted payloads and passes others through unchanged
// (histories written before encryption was turned on stay readable), unless
// the codec requires encryption. It returns an error wrapping ErrUnknownKey,
// ErrDecrypt or ErrPlaintext.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if enc := string(p.GetMetadata()[converter.MetadataEncoding]); enc != MetadataEncodingEncrypted {
			if c.require && !(enc == converter.MetadataEncodingNil && len(p.GetData()) == 0) {
				if len(enc) > 64 {
					enc = enc[:64] + "…"
				}
				return payloads, fmt.Errorf("%w (payload %d of %d has encoding %q)", ErrPlaintext, i+1, len(payloads), enc)
			}
			out[i] = p
			continue
		}
		id := string(p.Metadata[MetadataKeyID])
		aead, ok := c.aeads[id]
		if !ok {
			return payloads, fmt.Errorf("%w %q", ErrUnknownKey, id)
		}
		if len(p.Data) < aead.NonceSize()+aead.Overhead() {
			return payloads, fmt.Errorf("%w: key %q: payload too short", ErrDecrypt, id)
		}
		nonce, sealed := p.Data[:aead.NonceSize()], p.Data[aead.NonceSize():]
		plain, err := aead.Open(nil, nonce, sealed, additionalData(id))
		if err != nil {
			return payloads, fmt.Errorf("%w: key %q", ErrDecrypt, id)
		}
		var orig commonpb.Payload
		if err := proto.Unmarshal(plain, &orig); err != nil {
			return payloads, fmt.Errorf("codec: decrypted payload (key %q) is not a payload: %w", id, err)
		}
		out[i] = &orig
	}
	return out, nil
}

// DataConverter wraps Temporal's default converter with the codec.
//
// When the codec requires encryption, a refused payload decoded into a
// converter.RawValue (how rollbook's workflow receives signals) becomes a
// data-less payload of encoding EncodingRefused instead of an error: the
// SDK would drop a signal it cannot decode and leave the receiving
// coroutine blocked, so one plaintext signal would stop every later signal
// (an abort included) from being handled. The workflow records it as
// ignored instead. Every other refused payload (a workflow input, a query
// argument) is an error wrapping ErrPlaintext: a Deploy started in
// plaintext fails at once, before any activity.
func (c *Codec) DataConverter() converter.DataConverter {
	dc := converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
	if !c.require {
		return dc
	}
	return &refusingConverter{DataConverter: dc}
}

type refusingConverter struct {
	converter.DataConverter
}

func refused() *commonpb.Payload {
	return &commonpb.Payload{Metadata: map[string][]byte{converter.MetadataEncoding: []byte(EncodingRefused)}}
}

func allRaw(ptrs []any) bool {
	for _, p := range ptrs {
		if _, ok := p.(*converter.RawValue); !ok {
			return false
		}
	}
	return len(ptrs) > 0
}

func (r *refusingConverter) FromPayload(p *commonpb.Payload, ptr any) error {
	err := r.DataConverter.FromPayload(p, ptr)
	if errors.Is(err, ErrPlaintext) && allRaw([]any{ptr}) {
		*ptr.(*converter.RawValue) = converter.NewRawValue(refused())
		return nil
	}
	return err
}

func (r *refusingConverter) FromPayloads(ps *commonpb.Payloads, ptrs ...any) error {
	err := r.DataConverter.FromPayloads(ps, ptrs...)
	if errors.Is(err, ErrPlaintext) && allRaw(ptrs) {
		for _, p := range ptrs {
			*p.(*converter.RawValue) = converter.NewRawValue(refused())
		}
		return nil
	}
	return err
}

// WithSerializationContext keeps the refusal when the SDK derives a
// per-workflow converter.
func (r *refusingConverter) WithSerializationContext(ctx converter.SerializationContext) converter.DataConverter {
	if w, ok := r.DataConverter.(converter.DataConverterWithSerializationContext); ok {
		return &refusingConverter{DataConverter: w.WithSerializationContext(ctx)}
	}
	return r
}

// Apply makes a Temporal client encrypt with the codec: payloads through
// the data converter, and failure messages and stack traces (which can
// quote SQL or an abort reason) through the failure converter.
func (c *Codec) Apply(opts *client.Options) {
	dc := c.DataConverter()
	opts.DataConverter = dc
	opts.FailureConverter = temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter:          dc,
		EncodeCommonAttributes: true,
	})
}
