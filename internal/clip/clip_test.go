package clip

import (
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

func TestPrefixNeverSplitsARune(t *testing.T) {
	s := "héllo wörld ✓ 日本語"
	for n := 0; n <= len(s)+1; n++ {
		p := Prefix(s, n)
		assert.True(t, utf8.ValidString(p), "n=%d: %q", n, p)
		assert.LessOrEqual(t, len(p), n, "n=%d", n)
		assert.Equal(t, s[:len(p)], p)
		// Longest: one more rune would not fit.
		if len(p) < len(s) {
			_, size := utf8.DecodeRuneInString(s[len(p):])
			assert.Greater(t, len(p)+size, n, "n=%d: %q is not the longest prefix", n, p)
		}
	}
	assert.Equal(t, "", Prefix("abc", -1))
}

func TestMarkers(t *testing.T) {
	assert.Equal(t, "short", Ellipsis("short", 5))
	assert.Equal(t, "sho…", Ellipsis("short", 3))
	// "é" is 2 bytes: cutting at 2 would split it.
	assert.Equal(t, "h…", Ellipsis("héllo", 2))
	assert.Equal(t, "h…(5 more bytes)", Bytes("héllo", 2))
	assert.Equal(t, "héllo", Bytes("héllo", 6))
}
