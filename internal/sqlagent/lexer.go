package sqlagent

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// tokenKind says what a token is.
type tokenKind int

const (
	tokIdent  tokenKind = iota // a word, a [bracketed] or a "quoted" identifier
	tokVar                     // @name or @@name
	tokString                  // 'text' or N'text', unescaped
	tokNumber                  // 42, 1.5, 0x1F
	tokPunct                   // ( ) , ; = . + - and the other operators
	tokGo                      // a GO line: the end of a batch
)

// token is one lexical element of a script. For tokIdent, text is the
// identifier without its brackets or quotes; for tokString, the string's
// value.
type token struct {
	kind tokenKind
	text string
	// dquoted marks a "double-quoted" identifier, which a parameter value
	// reads as a string; bracketed, a [bracketed] one, which is never a
	// keyword.
	dquoted   bool
	bracketed bool
	line      int
}

// is reports whether t is the keyword or punctuation s (keywords in any
// case; a bracketed [EXEC] is an identifier, not the keyword).
func (t token) is(s string) bool {
	switch t.kind {
	case tokIdent:
		return !t.dquoted && !t.bracketed && strings.EqualFold(t.text, s)
	case tokPunct:
		return t.text == s
	}
	return false
}

// syntaxError is what a script leaves open: a string, a comment or a
// bracketed identifier, and the line it opens on.
type syntaxError struct {
	line int
	msg  string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// lexer splits a script into tokens, a few at a time, as the parser asks
// for them. Comments and white space are dropped; a line holding only GO
// (and optionally a count and a comment) ends a batch, as in sqlcmd. Errors
// name the line of what is left open: a string, a comment or a bracketed
// identifier.
type lexer struct {
	src  string
	pos  int
	line int
	// lineStart is true while only white space (or comments) has been seen
	// since the last line break: where GO may end a batch.
	lineStart bool
	toks      []token
}

func (l *lexer) emit(kind tokenKind, text string, line int) {
	l.toks = append(l.toks, token{kind: kind, text: text, line: line})
	l.lineStart = false
}

// next reads one token (appending it to toks), or white space, or a
// comment.
func (l *lexer) next() error {
	c := l.src[l.pos]
	start, line := l.pos, l.line
	switch {
	case c == '\n':
		l.pos++
		l.line++
		l.lineStart = true
	case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
		l.pos++
	case strings.HasPrefix(l.src[l.pos:], "--"):
		l.skipLine()
	case strings.HasPrefix(l.src[l.pos:], "/*"):
		return l.blockComment()
	case c == '\'':
		return l.str(l.pos)
	case (c == 'N' || c == 'n') && l.pos+1 < len(l.src) && l.src[l.pos+1] == '\'':
		return l.str(l.pos + 1)
	case c == '[':
		return l.delimited(']', false)
	case c == '"':
		return l.delimited('"', true)
	case c == '@':
		l.pos++
		if l.pos < len(l.src) && l.src[l.pos] == '@' {
			l.pos++
		}
		l.word()
		l.emit(tokVar, l.src[start:l.pos], line)
	case c >= '0' && c <= '9' || c == '.' && l.pos+1 < len(l.src) && isDigit(l.src[l.pos+1]):
		l.number()
		l.emit(tokNumber, l.src[start:l.pos], line)
	case isWordStart(l.src[l.pos:]):
		l.word()
		w := l.src[start:l.pos]
		if l.lineStart && strings.EqualFold(w, "GO") && l.restIsGoLine() {
			l.emit(tokGo, w, line)
			l.skipLine()
			return nil
		}
		l.emit(tokIdent, w, line)
	default:
		_, n := utf8.DecodeRuneInString(l.src[l.pos:])
		l.pos += n
		if n == 1 && l.pos < len(l.src) {
			switch two := l.src[start : l.pos+1]; two {
			case "<>", "<=", ">=", "!=", "!<", "!>":
				l.pos++
			}
		}
		l.emit(tokPunct, l.src[start:l.pos], line)
	}
	return nil
}

// skipLine moves to the line break ending the current line.
func (l *lexer) skipLine() {
	if i := strings.IndexByte(l.src[l.pos:], '\n'); i >= 0 {
		l.pos += i
	} else {
		l.pos = len(l.src)
	}
}

// blockComment skips a /* comment */, which nests in T-SQL.
func (l *lexer) blockComment() error {
	line := l.line
	depth := 0
	for l.pos < len(l.src) {
		switch {
		case strings.HasPrefix(l.src[l.pos:], "/*"):
			depth++
			l.pos += 2
		case strings.HasPrefix(l.src[l.pos:], "*/"):
			depth--
			l.pos += 2
			if depth == 0 {
				return nil
			}
		default:
			if l.src[l.pos] == '\n' {
				l.line++
			}
			l.pos++
		}
	}
	return &syntaxError{line, "the /* comment is never closed with */"}
}

// str reads a string whose opening quote is at q; a doubled quote stands
// for one quote.
func (l *lexer) str(q int) error {
	line := l.line
	var b strings.Builder
	i := q + 1
	for {
		j := strings.IndexByte(l.src[i:], '\'')
		if j < 0 {
			return &syntaxError{line, "the string starting here is never closed with '"}
		}
		b.WriteString(l.src[i : i+j])
		i += j + 1
		if i < len(l.src) && l.src[i] == '\'' {
			b.WriteByte('\'')
			i++
			continue
		}
		break
	}
	s := b.String()
	l.line += strings.Count(l.src[q:i], "\n")
	l.pos = i
	l.toks = append(l.toks, token{kind: tokString, text: s, line: line})
	l.lineStart = false
	return nil
}

// delimited reads a [bracketed] or "quoted" identifier; a doubled closing
// character stands for one.
func (l *lexer) delimited(end byte, dquoted bool) error {
	line := l.line
	var b strings.Builder
	i := l.pos + 1
	for {
		j := strings.IndexByte(l.src[i:], end)
		if j < 0 {
			return &syntaxError{line, fmt.Sprintf("the identifier starting here is never closed with %c", end)}
		}
		b.WriteString(l.src[i : i+j])
		i += j + 1
		if i < len(l.src) && l.src[i] == end {
			b.WriteByte(end)
			i++
			continue
		}
		break
	}
	l.line += strings.Count(l.src[l.pos:i], "\n")
	l.pos = i
	l.toks = append(l.toks, token{kind: tokIdent, text: b.String(), dquoted: dquoted, bracketed: !dquoted, line: line})
	l.lineStart = false
	return nil
}

// number reads a decimal or 0x hexadecimal literal.
func (l *lexer) number() {
	if strings.HasPrefix(l.src[l.pos:], "0x") || strings.HasPrefix(l.src[l.pos:], "0X") {
		l.pos += 2
		for l.pos < len(l.src) && isHex(l.src[l.pos]) {
			l.pos++
		}
		return
	}
	for l.pos < len(l.src) && (isDigit(l.src[l.pos]) || l.src[l.pos] == '.') {
		l.pos++
	}
	if l.pos < len(l.src) && (l.src[l.pos] == 'e' || l.src[l.pos] == 'E') {
		l.pos++
		if l.pos < len(l.src) && (l.src[l.pos] == '+' || l.src[l.pos] == '-') {
			l.pos++
		}
		for l.pos < len(l.src) && isDigit(l.src[l.pos]) {
			l.pos++
		}
	}
}

// word reads the rest of an identifier.
func (l *lexer) word() {
	for l.pos < len(l.src) {
		r, n := utf8.DecodeRuneInString(l.src[l.pos:])
		if !(r == '_' || r == '@' || r == '#' || r == '$' || unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return
		}
		l.pos += n
	}
}

// restIsGoLine reports whether the rest of the line after a GO is empty, a
// repeat count, or a comment: sqlcmd's batch separator.
func (l *lexer) restIsGoLine() bool {
	rest := l.src[l.pos:]
	if i := strings.IndexByte(rest, '\n'); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.Index(rest, "--"); i >= 0 {
		rest = rest[:i]
	}
	rest = strings.TrimSpace(rest)
	for i := 0; i < len(rest); i++ {
		if !isDigit(rest[i]) {
			return false
		}
	}
	return true
}

func isWordStart(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return r == '_' || r == '#' || unicode.IsLetter(r)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
