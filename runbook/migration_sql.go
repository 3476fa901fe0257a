package runbook

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// Migration files are read twice: by `rollbook validate` and, at deploy
// time, by goose on the worker. If the two disagree, a file that validated
// fails half-way through a deployment, or does something validation never
// saw. So this file reads SQL exactly as goose v3's parser does
// (github.com/pressly/goose/v3 v3.30.0, internal/sqlparser/parser.go: the
// same line splitting, annotation extraction, state machine and statement
// ends), and on top of that allows only the annotations rollbook supports.
//
// Refused although goose knows them:
//   - ENVSUB ON / ENVSUB OFF: goose would replace ${VAR} with the worker's
//     environment, which holds DSNs and tokens; the value would end up in
//     the database, an error message, workflow history and logs.
//   - NO TRANSACTION: rollbook's migrate activity relies on each file
//     running in one transaction, so that a failing file leaves the schema
//     at the last good version and the compensation knows where it stands.
//
// Stricter than goose, never looser: an annotation indented by any
// whitespace is refused (goose fails on spaces and tabs, and would read
// other whitespace such as U+00A0).

// supportedAnnotations are the goose annotations rollbook accepts, in
// goose's canonical spelling.
var supportedAnnotations = []string{annUp, annDown, annStatementBegin, annStatementEnd}

// Goose's annotations (parser.go's annotation constants). goose matches
// them with strings.EqualFold, so "envsub on" and "ENVſUB ON" (a long s
// folds to s) are ENVSUB ON too.
const (
	annUp             = "Up"
	annDown           = "Down"
	annStatementBegin = "StatementBegin"
	annStatementEnd   = "StatementEnd"
	annNoTransaction  = "NO TRANSACTION"
	annEnvsubOn       = "ENVSUB ON"
	annEnvsubOff      = "ENVSUB OFF"
)

var gooseAnnotations = []string{annUp, annDown, annStatementBegin, annStatementEnd, annNoTransaction, annEnvsubOn, annEnvsubOff}

// refusedAnnotations says why rollbook refuses an annotation goose knows.
var refusedAnnotations = map[string]string{
	annEnvsubOn:      "which would substitute the worker's environment variables (database DSNs, tokens) into the SQL",
	annEnvsubOff:     "part of environment substitution, which rollbook refuses (it would put the worker's environment variables into the SQL)",
	annNoTransaction: "which rollbook does not support: it runs each migration file in one transaction, so that a failing file leaves the schema at the last good version",
}

// gooseScanMax is goose's longest line (parser.go's scanBufSize).
const gooseScanMax = 4 << 20

// SQLMigration is what goose will run for one migration file.
type SQLMigration struct {
	// Up and Down are the statements of each direction, as goose splits
	// them (trimmed, comments before a statement left out).
	Up, Down []string
}

// CheckMigrationSQL checks one goose SQL migration file before goose sees
// it: every "+goose" annotation is one rollbook supports (Up, Down,
// StatementBegin, StatementEnd, in any spelling goose accepts), none is
// indented, and goose's parser would read both directions without error.
// path only names the file in the message.
//
// The worker calls it on every file of a bundle before handing the files
// to goose; validation calls it through Load and Bundle.Check. The error
// wraps ErrMigration and names the file and line.
func CheckMigrationSQL(path string, data []byte) error {
	if _, err := ParseMigrationSQL(path, data); err != nil {
		return err
	}
	return nil
}

// ParseMigrationSQL is CheckMigrationSQL that also returns the statements
// goose will run in each direction.
func ParseMigrationSQL(path string, data []byte) (*SQLMigration, error) {
	content := string(data)
	up, err := gooseStatements(content, true)
	if err == nil {
		var down []string
		if down, err = gooseStatements(content, false); err == nil {
			return &SQLMigration{Up: up, Down: down}, nil
		}
	}
	path = truncateRunes(path, maxPathRunes)
	var le *sqlLineError
	if errors.As(err, &le) && le.line > 0 {
		return nil, fmt.Errorf("%w: %s line %d: %s", ErrMigration, path, le.line, le.msg)
	}
	return nil, fmt.Errorf("%w: %s: %v", ErrMigration, path, err)
}

type sqlLineError struct {
	line int
	msg  string
}

func (e *sqlLineError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

func lineErrorf(line int, format string, args ...any) error {
	return &sqlLineError{line: line, msg: clip(fmt.Sprintf(format, args...))}
}

// goose's parser states.
type gooseState int

const (
	stStart gooseState = iota
	stUp
	stBeginUp
	stEndUp
	stDown
	stBeginDown
	stEndDown
)

// gooseStatements is goose's ParseSQLMigration for one direction, with the
// refused annotations turned into errors and messages that say what to
// change.
func gooseStatements(content string, up bool) ([]string, error) {
	sc := bufio.NewScanner(strings.NewReader(content))
	sc.Buffer(nil, gooseScanMax)
	p := &gooseParser{up: up}
	for sc.Scan() {
		p.n++
		line := sc.Text()
		if p.state == stStart && strings.TrimSpace(line) == "" {
			continue
		}
		// goose's test for an annotation line: a comment holding "+goose"
		// anywhere.
		if strings.HasPrefix(strings.TrimSpace(line), "--") && strings.Contains(line, "+goose") {
			done, err := p.annotation(line)
			if err != nil {
				return nil, err
			}
			if done {
				continue
			}
		}
		if err := p.statementLine(line); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, lineErrorf(p.n+1, "cannot be read as goose reads it: %v", err)
	}
	return p.finish()
}

// gooseParser is the state of gooseStatements: where in the file it is,
// the statement being read (from line bufLine) and those read.
type gooseParser struct {
	up         bool
	state      gooseState
	buf        strings.Builder
	stmts      []string
	n, bufLine int
}

// annotation moves the state on an annotation line; done is false when the
// line also belongs to the statement (a StatementEnd ends it).
func (p *gooseParser) annotation(line string) (done bool, err error) {
	ann, err := annotationOf(line)
	if err != nil {
		return false, lineErrorf(p.n, "%v", err)
	}
	switch ann {
	case annUp:
		if p.state != stStart {
			return false, lineErrorf(p.n, "a second -- +goose Up annotation (goose allows one, at the start)")
		}
		p.state = stUp
		return true, nil
	case annDown:
		if p.state != stUp && p.state != stEndUp {
			if p.state == stStart {
				return false, lineErrorf(p.n, "-- +goose Down before -- +goose Up")
			}
			return false, lineErrorf(p.n, "-- +goose Down here is refused by goose (a second Down, or inside a StatementBegin/StatementEnd block)")
		}
		if rest := strings.TrimSpace(p.buf.String()); rest != "" {
			return false, lineErrorf(p.bufLine, "statement %s does not end with a semicolon before -- +goose Down", quoteShort(rest))
		}
		p.state = stDown
		return true, nil
	case annStatementBegin:
		switch p.state {
		case stUp, stEndUp:
			p.state = stBeginUp
		case stDown, stEndDown:
			p.state = stBeginDown
		default:
			return false, lineErrorf(p.n, "-- +goose StatementBegin must follow -- +goose Up or Down, outside another StatementBegin block")
		}
		return true, nil
	case annStatementEnd:
		switch p.state {
		case stBeginUp:
			p.state = stEndUp
		case stBeginDown:
			p.state = stEndDown
		default:
			return false, lineErrorf(p.n, "-- +goose StatementEnd without a StatementBegin before it")
		}
		// Not done: goose lets the StatementEnd line end the statement
		// in statementLine.
	}
	return false, nil
}

// statementLine adds a line to the current statement of the direction
// being read, and ends the statement at a semicolon or a StatementEnd.
func (p *gooseParser) statementLine(line string) error {
	// Comments and empty lines before a statement are left out; once a
	// statement started, everything up to its end belongs to it.
	if p.buf.Len() == 0 {
		if strings.HasPrefix(strings.TrimSpace(line), "--") || line == "" {
			return nil
		}
		p.bufLine = p.n
	}
	if p.state != stEndUp && p.state != stEndDown {
		p.buf.WriteString(line)
		p.buf.WriteByte('\n')
	}
	switch p.state {
	case stUp, stBeginUp, stEndUp:
		if !p.up {
			p.buf.Reset()
			return nil
		}
	case stDown, stBeginDown, stEndDown:
		if p.up {
			p.buf.Reset()
			return nil
		}
	default:
		return lineErrorf(p.n, "SQL before the -- +goose Up annotation (goose refuses it): %s", quoteShort(strings.TrimSpace(line)))
	}
	switch p.state {
	case stUp, stDown:
		if endsWithSemicolon(line) {
			p.endStatement()
		}
	case stEndUp:
		p.endStatement()
		p.state = stUp
	case stEndDown:
		p.endStatement()
		p.state = stDown
	}
	return nil
}

func (p *gooseParser) endStatement() {
	p.stmts = append(p.stmts, strings.TrimSpace(p.buf.String()))
	p.buf.Reset()
}

// finish checks the end of the file: an Up was seen, every block ended,
// and no statement is left without its semicolon.
func (p *gooseParser) finish() ([]string, error) {
	switch p.state {
	case stStart:
		return nil, errors.New("no -- +goose Up annotation")
	case stBeginUp, stBeginDown:
		return nil, errors.New("a -- +goose StatementBegin has no StatementEnd")
	}
	if rest := strings.TrimSpace(p.buf.String()); rest != "" {
		return nil, lineErrorf(p.bufLine, "statement %s does not end with a semicolon", quoteShort(rest))
	}
	return p.stmts, nil
}

// annotationOf is goose's extractAnnotation plus rollbook's allowlist: it
// returns the canonical annotation of an annotation line, or why the line
// is refused.
func annotationOf(line string) (string, error) {
	if strings.TrimLeftFunc(line, unicode.IsSpace) != line {
		return "", fmt.Errorf("annotation %s is indented; goose reads annotations only at the start of a line (and fails on this one): remove the leading whitespace", quoteShort(line))
	}
	cmd := strings.ReplaceAll(line, "--", "")
	cmd = strings.Replace(cmd, "+goose", "", 1)
	if strings.Contains(cmd, "+goose") {
		return "", fmt.Errorf("%s holds more than one +goose annotation", quoteShort(line))
	}
	cmd = strings.TrimSpace(cmd)
	if cmd == "" {
		return "", fmt.Errorf("%s is an empty +goose annotation", quoteShort(line))
	}
	for _, a := range gooseAnnotations {
		if !strings.EqualFold(a, cmd) {
			continue
		}
		if why, refused := refusedAnnotations[a]; refused {
			return "", fmt.Errorf("annotation %s is goose's %s, %s; rollbook allows only %s", quoteShort(line), a, why, strings.Join(supportedAnnotations, ", "))
		}
		return a, nil
	}
	return "", fmt.Errorf("unknown annotation %s: a comment holding \"+goose\" is read by goose as an annotation, and rollbook allows only %s",
		quoteShort(line), strings.Join(supportedAnnotations, ", "))
}

// endsWithSemicolon is goose's test for the end of a simple statement: the
// last word before a "--" comment ends in ';'.
func endsWithSemicolon(line string) bool {
	prev := ""
	for _, word := range strings.Fields(line) {
		if strings.HasPrefix(word, "--") {
			break
		}
		prev = word
	}
	return strings.HasSuffix(prev, ";")
}
