package cli

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/internal/codec"
)

func codecKeyFile(t *testing.T, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "payload-keys")
	require.NoError(t, os.WriteFile(p, []byte("k1:"+hex.EncodeToString(bytes.Repeat([]byte{7}, codec.KeySize))+"\n"), mode))
	t.Setenv(codec.EnvKeyFile, p)
	t.Setenv(codec.EnvKey, "")
	return p
}

// runCodecServer runs the command until it exits or for d, then cancels it.
func runCodecServer(t *testing.T, d time.Duration, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var out, errOut bytes.Buffer
	code := Run(ctx, append([]string{"codec-server"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCodecServerNeedsATokenBeyondLoopback(t *testing.T) {
	codecKeyFile(t, 0o600)
	t.Setenv(envCodecServerToken, "")
	t.Setenv(envCodecServerTokenFile, "")
	for _, listen := range []string{"0.0.0.0:0", ":0"} {
		code, out, errOut := runCodecServer(t, 5*time.Second, "--listen", listen)
		assert.Equal(t, ExitBadInput, code, listen)
		assert.Contains(t, errOut, "without a token", listen)
		assert.NotContains(t, out, "listening", listen)
	}
	// With a token from the environment it starts (and stops with ctx).
	t.Setenv(envCodecServerToken, "tok-from-env")
	code, out, errOut := runCodecServer(t, 500*time.Millisecond, "--listen", "0.0.0.0:0")
	assert.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, out, "auth: bearer token")
}

func TestCodecServerTokenNeverOnTheCommandLine(t *testing.T) {
	codecKeyFile(t, 0o600)
	t.Setenv(envCodecServerToken, "")
	t.Setenv(envCodecServerTokenFile, "")
	code, _, errOut := runCodecServer(t, 5*time.Second, "--listen", "127.0.0.1:0", "--token", "visible-in-ps")
	assert.Equal(t, ExitBadInput, code)
	assert.Contains(t, errOut, "unknown flag: --token")

	tf := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tf, []byte("from-file\n"), 0o600))
	code, out, errOut := runCodecServer(t, 500*time.Millisecond, "--listen", "127.0.0.1:0", "--token-file", tf)
	assert.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, out, "auth: bearer token")

	tok, err := codecServerToken(tf)
	require.NoError(t, err)
	assert.Equal(t, "from-file", tok)
	t.Setenv(envCodecServerToken, "both")
	_, err = codecServerToken(tf)
	assert.ErrorContains(t, err, "not both")
	empty := filepath.Join(t.TempDir(), "empty")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	t.Setenv(envCodecServerToken, "")
	_, err = codecServerToken(empty)
	assert.ErrorContains(t, err, "is empty")
}

func TestCodecServerWarnsOnAReadableKeyFile(t *testing.T) {
	t.Setenv(envCodecServerToken, "")
	t.Setenv(envCodecServerTokenFile, "")
	p := codecKeyFile(t, 0o644)
	_, out, errOut := runCodecServer(t, 500*time.Millisecond, "--listen", "127.0.0.1:0")
	assert.Contains(t, out, "listening")
	assert.Contains(t, errOut, "warning")
	assert.Contains(t, errOut, p)
	assert.Contains(t, errOut, "chmod 600")

	codecKeyFile(t, 0o600)
	_, _, errOut = runCodecServer(t, 500*time.Millisecond, "--listen", "127.0.0.1:0")
	assert.False(t, strings.Contains(errOut, "warning"), errOut)
}
