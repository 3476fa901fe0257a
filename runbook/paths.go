package runbook

import (
	"fmt"
	"regexp"
	"strings"
)

// Field paths name a value inside a runbook the way a user reads it:
// steps[2].traffic.weights.canary. The decoder records the line of every
// path it visits, and validation looks its paths up there.

// plainKey matches map keys that can be shown without quoting.
var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9_/-]*$`)

func fieldPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

func indexPath(parent string, i int) string {
	return fmt.Sprintf("%s[%d]", parent, i)
}

// keyPath is the path of a map entry; keys with dots, spaces or brackets
// are quoted so the path stays unambiguous, with everything but printable
// ASCII escaped and long keys shortened (a path is printed to terminals and
// CI logs; two huge keys that share their start share a path, which only
// matters for the line an error points at).
func keyPath(parent, key string) string {
	if plainKey.MatchString(key) {
		return fieldPath(parent, key)
	}
	return parent + "[" + quoteShort(key) + "]"
}

// positions maps a field path to the line it was written on.
type positions map[string]int

// line returns the line of path, or of its nearest recorded ancestor, so
// that an error about a missing field points at the object that lacks it.
func (p positions) line(path string) int {
	for {
		if l, ok := p[path]; ok {
			return l
		}
		cut := strings.LastIndexAny(path, ".[")
		if cut <= 0 {
			return p[""]
		}
		path = path[:cut]
	}
}

// under reports whether path is at or below ancestor.
func under(path, ancestor string) bool {
	if ancestor == "" || path == ancestor {
		return true
	}
	if !strings.HasPrefix(path, ancestor) {
		return false
	}
	next := path[len(ancestor)]
	return next == '.' || next == '['
}
