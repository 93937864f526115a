package jsonhttp

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Lexer reads one JSON value, held whole in memory, for a hand-written
// decoder of a hot request: encoding/json scans each list item twice and
// fills it through reflection, which cost the largest upload (a target's
// runs) a fifth of the master's CPU. A Lexer takes only the plain form of
// JSON, the form encoding/json writes; on anything else (a key in other
// case or unknown, a key given twice, a number in exponent form, invalid
// UTF-8, a time with an escape) it fails, and the caller decodes the value
// with encoding/json instead, which decides what it means or why it is
// refused. So a value the Lexer reads decodes as encoding/json decodes it.
type Lexer struct {
	data []byte
	pos  int
	bad  bool
}

// NewLexer returns a Lexer reading data.
func NewLexer(data []byte) *Lexer { return &Lexer{data: data} }

// OK reports whether everything read was in the plain form, and nothing
// but white space follows the value.
func (l *Lexer) OK() bool {
	l.space()
	return !l.bad && l.pos == len(l.data)
}

// Fail marks the value as not read.
func (l *Lexer) Fail() { l.bad = true }

func (l *Lexer) space() {
	for l.pos < len(l.data) {
		switch l.data[l.pos] {
		case ' ', '\t', '\n', '\r':
			l.pos++
		default:
			return
		}
	}
}

// peek returns the next byte that is not white space, or 0 at the end.
func (l *Lexer) peek() byte {
	l.space()
	if l.pos == len(l.data) {
		return 0
	}
	return l.data[l.pos]
}

// expect reads the byte c.
func (l *Lexer) expect(c byte) {
	if l.peek() != c {
		l.bad = true
		return
	}
	l.pos++
}

// Null reads null if it comes next, and reports whether it did.
func (l *Lexer) Null() bool {
	if l.bad || l.peek() != 'n' || len(l.data)-l.pos < 4 || string(l.data[l.pos:l.pos+4]) != "null" {
		return false
	}
	l.pos += 4
	return true
}

// Object reads an object, calling field for each key, which must read the
// key's value (or call Fail). A key is taken only as written without
// escapes; key is valid during the call.
func (l *Lexer) Object(field func(key []byte)) {
	l.expect('{')
	if l.peek() == '}' {
		l.pos++
		return
	}
	for !l.bad {
		key, ok := l.raw()
		if !ok {
			l.bad = true
			return
		}
		l.expect(':')
		if l.bad {
			return
		}
		field(key)
		switch l.peek() {
		case ',':
			l.pos++
		case '}':
			l.pos++
			return
		default:
			l.bad = true
		}
	}
}

// Array reads an array, calling elem for each element, which must read
// it.
func (l *Lexer) Array(elem func()) {
	l.expect('[')
	if l.peek() == ']' {
		l.pos++
		return
	}
	for !l.bad {
		elem()
		switch l.peek() {
		case ',':
			l.pos++
		case ']':
			l.pos++
			return
		default:
			l.bad = true
		}
	}
}

// raw reads a string without escapes and returns its bytes; ok is false
// when it has escapes (and nothing was read).
func (l *Lexer) raw() ([]byte, bool) {
	if l.peek() != '"' {
		return nil, false
	}
	for i := l.pos + 1; i < len(l.data); i++ {
		switch c := l.data[i]; {
		case c == '"':
			s := l.data[l.pos+1 : i]
			l.pos = i + 1
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// String reads a string, unescaping it. Invalid UTF-8, which
// encoding/json replaces, fails it.
func (l *Lexer) String() string {
	if l.bad || l.peek() != '"' {
		l.bad = true
		return ""
	}
	start := l.pos + 1
	i := start
	for ; i < len(l.data); i++ {
		c := l.data[i]
		if c == '"' || c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
	}
	if i < len(l.data) && l.data[i] == '"' { // plain ASCII: the common case
		l.pos = i + 1
		return string(l.data[start:i])
	}
	// The string ends at its first quote after an even number of
	// backslashes; unescaped, it is no longer than it is here.
	end := closingQuote(l.data, i)
	if end < 0 {
		l.bad = true
		return ""
	}
	var b strings.Builder
	b.Grow(end - start)
	b.Write(l.data[start:i])
	for i < end {
		c := l.data[i]
		switch {
		case c < 0x20:
			l.bad = true
			return ""
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(l.data[i:end])
			if r == utf8.RuneError && size == 1 {
				l.bad = true
				return ""
			}
			b.Write(l.data[i : i+size])
			i += size
		case c != '\\':
			j := i + 1
			for j < end && l.data[j] >= 0x20 && l.data[j] < utf8.RuneSelf && l.data[j] != '\\' {
				j++
			}
			b.Write(l.data[i:j])
			i = j
		default:
			switch e := l.data[i+1]; e {
			case '"', '\\', '/':
				b.WriteByte(e)
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				r, ok := hex4(l.data[i+2 : end])
				if !ok || (r >= 0xd800 && r < 0xe000) { // surrogates: left to encoding/json
					l.bad = true
					return ""
				}
				b.WriteRune(r)
				i += 4
			default:
				l.bad = true
				return ""
			}
			i += 2
		}
	}
	l.pos = end + 1
	return b.String()
}

// Names keeps one copy of each short string that repeats through a body
// (a job's name, a target's, a status), for the Lexers of its items to
// share: a list of 500 runs of one job then holds one string of its name,
// not 500. It keeps at most maxNames.
type Names struct{ m map[string]string }

// maxNames bounds the strings a Names keeps, and maxNameLen their length.
const (
	maxNames   = 64
	maxNameLen = 128
)

// Name reads a string as String does, returning the copy names keeps of
// it when there is one.
func (l *Lexer) Name(names *Names) string {
	if l.bad {
		return ""
	}
	start := l.pos
	b, ok := l.raw()
	if !ok {
		l.pos = start
		return l.String()
	}
	if s, ok := names.m[string(b)]; ok {
		return s
	}
	// A plain string with bytes outside ASCII: checked as String checks it.
	l.pos = start
	s := l.String()
	if !l.bad && len(s) <= maxNameLen && len(names.m) < maxNames {
		if names.m == nil {
			// Grown as names come: an upload of one run (a fan-out's) has
			// five or six, and room made for maxNames at once was most of
			// what its decoding allocated.
			names.m = map[string]string{}
		}
		names.m[s] = s
	}
	return s
}

// hex4 reads four hex digits at the start of p.
func hex4(p []byte) (rune, bool) {
	if len(p) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// Int reads an integer of bits bits: digits, perhaps after a minus sign,
// without a leading zero, a fraction or an exponent, within range.
func (l *Lexer) Int(bits int) int64 {
	if l.bad {
		return 0
	}
	l.space()
	start := l.pos
	i := start
	if i < len(l.data) && l.data[i] == '-' {
		i++
	}
	digits := i
	for i < len(l.data) && l.data[i] >= '0' && l.data[i] <= '9' {
		i++
	}
	if i == digits || (l.data[digits] == '0' && i-digits > 1) {
		l.bad = true
		return 0
	}
	if i < len(l.data) {
		switch l.data[i] {
		case '.', 'e', 'E':
			l.bad = true
			return 0
		}
	}
	n, err := strconv.ParseInt(string(l.data[start:i]), 10, bits)
	if err != nil {
		l.bad = true
		return 0
	}
	l.pos = i
	return n
}

// Time reads a time as time.Time's UnmarshalJSON does: an RFC 3339 string.
func (l *Lexer) Time() time.Time {
	var t time.Time
	if l.bad || l.peek() != '"' {
		l.bad = true
		return t
	}
	start := l.pos
	if _, ok := l.raw(); !ok {
		l.bad = true
		return t
	}
	if err := t.UnmarshalJSON(l.data[start:l.pos]); err != nil {
		l.bad = true
	}
	return t
}
