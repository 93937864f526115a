package sqlagent

import (
	"strings"
)

// stmtKind says what a statement the reader kept does.
type stmtKind int

const (
	stmtCall     stmtKind = iota // EXEC of a procedure
	stmtAssign                   // a variable set by DECLARE, SET or SELECT
	stmtBatchEnd                 // GO
	stmtProblem                  // something the reader saw and cannot read
)

// stmt is a statement of a script that the import interprets. Every other
// statement (transactions, IF, GOTO, PRINT…) is read past.
type stmt struct {
	kind stmtKind
	line int
	// For stmtCall: the procedure's name, lower-cased, without its
	// database and schema, and its arguments in order.
	proc string
	args []arg
	// For stmtAssign: the variable, lower-cased with its @, and its value.
	variable string
	value    value
	// For stmtProblem, and for a call that could not be read whole: why.
	problem string
}

// arg is one argument of a call: @name = value, or a value by position.
type arg struct {
	name   string // lower-cased without @; "" when given by position
	value  value
	output bool
}

// valueKind says what a value is.
type valueKind int

const (
	valNull        valueKind = iota // NULL, or a variable never set
	valString                       // 'text', N'text', "text" or a bare word
	valNumber                       // a numeric literal, with its sign
	valVar                          // a variable, to be looked up when used
	valDefault                      // DEFAULT: the parameter's default
	valJobLookup                    // a job_id read from sysjobs by name
	valSchedLookup                  // a schedule_id read from sysschedules by name
	valUnknown                      // an expression the reader does not evaluate
)

// value is a constant, or a reference the import resolves.
type value struct {
	kind valueKind
	// text is the string, the number as written, the variable's name
	// (lower-cased, with its @) or the name a lookup looks for.
	text string
}

// read parses a script's text and hands each statement the import
// interprets to do, in order. A script that leaves a string, a comment or
// an identifier open is refused whole, before do sees any of it.
func read(src string, do func(stmt)) error {
	check := lexer{src: src, line: 1, lineStart: true}
	for check.pos < len(src) {
		if err := check.next(); err != nil {
			return err
		}
		check.toks = check.toks[:0]
	}
	p := parser{lx: &lexer{src: src, line: 1, lineStart: true}, do: do}
	p.run()
	return p.err
}

// parser walks the tokens of a script. It holds the tokens of the
// statement it reads, not the whole script's: lx.toks is its window,
// emptied before each statement.
type parser struct {
	lx  *lexer
	i   int // the next token, in lx.toks
	err error
	do  func(stmt)
}

// eof is what peek returns past the last token.
var eof = token{kind: tokGo, text: ""}

// fill lexes until the window holds n tokens, or the script ends.
func (p *parser) fill(n int) {
	for len(p.lx.toks) < n && p.err == nil && p.lx.pos < len(p.lx.src) {
		p.err = p.lx.next()
	}
}

func (p *parser) peek(k int) token {
	j := p.i + k
	if j < 0 {
		return eof
	}
	p.fill(j + 1)
	if j < len(p.lx.toks) {
		return p.lx.toks[j]
	}
	return eof
}

func (p *parser) done() bool {
	p.fill(p.i + 1)
	return p.i >= len(p.lx.toks)
}

// forget drops the tokens already read.
func (p *parser) forget() {
	n := copy(p.lx.toks, p.lx.toks[p.i:])
	p.lx.toks = p.lx.toks[:n]
	p.i = 0
}

func (p *parser) run() {
	// first is true before the first statement of a batch, where T-SQL
	// runs a procedure named without EXEC.
	first := true
	for !p.done() {
		p.forget()
		t := p.peek(0)
		switch {
		case t.kind == tokGo:
			p.do(stmt{kind: stmtBatchEnd, line: t.line})
			p.i++
			first = true
			continue
		case t.is("EXEC") || t.is("EXECUTE"):
			p.exec()
		case first && p.namesProcedure():
			p.call(t.line)
		case t.is("DECLARE"):
			p.declare()
		case (t.is("SET") || t.is("SELECT")) && p.peek(1).kind == tokVar && p.peek(2).is("="):
			p.i++
			p.assign(t.is("SELECT"))
		default:
			p.i++
		}
		first = false
	}
}

// namesProcedure reports whether the tokens ahead are the [db.][schema.]
// name of a system procedure (sp_…), not a label: at the start of a batch,
// a call without EXEC. Any other word there starts a statement the import
// reads past.
func (p *parser) namesProcedure() bool {
	k := 0
	for p.peek(k).kind == tokIdent && p.peek(k+1).is(".") {
		for k++; p.peek(k).is("."); k++ {
		}
	}
	t := p.peek(k)
	return t.kind == tokIdent && strings.HasPrefix(strings.ToLower(t.text), "sp_") && !p.peek(k+1).is(":")
}

// exec reads EXEC [@rc =] [db.][schema.]procedure [args].
func (p *parser) exec() {
	line := p.peek(0).line
	p.i++
	if p.peek(0).kind == tokVar && p.peek(1).is("=") {
		p.i += 2 // the return code's variable
	}
	n := p.peek(0)
	switch {
	case n.is("AS"):
		return // EXECUTE AS: a change of security context
	case n.is("(") || n.kind == tokVar || n.kind == tokString:
		p.do(stmt{kind: stmtProblem, line: line,
			problem: "dynamic SQL (EXEC of a string or a variable) is not read; write the procedure calls out"})
		p.i++
		return
	case n.kind != tokIdent:
		return
	}
	p.call(line)
}

// call reads [db.][schema.]procedure [args] and hands on the call.
func (p *parser) call(line int) {
	name := p.peek(0).text
	p.i++
	for p.peek(0).is(".") {
		p.i++
		if p.peek(0).kind == tokIdent {
			name = p.peek(0).text
			p.i++
		}
	}
	call := stmt{kind: stmtCall, line: line, proc: strings.ToLower(name)}
	for {
		a, ok := p.arg()
		if !ok {
			break
		}
		call.args = append(call.args, a)
		if !p.peek(0).is(",") {
			break
		}
		p.i++
	}
	if isOperator(p.peek(0)) {
		call.problem = "a parameter is an expression; EXEC takes only constants and variables"
		p.skipExpr()
	}
	p.do(call)
}

// arg reads @name = value [OUTPUT], or value [OUTPUT].
func (p *parser) arg() (arg, bool) {
	var a arg
	if p.peek(0).kind == tokVar && p.peek(1).is("=") {
		a.name = strings.ToLower(strings.TrimPrefix(p.peek(0).text, "@"))
		p.i += 2
		v, ok := p.value()
		if !ok {
			v = value{kind: valUnknown}
		}
		a.value = v
	} else {
		v, ok := p.value()
		if !ok {
			return arg{}, false
		}
		a.value = v
	}
	if t := p.peek(0); t.is("OUTPUT") || t.is("OUT") {
		a.output = true
		p.i++
	}
	return a, true
}

// value reads one constant or variable.
func (p *parser) value() (value, bool) {
	t := p.peek(0)
	switch {
	case t.kind == tokString, t.kind == tokIdent && t.dquoted:
		p.i++
		return value{kind: valString, text: t.text}, true
	case t.kind == tokNumber:
		p.i++
		return value{kind: valNumber, text: t.text}, true
	case (t.is("-") || t.is("+")) && p.peek(1).kind == tokNumber:
		p.i += 2
		return value{kind: valNumber, text: t.text + p.peek(-1).text}, true
	case t.kind == tokVar:
		p.i++
		return value{kind: valVar, text: strings.ToLower(t.text)}, true
	case t.is("NULL"):
		p.i++
		return value{kind: valNull}, true
	case t.is("DEFAULT"):
		p.i++
		return value{kind: valDefault}, true
	case t.kind == tokIdent && !t.startsStatement() && !p.peek(1).is(":"):
		// EXEC takes a bare or [bracketed] word as a string: @subsystem
		// = TSQL.
		p.i++
		return value{kind: valString, text: t.text}, true
	}
	return value{}, false
}

// declare reads DECLARE @a type [= value] [, @b type [= value]]….
func (p *parser) declare() {
	p.i++
	for p.peek(0).kind == tokVar {
		v := p.peek(0)
		p.i++
		depth := 0
	typeLoop:
		for !p.done() {
			t := p.peek(0)
			switch {
			case t.kind == tokGo || t.kind == tokVar:
				break typeLoop
			case depth == 0 && (t.is("=") || t.is(",") || t.is(";")):
				break typeLoop
			case depth == 0 && t.startsStatement():
				break typeLoop
			case t.is("("):
				depth++
			case t.is(")"):
				depth--
			}
			p.i++
		}
		val := value{kind: valNull}
		if p.peek(0).is("=") {
			p.i++
			val = p.assignedValue(false)
		}
		p.do(stmt{kind: stmtAssign, line: v.line, variable: strings.ToLower(v.text), value: val})
		if !p.peek(0).is(",") {
			return
		}
		p.i++
	}
}

// assign reads the @a = value [, @b = value] of a SET or SELECT.
func (p *parser) assign(isSelect bool) {
	for {
		v := p.peek(0)
		p.i += 2
		val := p.assignedValue(isSelect)
		p.do(stmt{kind: stmtAssign, line: v.line, variable: strings.ToLower(v.text), value: val})
		if !(p.peek(0).is(",") && p.peek(1).kind == tokVar && p.peek(2).is("=")) {
			return
		}
		p.i++
	}
}

// assignedValue reads what a variable is set to: a constant, a variable, a
// job or schedule looked up by name (SELECT @id = job_id FROM sysjobs WHERE
// name = N'…', or SET @id = (SELECT …)), or an expression, which stays
// unknown.
func (p *parser) assignedValue(isSelect bool) value {
	if p.peek(0).is("(") && p.peek(1).is("SELECT") {
		p.i += 2
		return p.lookup()
	}
	start := p.i
	v, ok := p.value()
	switch {
	case ok && isSelect && p.peek(0).is("FROM"):
		p.i = start
		return p.lookup()
	case !ok || isOperator(p.peek(0)) || p.peek(0).is("("):
		p.skipExpr()
		return value{kind: valUnknown}
	}
	return v
}

// lookup reads the rest of a query that reads a job's or a schedule's id
// by name, up to the end of its statement, and returns that lookup, or an
// unknown value for any other query.
func (p *parser) lookup() value {
	var kind valueKind
	var name string
	found := false
	depth := 0
scan:
	for !p.done() {
		t := p.peek(0)
		if t.kind == tokGo || depth == 0 && (t.is(";") || t.startsStatement() && !t.is("SELECT")) {
			break
		}
		switch {
		case t.is("("):
			depth++
		case t.is(")"):
			if depth--; depth < 0 {
				p.i++ // the subquery's closing parenthesis
				break scan
			}
		case t.kind == tokIdent && !t.dquoted:
			switch strings.ToLower(t.text) {
			case "sysjobs", "sysjobs_view":
				kind = valJobLookup
			case "sysschedules":
				kind = valSchedLookup
			case "name", "schedule_name":
				if p.peek(1).is("=") && p.peek(2).kind == tokString {
					name, found = p.peek(2).text, true
				}
			}
		}
		p.i++
	}
	if kind == 0 || !found {
		return value{kind: valUnknown}
	}
	return value{kind: kind, text: name}
}

// skipExpr moves past an expression, to the comma, semicolon or statement
// that ends it.
func (p *parser) skipExpr() {
	depth := 0
	for !p.done() {
		t := p.peek(0)
		switch {
		case t.kind == tokGo:
			return
		case depth == 0 && (t.is(",") || t.is(";")):
			return
		case depth == 0 && t.startsStatement():
			return
		case t.is("("):
			depth++
		case t.is(")"):
			if depth == 0 {
				return
			}
			depth--
		}
		p.i++
	}
}

// isOperator reports whether t continues an expression.
func isOperator(t token) bool {
	if t.kind != tokPunct {
		return false
	}
	switch t.text {
	case "+", "-", "*", "/", "%", "&", "|", "^":
		return true
	}
	return false
}

// statementKeywordLower reports whether k (lower case) is a word that
// begins a T-SQL statement, so that a bare word after an EXEC is read as
// the next statement, not an argument.
func statementKeywordLower(k string) bool {
	switch k {
	case "alter",
		"backup",
		"begin",
		"break",
		"checkpoint",
		"close",
		"commit",
		"continue",
		"create",
		"dbcc",
		"deallocate",
		"declare",
		"delete",
		"deny",
		"drop",
		"else",
		"end",
		"exec",
		"execute",
		"fetch",
		"goto",
		"grant",
		"if",
		"insert",
		"kill",
		"merge",
		"open",
		"print",
		"raiserror",
		"restore",
		"return",
		"revert",
		"revoke",
		"rollback",
		"save",
		"select",
		"set",
		"throw",
		"truncate",
		"update",
		"use",
		"waitfor",
		"while",
		"with":
		return true
	}
	return false
}

func statementKeyword(word string) bool { return statementKeywordLower(strings.ToLower(word)) }

// startsStatement reports whether t is a keyword that begins a statement:
// a word, not a [bracketed] or "quoted" identifier.
func (t token) startsStatement() bool {
	return t.kind == tokIdent && !t.dquoted && !t.bracketed && statementKeyword(t.text)
}
