package workerconfig

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCodecConfig(t *testing.T) {
	cfg, err := ParseConfig("w.yaml", []byte("codec:\n  keyFile: /etc/rollbook/payload-keys\n  keyID: \"2025-06\"\n"))
	require.NoError(t, err)
	require.NotNil(t, cfg.Codec)
	assert.Equal(t, "/etc/rollbook/payload-keys", cfg.Codec.KeyFile)
	assert.Equal(t, "2025-06", cfg.Codec.KeyID)

	cfg, err = ParseConfig("w.yaml", []byte("codec: {keyEnv: MY_KEYS}\n"))
	require.NoError(t, err)
	assert.Equal(t, "MY_KEYS", cfg.Codec.KeyEnv)
	assert.False(t, cfg.Codec.RequireEncryption)

	cfg, err = ParseConfig("w.yaml", []byte("codec: {keyEnv: MY_KEYS, requireEncryption: true}\n"))
	require.NoError(t, err)
	assert.True(t, cfg.Codec.RequireEncryption)

	cfg, err = ParseConfig("w.yaml", []byte("taskQueue: q\n"))
	require.NoError(t, err)
	assert.Nil(t, cfg.Codec, "no section: the worker follows ROLLBOOK_CODEC_KEY_FILE / ROLLBOOK_CODEC_KEY")

	for _, bad := range []string{"codec: {}\n", "codec: {keyFile: a, keyEnv: B}\n", "codec: {keyFile: a, key: inline}\n"} {
		_, err := ParseConfig("w.yaml", []byte(bad))
		assert.Error(t, err, bad)
	}
}
