package runbook

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/goccy/go-yaml/ast"
)

// maxDepth bounds nesting; the model is at most about eight levels deep.
const maxDepth = 32

// decoder fills Go values from the YAML AST, driven by the Go types and
// their json tags. Unlike a stock decoder it does not stop at the first
// problem: every unknown field, wrong type and duplicate key is collected
// with its line and path, and the line of every path is recorded for the
// semantic validation that follows.
type decoder struct {
	file    string
	aliases map[*ast.AliasNode]ast.Node
	pos     positions
	errs    Errors
	// incomplete holds maps and lists that lost an entry to a decoding
	// error; semantic checks of the whole container (a weight sum) would
	// only mislead there.
	incomplete map[string]bool
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

func (d *decoder) errorf(line int, path, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{File: d.file, Line: line, Path: path, Msg: clip(fmt.Sprintf(format, args...))})
}

// resolve strips anchors and follows aliases.
func (d *decoder) resolve(n ast.Node) ast.Node {
	for i := 0; i < 4; i++ {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.AliasNode:
			n = d.aliases[v]
		default:
			return n
		}
	}
	return n
}

func (d *decoder) decode(n ast.Node, v reflect.Value, path string, line, depth int) {
	n, line, done := d.decodeSpecial(n, v, path, line, depth)
	if done {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		nv := reflect.New(v.Type().Elem())
		d.decode(n, nv.Elem(), path, line, depth)
		v.Set(nv)
	case reflect.Struct:
		d.decodeStruct(n, v, path, line, depth)
	case reflect.Map:
		d.decodeMap(n, v, path, line, depth)
	case reflect.Slice:
		d.decodeSlice(n, v, path, line, depth)
	default:
		d.decodeScalar(n, v, path, line)
	}
}

// decodeSpecial handles what comes before the value's kind: anchors and
// aliases, the nesting limit, tags, null, and types that decode from text
// (durations). done is true when nothing is left to decode.
func (d *decoder) decodeSpecial(n ast.Node, v reflect.Value, path string, line, depth int) (ast.Node, int, bool) {
	n = d.resolve(n)
	if n != nil {
		if l := nodeLine(n); l > 0 {
			line = l
		}
	}
	if depth > maxDepth {
		d.errorf(line, path, "nested more than %d levels deep", maxDepth)
		return n, line, true
	}
	if tag, ok := n.(*ast.TagNode); ok {
		d.errorf(line, path, "YAML tags such as %s are not supported; write the value plainly (quote strings)", tag.Start.Value)
		return n, line, true
	}
	if _, ok := n.(*ast.NullNode); ok || n == nil {
		// null means "not set", except that an empty step kind or option
		// block (`pause:`) becomes an empty struct so that validation can
		// say which of its fields are missing.
		if v.Kind() == reflect.Pointer && v.Type().Elem().Kind() == reflect.Struct {
			v.Set(reflect.New(v.Type().Elem()))
		} else {
			v.SetZero()
		}
		return n, line, true
	}
	if reflect.PointerTo(v.Type()).Implements(textUnmarshaler) {
		s, ok := scalarString(n)
		if !ok {
			d.errorf(line, path, "must be a string such as \"30s\", got %s", describe(n))
			return n, line, true
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			d.errorf(line, path, "%v", err)
		}
		return n, line, true
	}
	return n, line, false
}

// decodeScalar decodes a string, bool, integer or number.
func (d *decoder) decodeScalar(n ast.Node, v reflect.Value, path string, line int) {
	switch v.Kind() {
	case reflect.String:
		s, ok := scalarString(n)
		if !ok {
			hint := ""
			if isScalar(n) {
				hint = fmt.Sprintf(" (quote it: %q)", strings.TrimSpace(n.String()))
			}
			d.errorf(line, path, "must be a string, got %s%s", describe(n), hint)
			return
		}
		v.SetString(s)
	case reflect.Bool:
		b, ok := n.(*ast.BoolNode)
		if !ok {
			d.errorf(line, path, "must be true or false, got %s", describe(n))
			return
		}
		v.SetBool(b.Value)
	case reflect.Int, reflect.Int64:
		i, ok := n.(*ast.IntegerNode)
		if !ok {
			d.errorf(line, path, "must be an integer, got %s", describe(n))
			return
		}
		x, ok := integerValue(i)
		if !ok || v.OverflowInt(x) {
			d.errorf(line, path, "integer %s is out of range", i.String())
			return
		}
		v.SetInt(x)
	case reflect.Float64:
		switch f := n.(type) {
		case *ast.FloatNode:
			if math.IsNaN(f.Value) || math.IsInf(f.Value, 0) {
				d.errorf(line, path, "must be a finite number, got %s", f.String())
				return
			}
			v.SetFloat(f.Value)
		case *ast.IntegerNode:
			switch x := f.Value.(type) {
			case int64:
				v.SetFloat(float64(x))
			case uint64:
				v.SetFloat(float64(x))
			}
		default:
			d.errorf(line, path, "must be a number, got %s", describe(n))
		}
	default:
		// The model only uses the kinds above; a new field of another kind
		// needs support here, which a test of the examples will show.
		d.errorf(line, path, "internal: cannot decode into %s", v.Type())
	}
}

func (d *decoder) decodeStruct(n ast.Node, v reflect.Value, path string, line, depth int) {
	m, ok := n.(*ast.MappingNode)
	if !ok {
		d.errorf(line, path, "must be a mapping of fields, got %s", describe(n))
		return
	}
	fields := structFields(v.Type())
	d.eachEntry(m, path, func(key string, kline int, value ast.Node) {
		idx, ok := fields.byName[key]
		if !ok {
			msg := fmt.Sprintf("unknown field %q", key)
			if s := suggest(key, fields.names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.errorf(kline, keyPath(path, key), "%s", msg)
			return
		}
		p := fieldPath(path, key)
		d.pos[p] = kline
		d.decode(value, v.Field(idx), p, kline, depth+1)
	})
}

func (d *decoder) decodeMap(n ast.Node, v reflect.Value, path string, line, depth int) {
	m, ok := n.(*ast.MappingNode)
	if !ok {
		d.errorf(line, path, "must be a mapping, got %s", describe(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMapWithSize(v.Type(), len(m.Values)))
	}
	d.eachEntry(m, path, func(key string, kline int, value ast.Node) {
		p := keyPath(path, key)
		d.pos[p] = kline
		ev := reflect.New(v.Type().Elem()).Elem()
		before := len(d.errs)
		d.decode(value, ev, p, kline, depth+1)
		if len(d.errs) > before {
			d.markIncomplete(path)
		}
		v.SetMapIndex(reflect.ValueOf(key), ev)
	})
}

func (d *decoder) markIncomplete(path string) {
	if d.incomplete == nil {
		d.incomplete = map[string]bool{}
	}
	d.incomplete[path] = true
}

// eachEntry calls fn for every key of m, reporting keys that are not plain
// scalars, merge keys and duplicates instead.
func (d *decoder) eachEntry(m *ast.MappingNode, path string, fn func(key string, line int, value ast.Node)) {
	seen := map[string]int{}
	for _, mv := range m.Values {
		kline := nodeLine(mv.Key)
		if _, ok := mv.Key.(*ast.MergeKeyNode); ok {
			d.errorf(kline, path, "merge keys (<<) are not supported; write the fields out")
			continue
		}
		key, ok := scalarString(d.resolve(mv.Key))
		if !ok {
			if k := d.resolve(mv.Key); isScalar(k) {
				key = strings.TrimSpace(k.String())
			} else {
				d.errorf(kline, path, "keys must be plain strings, got %s", describe(k))
				continue
			}
		}
		if first, dup := seen[key]; dup {
			d.errorf(kline, keyPath(path, key), "duplicate key %q (first set on line %d)", key, first)
			continue
		}
		seen[key] = kline
		fn(key, kline, mv.Value)
	}
}

func (d *decoder) decodeSlice(n ast.Node, v reflect.Value, path string, line, depth int) {
	s, ok := n.(*ast.SequenceNode)
	if !ok {
		d.errorf(line, path, "must be a list, got %s", describe(n))
		return
	}
	out := reflect.MakeSlice(v.Type(), len(s.Values), len(s.Values))
	for i, e := range s.Values {
		p := indexPath(path, i)
		eline := nodeLine(d.resolve(e))
		if eline == 0 {
			eline = line
		}
		d.pos[p] = eline
		before := len(d.errs)
		d.decode(e, out.Index(i), p, eline, depth+1)
		if len(d.errs) > before {
			d.markIncomplete(path)
		}
	}
	v.Set(out)
}

// integerValue returns the value of an integer node; the parser stores
// non-negative numbers as uint64.
func integerValue(n *ast.IntegerNode) (int64, bool) {
	switch x := n.Value.(type) {
	case int64:
		return x, true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	}
	return 0, false
}

// scalarString returns the text of a string scalar (plain, quoted, or a
// literal/folded block).
func scalarString(n ast.Node) (string, bool) {
	switch s := n.(type) {
	case *ast.StringNode:
		return s.Value, true
	case *ast.LiteralNode:
		if s.Value == nil {
			return "", true
		}
		return s.Value.Value, true
	}
	return "", false
}

func isScalar(n ast.Node) bool {
	switch n.(type) {
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode, *ast.NullNode:
		return true
	}
	return false
}

// describe names what was found, for type errors.
func describe(n ast.Node) string {
	switch n := n.(type) {
	case nil, *ast.NullNode:
		return "null"
	case *ast.MappingNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode, *ast.LiteralNode:
		s, _ := scalarString(n)
		if len(s) > 40 {
			s = s[:40] + "…"
		}
		return fmt.Sprintf("string %q", s)
	case *ast.IntegerNode:
		return "integer " + n.String()
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "number " + n.String()
	case *ast.BoolNode:
		return "boolean " + n.String()
	}
	return n.Type().String()
}

// fieldIndex maps the json names of a struct's fields to their index.
type fieldIndex struct {
	byName map[string]int
	names  []string
}

var fieldCache sync.Map // reflect.Type → *fieldIndex

func structFields(t reflect.Type) *fieldIndex {
	if fi, ok := fieldCache.Load(t); ok {
		return fi.(*fieldIndex)
	}
	fi := &fieldIndex{byName: map[string]int{}}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fi.byName[name] = i
		fi.names = append(fi.names, name)
	}
	sort.Strings(fi.names)
	fieldCache.Store(t, fi)
	return fi
}

// suggest returns the known name closest to an unknown one, if it is close
// enough to be a typo (or the same name in another case/separator style).
func suggest(unknown string, known []string) string {
	norm := func(s string) string {
		return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s))
	}
	best, bestDist := "", 3
	for _, k := range known {
		if norm(k) == norm(unknown) {
			return k
		}
		if dist := levenshtein(unknown, k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
