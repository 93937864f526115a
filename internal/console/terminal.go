package console

import (
	"html"
	"html/template"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// terminalHTML renders a step's output, written as for a terminal, as the
// HTML of a <pre>: the colours and emphasis of its SGR sequences (ESC [ …
// m: bold, dim, italic, underline, the 16 colours of text and background)
// become spans of the classes t-b, t-d, t-i, t-u, t-fN and t-kN
// (console.css); its other escape sequences (cursor moves, erasures, 256
// and 24-bit colours, window titles, links) are left out, their text
// kept; and its other control characters but line breaks, tabs and
// carriage returns are shown escaped, \x07, as `muster job logs` shows
// them on a terminal. Spans are never nested, so the HTML is well formed
// whatever the output holds, a sequence cut at its end included. The
// output as it was stored is in the API and `muster job logs --raw`.
func terminalHTML(s string) template.HTML {
	if !strings.ContainsFunc(s, escaped) {
		return template.HTML(html.EscapeString(s))
	}
	var b strings.Builder
	var cur, open sgr // the style of the text, and of the span open
	text := func(t string) {
		if t == "" {
			return
		}
		if cur != open {
			if open != (sgr{}) {
				b.WriteString("</span>")
			}
			if cur != (sgr{}) {
				b.WriteString(`<span class="` + cur.classes() + `">`)
			}
			open = cur
		}
		b.WriteString(html.EscapeString(t))
	}
	for s != "" {
		i := strings.IndexFunc(s, escaped)
		if i < 0 {
			text(s)
			break
		}
		text(s[:i])
		s = s[i:]
		if s[0] != 0x1b {
			r, n := utf8.DecodeRuneInString(s)
			q := strconv.QuoteRune(r)
			text(q[1 : len(q)-1])
			s = s[n:]
			continue
		}
		var params string
		var final byte
		params, final, s = escapeSequence(s)
		if final == 'm' {
			cur.apply(params)
		}
	}
	if open != (sgr{}) {
		b.WriteString("</span>")
	}
	return template.HTML(b.String())
}

// escaped reports whether r is shown other than as itself: the control
// characters but line breaks, tabs and carriage returns, and the
// bidirectional controls, which would show the text in another order than
// it reads.
func escaped(r rune) bool {
	return r != '\n' && r != '\t' && r != '\r' && (unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r))
}

// plainText writes what a target reported, or what a job runs, for a
// page: its characters that escaped reports (controls, bidirectional
// controls) as their Go escapes, \u202e, as the CLI shows them, so that
// no text is shown in another order than it is written.
func plainText(s string) string {
	if !strings.ContainsFunc(s, escaped) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if escaped(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// escapeSequence splits the escape sequence at the start of s (at its
// ESC) from the rest: a CSI sequence (ESC [ parameters final) gives its
// parameters and final byte; any other sequence, a string sequence (OSC,
// DCS, …, ended by BEL or ESC \) or ESC and one character, gives no
// final. A sequence cut short takes the rest of s.
func escapeSequence(s string) (params string, final byte, rest string) {
	if len(s) < 2 {
		return "", 0, ""
	}
	switch s[1] {
	case '[':
		for i := 2; i < len(s); i++ {
			if c := s[i]; c >= 0x40 && c <= 0x7e {
				return s[2:i], c, s[i+1:]
			} else if c < 0x20 || c > 0x3f {
				return "", 0, s[i:] // not a CSI sequence after all
			}
		}
		return "", 0, ""
	case ']', 'P', 'X', '^', '_':
		for i := 2; i < len(s); i++ {
			switch {
			case s[i] == 0x07:
				return "", 0, s[i+1:]
			case s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\':
				return "", 0, s[i+2:]
			}
		}
		return "", 0, ""
	}
	_, n := utf8.DecodeRuneInString(s[1:])
	return "", 0, s[1+n:]
}

// sgr is the style the SGR sequences so far set: colours are 0 for the
// default, else 1 + the colour's number (0–15).
type sgr struct {
	bold, dim, italic, underline bool
	fg, bg                       int8
}

// apply changes the style by the parameters of one SGR sequence.
func (g *sgr) apply(params string) {
	if params == "" {
		*g = sgr{}
		return
	}
	ps := strings.Split(params, ";")
	for i := 0; i < len(ps); i++ {
		n, err := strconv.Atoi(ps[i])
		if err != nil {
			continue // a sub-parameter form (4:3), not a style kept
		}
		switch {
		case n == 0:
			*g = sgr{}
		case n == 1:
			g.bold = true
		case n == 2:
			g.dim = true
		case n == 3:
			g.italic = true
		case n == 4:
			g.underline = true
		case n == 22:
			g.bold, g.dim = false, false
		case n == 23:
			g.italic = false
		case n == 24:
			g.underline = false
		case n >= 30 && n <= 37:
			g.fg = int8(n-30) + 1
		case n == 39:
			g.fg = 0
		case n >= 40 && n <= 47:
			g.bg = int8(n-40) + 1
		case n == 49:
			g.bg = 0
		case n >= 90 && n <= 97:
			g.fg = int8(n-90) + 9
		case n >= 100 && n <= 107:
			g.bg = int8(n-100) + 9
		case n == 38 || n == 48:
			// 256 colours (5;N) or 24-bit (2;R;G;B): the colour is not
			// kept, its parameters are skipped.
			if i+1 < len(ps) && ps[i+1] == "5" {
				i += 2
			} else if i+1 < len(ps) && ps[i+1] == "2" {
				i += 4
			}
		}
	}
}

// classes names the style's classes.
func (g sgr) classes() string {
	var c []string
	for _, f := range []struct {
		on    bool
		class string
	}{{g.bold, "t-b"}, {g.dim, "t-d"}, {g.italic, "t-i"}, {g.underline, "t-u"}} {
		if f.on {
			c = append(c, f.class)
		}
	}
	if g.fg > 0 {
		c = append(c, "t-f"+strconv.Itoa(int(g.fg-1)))
	}
	if g.bg > 0 {
		c = append(c, "t-k"+strconv.Itoa(int(g.bg-1)))
	}
	return strings.Join(c, " ")
}
