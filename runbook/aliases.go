package runbook

import (
	"github.com/goccy/go-yaml/ast"
)

// maxExpandedNodes bounds the nodes that alias expansion adds to a runbook.
// Reusing a few checks by alias adds hundreds; a "billion laughs" file has
// a few dozen nodes that expand to billions. Counting with memoisation
// finds that out in time linear in the file, before anything is expanded.
const maxExpandedNodes = 10000

// aliasResolver maps every alias to its anchor's value and measures how big
// the document is once aliases are expanded.
type aliasResolver struct {
	file    string
	anchors map[string]*ast.AnchorNode
	size    map[*ast.AnchorNode]int
	targets map[*ast.AliasNode]ast.Node
	first   *ast.AliasNode
	// expanded is the number of nodes aliases add, saturating.
	expanded int
	errs     Errors
}

func resolveAliases(file string, root ast.Node) (map[*ast.AliasNode]ast.Node, Errors) {
	r := &aliasResolver{
		file:    file,
		anchors: map[string]*ast.AnchorNode{},
		size:    map[*ast.AnchorNode]int{},
		targets: map[*ast.AliasNode]ast.Node{},
	}
	r.count(root)
	if len(r.errs) > 0 {
		return nil, r.errs
	}
	if r.expanded > maxExpandedNodes {
		return nil, fileError(file, nodeLine(r.first), ErrAliasBomb,
			"aliases expand the document to more than %d nodes (a YAML bomb?); write the values out instead",
			maxExpandedNodes)
	}
	return r.targets, nil
}

// count returns the number of nodes under n with aliases expanded,
// saturating so that it cannot overflow. Anchors are visited in document
// order, which is also the order YAML requires (an alias refers to an
// anchor defined before it).
func (r *aliasResolver) count(n ast.Node) int {
	if n == nil {
		return 0
	}
	switch n := n.(type) {
	case *ast.AnchorNode:
		s := r.count(n.Value)
		r.anchors[anchorName(n.Name)] = n
		r.size[n] = s
		return s
	case *ast.AliasNode:
		name := anchorName(n.Value)
		a, ok := r.anchors[name]
		if !ok {
			r.errs = append(r.errs, &FieldError{File: r.file, Line: nodeLine(n), Err: ErrSyntax,
				Msg: "alias *" + name + " refers to no anchor defined before it"})
			return 1
		}
		if r.first == nil {
			r.first = n
		}
		r.targets[n] = a.Value
		r.expanded = satAdd(r.expanded, r.size[a])
		return r.size[a]
	case *ast.MappingNode:
		s := 1
		for _, mv := range n.Values {
			s = satAdd(s, r.count(mv))
		}
		return s
	case *ast.MappingValueNode:
		return satAdd(r.count(n.Key), r.count(n.Value))
	case *ast.MappingKeyNode:
		return satAdd(1, r.count(n.Value))
	case *ast.SequenceNode:
		s := 1
		for _, v := range n.Values {
			s = satAdd(s, r.count(v))
		}
		return s
	case *ast.TagNode:
		return satAdd(1, r.count(n.Value))
	}
	return 1
}

func satAdd(a, b int) int {
	const limit = 1 << 40
	if a+b > limit {
		return limit
	}
	return a + b
}

func anchorName(n ast.Node) string {
	if n == nil {
		return ""
	}
	if t := n.GetToken(); t != nil {
		return t.Value
	}
	return n.String()
}

func nodeLine(n ast.Node) int {
	if n == nil {
		return 0
	}
	if t := n.GetToken(); t != nil && t.Position != nil {
		return t.Position.Line
	}
	return 0
}
