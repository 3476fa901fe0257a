package runbook

import (
	"bytes"
	"unicode/utf8"
)

// checkText refuses input that is not text before the YAML parser sees it:
// a parser fed binary data produces confusing messages (or takes its time),
// and a control character in a runbook is never intended.
func checkText(file string, data []byte) Errors {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return fileError(file, lineAt(data, i), ErrBinary,
			"file is binary, not YAML (NUL byte at offset %d)", i)
	}
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return fileError(file, lineAt(data, i), ErrBinary,
				"file is not valid UTF-8 (bad byte 0x%02x at offset %d)", data[i], i)
		}
		if forbiddenRune(r) {
			return fileError(file, lineAt(data, i), ErrBinary,
				"control character %U at offset %d; YAML allows only tab, newline and carriage return", r, i)
		}
		i += size
	}
	return nil
}

// forbiddenRune follows YAML 1.2's c-printable: C0 controls other than tab,
// LF and CR, DEL, and C1 controls other than NEL are not allowed.
func forbiddenRune(r rune) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r':
		return false
	case r < 0x20 || r == 0x7f:
		return true
	case r >= 0x80 && r <= 0x9f && r != 0x85:
		return true
	}
	return false
}

// lineAt returns the 1-based line of byte offset off.
func lineAt(data []byte, off int) int {
	return bytes.Count(data[:off], []byte{'\n'}) + 1
}

func sizeError(file string, size int64) Errors {
	return fileError(file, 0, ErrTooLarge, "file is %d bytes, %d over the limit of %d bytes",
		size, size-MaxBundleBytes, MaxBundleBytes)
}
