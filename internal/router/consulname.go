package router

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// maxConsulNameLen bounds a Consul service or subset name (Consul's own
// limit for service names is 256 bytes; DNS labels are far shorter).
const maxConsulNameLen = 128

// ValidConsulName checks a service or subset name before it reaches Consul: a
// service name becomes part of a URL path (/v1/config/<kind>/<name>,
// /v1/health/service/<name>), so it must not hold '/', "..", control or
// non-ASCII characters, and must be unchanged by url.PathEscape; the
// accepted alphabet is [A-Za-z0-9_.-], starting with a letter or digit.
func ValidConsulName(name string) error {
	if name == "" || len(name) > maxConsulNameLen {
		return fmt.Errorf("must be 1 to %d characters", maxConsulNameLen)
	}
	if strings.Contains(name, "..") {
		return errors.New(`must not contain ".."`)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || (c != '_' && c != '.' && c != '-')) {
			return fmt.Errorf("byte %d (%q) is outside [A-Za-z0-9_.-] (and the first must be a letter or digit)", i, c)
		}
	}
	if url.PathEscape(name) != name {
		// Unreachable with the alphabet above; kept so that a wider
		// alphabet can never put an unescaped name into a path.
		return errors.New("needs escaping in a URL path")
	}
	return nil
}
