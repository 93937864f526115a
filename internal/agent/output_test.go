package agent

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// collect hands out an output the way a step's saver does: a chunk after
// each write, then the rest at the end.
func collect(o *output, writes []string) string {
	var b strings.Builder
	for _, w := range writes {
		o.Write([]byte(w))
		b.WriteString(o.take())
	}
	b.WriteString(o.final())
	return b.String()
}

func TestOutputKeepsHeadAndTail(t *testing.T) {
	const note = "\n[muster: 16 bytes of output dropped here (output_limit 10B); the first and last 5 bytes are kept]\n"
	for _, tc := range []struct {
		name   string
		writes []string
		want   string
	}{
		{"under the limit", []string{"hello\n"}, "hello\n"},
		{"exactly the limit", []string{"0123456789"}, "0123456789"},
		{"one big write", []string{"abcdefghijklmnopqrstuvwxyz"}, "abcde" + note + "vwxyz"},
		{"many small writes", strings.Split("abcdefghijklmnopqrstuvwxyz", ""), "abcde" + note + "vwxyz"},
		{"mixed", []string{"abc", "defgh", "ijklmnopq", "rs", "tuvwxyz"}, "abcde" + note + "vwxyz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := collect(newOutput(10, "output_limit 10B"), tc.writes); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// What is handed out while the step runs is the head, once; the tail waits
// for the end.
func TestOutputHandsOutEachByteOnce(t *testing.T) {
	o := newOutput(10, "output_limit 10B")
	o.Write([]byte("abc"))
	if got := o.take(); got != "abc" {
		t.Fatalf("first take %q", got)
	}
	if got := o.take(); got != "" {
		t.Fatalf("a take with nothing new written: %q", got)
	}
	o.Write([]byte("defghij"))
	if got := o.take(); got != "de" {
		t.Fatalf("second take %q, want the rest of the head", got)
	}
	if got := o.final(); got != "fghij" {
		t.Errorf("final %q, want the tail, which follows the head (nothing dropped)", got)
	}
}

// A character is never cut: not between chunks, nor where the tail begins.
func TestOutputKeepsCharactersWhole(t *testing.T) {
	o := newOutput(1<<10, "output_limit 1KiB")
	e := []byte("é") // two bytes
	o.Write(e[:1])
	if got := o.take(); got != "" {
		t.Fatalf("half a character was handed out: %q", got)
	}
	o.Write(e[1:])
	if got := o.take(); got != "é" {
		t.Fatalf("the whole character: %q", got)
	}
	// A tail that the ring cut inside a character begins after it.
	o = newOutput(8, "output_limit 8B")
	got := collect(o, []string{"abcd" + strings.Repeat("é", 10)})
	if !utf8.ValidString(got) || !strings.HasPrefix(got, "abcd\n[muster:") || !strings.HasSuffix(got, "éé") {
		t.Errorf("got %q", got)
	}
	// Invalid bytes become U+FFFD.
	if got := collect(newOutput(64, "x"), []string{"a\xffb"}); got != "a\uFFFDb" {
		t.Errorf("invalid UTF-8 came out as %q", got)
	}
}

func TestOutputMemoryIsBounded(t *testing.T) {
	o := newOutput(1<<10, "output_limit 1KiB")
	chunk := []byte(strings.Repeat("x", 4096))
	for range 10000 {
		o.Write(chunk)
	}
	if cap(o.head) > 1<<10 || cap(o.tail) > 1<<10 {
		t.Errorf("head %d and tail %d bytes kept for a 1 KiB limit", cap(o.head), cap(o.tail))
	}
	if o.total != 4096*10000 {
		t.Errorf("written %d", o.total)
	}
}

// A run that has used up run_output_limit keeps only the line saying so.
func TestOutputWithNothingLeft(t *testing.T) {
	got := collect(newOutput(0, "run_output_limit 1KiB, of which the run had 0B left"), []string{"hello\n"})
	if want := "[muster: 6 bytes of output dropped: run_output_limit 1KiB, of which the run had 0B left]\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// What is kept of an attempt is within its limit, and valid UTF-8,
// whatever the step writes: an invalid byte that becomes U+FFFD (three
// bytes) counts as the three it takes, in the head, the tail and the
// bytes said to be dropped.
func TestOutputStaysWithinItsLimitWhateverItsBytes(t *testing.T) {
	note := regexp.MustCompile(`\n\[muster: (\d+) bytes of output dropped here \(output_limit 64B\); the first and last 32 bytes are kept\]\n`)
	for _, tc := range []struct {
		name   string
		writes []string
	}{
		{"invalid bytes between letters", []string{strings.Repeat("\xffa", 32)}},
		{"in small writes", strings.SplitAfter(strings.Repeat("\xffa", 200), "a")},
		{"a character cut between writes, then invalid", []string{"abc\xe2", "\x82", "\xac", strings.Repeat("\xfe-", 100)}},
		{"a character never finished", []string{strings.Repeat("é", 40), "\xe2\x82"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := collect(newOutput(64, "output_limit 64B"), tc.writes)
			if !utf8.ValidString(got) {
				t.Errorf("%q is not valid UTF-8", got)
			}
			kept := note.ReplaceAllString(got, "")
			if len(kept) > 64 {
				t.Errorf("%d bytes kept of a 64-byte limit: %q", len(kept), got)
			}
			var raw int
			for _, w := range tc.writes {
				raw += len(w)
			}
			if m := note.FindStringSubmatch(got); m != nil {
				dropped, _ := strconv.Atoi(m[1])
				if dropped+len(kept) < raw {
					t.Errorf("%d bytes said dropped and %d kept, of %d written", dropped, len(kept), raw)
				}
			}
		})
	}
	// Valid text is kept as written.
	if got := collect(newOutput(64, "x"), []string{"abc\xe2", "\x82", "\xac!"}); got != "abc€!" {
		t.Errorf("a character written in three parts came out as %q", got)
	}
	if got := collect(newOutput(64, "x"), []string{"a\xff\xfe\xfdb", "\xffc"}); got != "a\uFFFDb\uFFFDc" {
		t.Errorf("runs of invalid bytes came out as %q, want each as one U+FFFD", got)
	}
}
