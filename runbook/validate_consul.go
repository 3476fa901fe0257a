package runbook

import (
	"sort"
)

func (c *checker) checkConsul(p string, cs *ConsulStep) {
	n := len(cs.Set) + len(cs.Delete)
	switch {
	case n == 0:
		c.addf(p, "a consul step needs at least one key to set or delete")
	case n > MaxConsulOps:
		c.addf(p, "a consul step changes at most %d keys (one Consul transaction), got %d; split it", MaxConsulOps, n)
	}
	keys := make([]string, 0, len(cs.Set))
	for k := range cs.Set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kp := keyPath(fieldPath(p, "set"), k)
		c.consulKey(kp, k)
		if v := cs.Set[k]; len(v) > MaxValueBytes {
			c.addf(kp, "value is %d bytes; Consul stores at most %d", len(v), MaxValueBytes)
		}
	}
	deleted := map[string]bool{}
	for i, k := range cs.Delete {
		kp := indexPath(fieldPath(p, "delete"), i)
		c.consulKey(kp, k)
		switch _, set := cs.Set[k]; {
		case deleted[k]:
			c.addf(kp, "key %s is deleted twice", quoteShort(k))
		case set:
			c.addf(kp, "key %s is both set and deleted", quoteShort(k))
		}
		deleted[k] = true
	}
}

// consulKey keeps keys inside the prefix the worker is allowed to write:
// relative, no traversal, nothing a log, a URL or an ACL rule would
// misread (see CheckConsulKey).
func (c *checker) consulKey(p, k string) {
	if err := CheckConsulKey(k); err != nil {
		c.addf(p, "%s", nameMsg(err))
	}
}
