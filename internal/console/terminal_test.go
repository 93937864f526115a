package console

import (
	"html"
	"regexp"
	"strings"
	"testing"
)

// A step's output shows its colours and emphasis as classes, drops the
// escape sequences a page cannot follow, keeps their text, and shows the
// other control characters escaped; what is not a tag is escaped HTML.
func TestTerminalOutputAsHTML(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"plain", "a < b & c\n", "a &lt; b &amp; c\n"},
		{"colour and reset", "\x1b[31mFAIL\x1b[0m ok", `<span class="t-f1">FAIL</span> ok`},
		{"bold bright on blue, then default text", "\x1b[1;92;44mPASS\x1b[39m x\x1b[m.", `<span class="t-b t-f10 t-k4">PASS</span><span class="t-b t-k4"> x</span>.`},
		{"emphasis off one at a time", "\x1b[1;3;4ma\x1b[22mb\x1b[23mc\x1b[24md", `<span class="t-b t-i t-u">a</span><span class="t-i t-u">b</span><span class="t-u">c</span>d`},
		{"256 and 24-bit colours skipped, what follows them kept", "\x1b[38;5;196;1mx\x1b[48;2;1;2;3;4my", `<span class="t-b">x</span><span class="t-b t-u">y</span>`},
		{"a style with no text opens no span", "\x1b[32m\x1b[0mtext\x1b[31m", "text"},
		{"cursor moves and erasures left out", "50%\x1b[2K\x1b[1G100%\x1b[?25h", "50%100%"},
		{"a window title and a link: their text kept", "\x1b]0;title\x07\x1b]8;;https://example.com\x1b\\docs\x1b]8;;\x1b\\ here", "docs here"},
		{"other control characters escaped", "bell\a nul\x00 del\x7f\r\n\ttab", `bell\a nul\x00 del\x7f` + "\r\n\ttab"},
		{"bidirectional controls escaped, not followed", "ok \u202e1kcar\u202c \u2066x\u2069\u200f", `ok \u202e1kcar\u202c \u2066x\u2069\u200f`},
		{"a sequence cut at the end of the output", "done\x1b[3", "done"},
		{"a lone escape at the end", "done\x1b", "done"},
		{"an escape before a character of two bytes", "a\x1bé b", "a b"},
		{"a broken CSI keeps what follows", "a\x1b[1\nb", "a\nb"},
		{"markup inside a coloured span is escaped", "\x1b[33m<script>alert(1)</script>", `<span class="t-f3">&lt;script&gt;alert(1)&lt;/script&gt;</span>`},
	} {
		if got := string(terminalHTML(c.in)); got != c.want {
			t.Errorf("%s: %q\n got %q\nwant %q", c.name, c.in, got, c.want)
		}
	}
}

var tag = regexp.MustCompile(`<span class="[a-z0-9 -]+">|</span>`)

// Whatever the output holds, the HTML has no tag but balanced, unnested
// spans, and its text is the output's printable characters, in order.
func FuzzTerminalHTML(f *testing.F) {
	for _, s := range []string{"", "\x1b[31mred\x1b[0m", "\x1b]8;;u\x07t\x1b]8;;\x07", "\x1b[38;5;1", "a\x00b\x1b\x1b[[m", "\x1b[1;4;31;42mx\x1b[22;24;39;49my"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := string(terminalHTML(s))
		depth := 0
		for _, m := range tag.FindAllString(out, -1) {
			if m == "</span>" {
				depth--
			} else {
				depth++
			}
			if depth < 0 || depth > 1 {
				t.Fatalf("%q: spans nested or unbalanced: %q", s, out)
			}
		}
		if depth != 0 {
			t.Fatalf("%q: a span left open: %q", s, out)
		}
		text := html.UnescapeString(tag.ReplaceAllString(out, ""))
		if strings.ContainsAny(tag.ReplaceAllString(out, ""), "<>") {
			t.Fatalf("%q: markup outside the spans: %q", s, out)
		}
		if strings.ContainsRune(text, 0x1b) {
			t.Fatalf("%q: an escape character reached the page: %q", s, out)
		}
	})
}
