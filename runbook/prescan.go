package runbook

import (
	"github.com/goccy/go-yaml/token"
)

// The YAML parser's cost grows with the square of a mapping's size and of
// the nesting depth: a 1 MiB file with one mapping of 60 000 keys takes
// seconds. Its lexer is linear, so a pass over the tokens refuses such
// shapes before parsing. The limits are far above any real runbook (a
// consul step has at most 64 keys, the model nests about eight levels).
const (
	maxMappingEntries = 500
	maxNesting        = 64
)

type scanLevel struct {
	col   int
	seq   bool
	count int
	line  int
}

// prescan returns an error for documents too wide or too deep to parse
// quickly. It approximates YAML's block structure from token columns;
// errors in that approximation only matter for absurd documents.
func prescan(file string, tokens token.Tokens) Errors {
	var block []scanLevel // block mappings and sequences, by column
	var flow []scanLevel  // flow mappings ({) and sequences ([)
	var prev *token.Token
	tooWide := func(l scanLevel) Errors {
		return fileError(file, l.line, ErrSyntax, "a mapping has more than %d keys; a runbook never needs that many", maxMappingEntries)
	}
	tooDeep := func(line int) Errors {
		return fileError(file, line, ErrSyntax, "nested more than %d levels deep", maxNesting)
	}
	for _, tk := range tokens {
		line := 0
		if tk.Position != nil {
			line = tk.Position.Line
		}
		switch tk.Type {
		case token.CommentType, token.SpaceType:
			continue
		case token.MappingStartType, token.SequenceStartType:
			flow = append(flow, scanLevel{seq: tk.Type == token.SequenceStartType, line: line})
			if len(flow)+len(block) > maxNesting {
				return tooDeep(line)
			}
		case token.MappingEndType, token.SequenceEndType:
			if len(flow) > 0 {
				flow = flow[:len(flow)-1]
			}
		case token.MappingValueType:
			if len(flow) > 0 {
				top := &flow[len(flow)-1]
				if !top.seq {
					if top.count++; top.count > maxMappingEntries {
						return tooWide(*top)
					}
				}
			} else if prev != nil && prev.Position != nil {
				if l, bad := blockEntry(&block, prev.Position.Column, false, line); bad {
					return tooWide(l)
				}
				if len(block) > maxNesting {
					return tooDeep(line)
				}
			}
		case token.SequenceEntryType:
			if len(flow) == 0 && tk.Position != nil {
				blockEntry(&block, tk.Position.Column, true, line)
				if len(block) > maxNesting {
					return tooDeep(line)
				}
			}
		}
		prev = tk
	}
	return nil
}

// blockEntry records a key (or "-" entry) at col: deeper levels are closed,
// a level at the same column gains an entry, otherwise a level opens. It
// returns the level and true when a mapping grows too wide.
func blockEntry(block *[]scanLevel, col int, seq bool, line int) (scanLevel, bool) {
	b := *block
	for len(b) > 0 && (b[len(b)-1].col > col || (b[len(b)-1].col == col && b[len(b)-1].seq && !seq)) {
		b = b[:len(b)-1]
	}
	if n := len(b); n > 0 && b[n-1].col == col && b[n-1].seq == seq {
		b[n-1].count++
		*block = b
		return b[n-1], !seq && b[n-1].count > maxMappingEntries
	}
	*block = append(b, scanLevel{col: col, seq: seq, count: 1, line: line})
	return scanLevel{}, false
}
