package jobfile

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// yaml.v3 reports a syntax error at the line where the enclosing block
// began (counted from 0), not where the rule was broken: a mis-indented key
// on line 4 comes back as "line 1: did not find expected '-' indicator".
// The parser stops at the first broken rule, so the first prefix of the
// file (in whole lines) that fails with the very same message ends at the
// line that broke it. syntaxProblem finds that line by bisection, then says
// in words what is wrong with it.

// maxLocateSize bounds the files whose syntax errors are located by
// bisection (a parse per step); larger files get yaml's own line.
const maxLocateSize = 1 << 20

// yamlLine reads yaml's "yaml: line N: " prefix off msg: the line number
// and the message after it. ok is false for a message without one. (A
// function, not a regexp compiled at startup: the target daemon, which is
// this binary too, never reads a job file.)
func yamlLine(msg string) (n int, rest string, ok bool) {
	s, found := strings.CutPrefix(msg, "yaml: line ")
	if !found {
		return 0, msg, false
	}
	digits, rest, found := strings.Cut(s, ": ")
	if !found || digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, msg, false
	}
	n, err := strconv.Atoi(digits)
	if err != nil {
		return 0, msg, false
	}
	return n, rest, true
}

// syntaxProblem turns a parse error of src into a problem at the line that
// caused it.
func syntaxProblem(src []byte, err error) problem {
	msg := err.Error()
	lines := bytes.SplitAfter(src, []byte("\n"))
	n := len(lines)
	if len(src) <= maxLocateSize {
		lo, hi := 1, n
		for lo < hi {
			mid := (lo + hi) / 2
			if sameError(bytes.Join(lines[:mid], nil), msg) {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		n = lo
	} else if line, _, ok := yamlLine(msg); ok {
		n = line
	}
	n = min(max(n, 1), len(lines))
	rest := strings.TrimPrefix(msg, "yaml: ")
	if _, r, ok := yamlLine(rest); ok {
		rest = r
	}
	return explainSyntax(lines, n, rest)
}

// sameError reports whether parsing src fails with msg.
func sameError(src []byte, msg string) bool {
	var n yaml.Node
	err := yaml.Unmarshal(src, &n)
	return err != nil && err.Error() == msg
}

// explainSyntax says what yaml's message means for line n (1-based) of the
// file, for the common mistakes, and repeats yaml's words otherwise.
func explainSyntax(lines [][]byte, n int, yamlMsg string) problem {
	text := strings.TrimRight(string(lines[n-1]), "\r\n")
	indent := len(text) - len(strings.TrimLeft(text, " "))
	p := problem{line: n, col: indent + 1}
	above, aboveLine := previousLine(lines, n)
	aboveIndent := keyIndent(above)
	switch {
	case strings.Contains(yamlMsg, "tab character"):
		p.col = strings.IndexByte(text, '\t') + 1
		p.msg = "a tab indents this line; YAML is indented with spaces only"
	case strings.Contains(yamlMsg, "did not find expected '-' indicator"),
		strings.Contains(yamlMsg, "did not find expected key"),
		strings.Contains(yamlMsg, "block sequence entries are not allowed"):
		p.msg = badIndent(text, indent, above, aboveLine, aboveIndent)
	case strings.Contains(yamlMsg, "mapping values are not allowed"):
		if aboveLine > 0 && indent > aboveIndent && !strings.HasSuffix(strings.TrimSpace(above), ":") {
			p.msg = badIndent(text, indent, above, aboveLine, aboveIndent)
			break
		}
		if i := strings.Index(text, ": "); i >= 0 {
			if j := strings.Index(text[i+2:], ": "); j >= 0 {
				p.col = i + 2 + j + 1
			}
		}
		p.msg = `a value on this line holds ": ", which YAML reads as another key; put the value in quotes, e.g. shell: "echo a: b"`
	case strings.Contains(yamlMsg, "did not find expected ',' or ']'"):
		p.col = strings.LastIndexByte(text, '[') + 1
		p.msg = `a list opened with "[" is not closed with "]" on this line`
	case strings.Contains(yamlMsg, "did not find expected ',' or '}'"):
		p.col = strings.LastIndexByte(text, '{') + 1
		p.msg = `a mapping opened with "{" is not closed with "}" on this line`
	case strings.Contains(yamlMsg, "unexpected end of stream"):
		if i := strings.IndexAny(text, `"'`); i >= 0 {
			p.col = i + 1
			p.msg = fmt.Sprintf("the value quoted with %c here is never closed", text[i])
			break
		}
		p.msg = "the file ends inside a quoted value or a [ ] or { } that is never closed"
	case strings.Contains(yamlMsg, "cannot start any token"):
		p.msg = "a value starts with a character YAML reserves (such as @, ` or %); put the value in quotes"
	case strings.Contains(yamlMsg, "could not find expected ':'"):
		p.msg = `this line has no "key:"; a mapping's lines are "key: value", and a value that goes on to a new line must be indented more than its key or quoted`
	case strings.HasPrefix(yamlMsg, "unknown anchor"):
		p.msg = yamlMsg + "; an alias *NAME refers to an anchor &NAME defined earlier in the file"
	default:
		p.msg = "YAML syntax: " + yamlMsg
	}
	return p
}

// badIndent explains an indentation mistake on a line, against the line
// above it.
func badIndent(text string, indent int, above string, aboveLine, aboveIndent int) string {
	what := strings.TrimSpace(text)
	if k, _, ok := strings.Cut(what, ":"); ok && !strings.ContainsAny(k, " \"'") {
		what = k + ":"
	}
	if aboveLine == 0 {
		return fmt.Sprintf("bad indentation of %q (%d spaces)", what, indent)
	}
	return fmt.Sprintf("bad indentation of %q: it is indented %d spaces, and %q on line %d above it %d; the keys of one mapping line up, and a list's items each start with \"- \" at the same indentation",
		what, indent, strings.TrimSpace(above), aboveLine, aboveIndent)
}

// keyIndent is where the first key of a line starts: its indentation, past
// any "- " that opens list items ("      - name: s" has its key at 8).
func keyIndent(line string) int {
	rest := strings.TrimLeft(line, " ")
	for strings.HasPrefix(rest, "- ") {
		rest = strings.TrimLeft(rest[2:], " ")
	}
	return len(line) - len(rest)
}

// previousLine returns the last line before line n (1-based) that holds
// more than a comment, and its number (0 if none).
func previousLine(lines [][]byte, n int) (string, int) {
	for i := n - 2; i >= 0; i-- {
		s := strings.TrimRight(string(lines[i]), "\r\n")
		t := strings.TrimSpace(s)
		if t != "" && !strings.HasPrefix(t, "#") {
			return s, i + 1
		}
	}
	return "", 0
}
