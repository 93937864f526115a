package main

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/musterhq/muster"
)

// -o yaml holds what -o json holds: the same keys and values, read back
// alike, whatever the strings look like to YAML.
func TestPrintYAMLHoldsTheJSON(t *testing.T) {
	v := map[string]any{
		"numbers_as_text": []string{"123", "0123", "1e3", "0x1F", "1_000", "08:00", "2024-01-15", "2024-01-15T02:30:00Z"},
		"words":           []string{"true", "no", "null", "~", "", " ", "-", "- a", "a: b", "#x", "*x", "&x", "!x", "%x", "@x", "`x"},
		"lines":           []string{"a\nb", "\nleading", "\tSELECT 1\n\tFROM t", "trailing \nspace", "a\r\nb", "ends\n", "\n\n", "tab\there"},
		"unicode":         "café ☃ \u2028 \u0085 \x7f",
		"number":          42,
		"float":           1.5,
		"empty_list":      []string{},
		"null":            nil,
		"nested":          []map[string]any{{"k": "v", "n": []int{1, 2}}},
	}
	var buf bytes.Buffer
	if err := printYAML(&buf, v); err != nil {
		t.Fatal(err)
	}
	var fromYAML, fromJSON any
	if err := yaml.Unmarshal(buf.Bytes(), &fromYAML); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	b, _ := json.Marshal(v)
	json.Unmarshal(b, &fromJSON)
	// YAML reads whole numbers as int, JSON as float64: compare through JSON.
	y, _ := json.Marshal(fromYAML)
	var fromYAMLviaJSON any
	json.Unmarshal(y, &fromYAMLviaJSON)
	if !reflect.DeepEqual(fromYAMLviaJSON, fromJSON) {
		t.Errorf("read back differently:\n%s", buf.String())
	}
	out := buf.String()
	if !strings.Contains(out, "number: 42\n") || !strings.Contains(out, "  - k: v\n") || !strings.Contains(out, "    a\n    b\n") {
		t.Errorf("not written as a person writes YAML:\n%s", out)
	}
	// Readers of YAML 1.1 take these unquoted for a boolean and a number.
	for _, quoted := range []string{`- "no"`, `- "08:00"`} {
		if !strings.Contains(out, quoted) {
			t.Errorf("%s is not quoted:\n%s", quoted, out)
		}
	}
}

func TestCheckOutput(t *testing.T) {
	for _, ok := range []string{"table", "json", "yaml"} {
		if err := checkOutput(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	if err := checkOutput("xml"); err == nil || err.Error() != `--output: "xml" is not table, json or yaml` {
		t.Errorf("xml: got %v", err)
	}
}

// A table's cells show control characters as escapes: a location or a
// message that a target reported cannot break the columns or act on the
// terminal.
func TestTableCellsEscapeControlCharacters(t *testing.T) {
	var buf bytes.Buffer
	tb := newTable(&buf, "NAME", "LOCATION")
	tb.row("web1", "rack 4\x1b[2J\x1b]8;;https://evil.example\x07")
	tb.row("web2", "a\tb\nc\u0085 café")
	// Bidirectional controls would show the text in another order than it
	// reads: "rack 4 \u202e1kcar" shows as "rack 4 rack1".
	tb.row("web3", "rack 4 \u202e1kcar\u202c \u2066x\u2069\u200f")
	if err := tb.flush(); err != nil {
		t.Fatal(err)
	}
	want := "NAME  LOCATION\n" +
		`web1  rack 4\x1b[2J\x1b]8;;https://evil.example\a` + "\n" +
		`web2  a\tb\nc\u0085 café` + "\n" +
		`web3  rack 4 \u202e1kcar\u202c \u2066x\u2069\u200f` + "\n"
	if got := buf.String(); got != want {
		t.Errorf("table:\n%q\nwant\n%q", got, want)
	}
}

// Step output printed to a terminal has its control characters, but line
// breaks and tabs, escaped: an escape sequence a step (or a target lying
// about its output) printed cannot retitle, clear or rewrite the operator's
// terminal. --raw, or a file or pipe, gets the output as it was written.
func TestStepOutputOnATerminal(t *testing.T) {
	out := "ok\tdone\n\x1b]0;owned\x07\x1b[2J\rhidden\n\u202eevil\u202c\n"
	terminal := &bytes.Buffer{}
	defer func(old func(io.Writer) bool) { writesToTerminal = old }(writesToTerminal)
	writesToTerminal = func(w io.Writer) bool { return w == terminal }

	for _, c := range []struct {
		name string
		w    *bytes.Buffer
		raw  bool
		want string
	}{
		{"a terminal", terminal, false, "ok\tdone\n\\x1b]0;owned\\a\\x1b[2J\\rhidden\n\\u202eevil\\u202c\n"},
		{"a terminal, --raw", terminal, true, out},
		{"a file", &bytes.Buffer{}, false, out},
	} {
		c.w.Reset()
		printRunsWithSteps(forTerminal(c.w, c.raw), []muster.Run{{RunID: "r1", Target: "web1", Status: muster.RunSucceeded,
			Steps: []muster.StepAttempt{{Name: "s", Attempt: 1, Status: muster.AttemptSucceeded, Output: out}}}})
		want := ""
		for _, line := range strings.Split(strings.TrimRight(c.want, "\n"), "\n") {
			want += "    | " + line + "\n"
		}
		if got := c.w.String(); !strings.Contains(got, want) {
			t.Errorf("%s: printed\n%q\nwant it to hold\n%q", c.name, got, want)
		}
	}
}

// Output reaches the terminal in pieces that may split a character: each
// piece's bytes are escaped or passed on as they are, never replaced, so the
// terminal puts the character together again.
func TestEscapingKeepsACharacterSplitAcrossWrites(t *testing.T) {
	var buf bytes.Buffer
	w := &escapingWriter{w: &buf}
	text := "caf\u00e9\x1b[2J na\u00efve\n"
	for i := 0; i < len(text); i++ { // one byte at a time
		if n, err := w.Write([]byte{text[i]}); n != 1 || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
	}
	if got, want := buf.String(), "caf\u00e9\\x1b[2J na\u00efve\n"; got != want {
		t.Errorf("printed %q, want %q", got, want)
	}
	buf.Reset()
	w.Write([]byte("a\xc3")) // the first byte of é, then the rest with a control
	w.Write([]byte("\xa9\x07"))
	if got, want := buf.String(), "a\u00e9\\a"; got != want {
		t.Errorf("printed %q, want %q", got, want)
	}
}

// A control split between two writes is escaped as it is whole: a C1
// control (CSI, U+009B) or a bidirectional control written a byte at a
// time does not reach the terminal as itself. A byte that begins no
// character is escaped too.
func TestEscapingAControlSplitAcrossWrites(t *testing.T) {
	var buf bytes.Buffer
	defer func(old func(io.Writer) bool) { writesToTerminal = old }(writesToTerminal)
	writesToTerminal = func(w io.Writer) bool { return w == &buf }
	w := forTerminal(&buf, false)
	for _, piece := range []string{"a\xc2", "\x9b2J b\xe2\x80", "\xae", "c \x9b\xff d\n"} {
		if n, err := w.Write([]byte(piece)); n != len(piece) || err != nil {
			t.Fatalf("Write(%q): %d, %v", piece, n, err)
		}
	}
	if got, want := buf.String(), `a\u009b2J b\u202ec \x9b\xff d`+"\n"; got != want {
		t.Errorf("printed %q, want %q", got, want)
	}
}

// A time to come is shown as a person counts it: a key made a moment ago
// with --ttl 90d expires in 90d, not in 89d because the listing came a
// second later.
func TestAgoOfATimeToCome(t *testing.T) {
	now := time.Date(2026, 12, 7, 19, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{90*24*time.Hour - 1500*time.Millisecond, "in 90d"},
		{-90*24*time.Hour + time.Second, "89d ago"},
		{-(5*time.Hour + 3*time.Minute), "5h3m ago"},
		{10 * time.Minute, "in 10m"},
		{-(3*time.Minute + 41*time.Second), "3m41s ago"},
		// Within the hour, to the second as a time past is.
		{20 * time.Second, "in 20s"},
		{3*time.Minute + 41*time.Second, "in 3m41s"},
	} {
		at := now.Add(tc.in)
		if got := ago(&at, now); got != tc.want {
			t.Errorf("ago(now + %s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A run or a step that ended within its first millisecond took "<1ms",
// not "0s"; one still running shows no duration yet.
func TestHistoryShowsSubMillisecondAndRunningDurations(t *testing.T) {
	var buf bytes.Buffer
	printRunsWithSteps(&buf, []muster.Run{
		{RunID: "r1", Target: "web1", Status: muster.RunSucceeded, DurationMS: 0,
			Steps: []muster.StepAttempt{{Name: "quick", Attempt: 1, Status: muster.AttemptSucceeded}}},
		{RunID: "r2", Target: "web1", Status: muster.RunRunning,
			Steps: []muster.StepAttempt{{Name: "slow", Attempt: 1, Status: muster.AttemptRunning}}},
		{RunID: "r3", Target: "web1", Status: muster.RunFailed, DurationMS: 1500,
			Steps: []muster.StepAttempt{{Name: "long", Attempt: 1, Status: muster.AttemptFailed, DurationMS: 1500}}},
	})
	got := buf.String()
	lines := 0
	for _, want := range []string{
		"run r1 on web1: succeeded in <1ms (",
		"  step quick (attempt 1): succeeded, ",
		"run r2 on web1: running (",
		"  step slow (attempt 1): running, ",
		"run r3 on web1: failed in 2s (",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("printed\n%s\nwant a line holding %q", got, want)
		}
		lines++
	}
	if lines != 5 {
		t.Fatalf("checked %d lines, want 5", lines)
	}
	if strings.Contains(got, " 0s") {
		t.Errorf("printed\n%s\nwhich shows a duration of 0s", got)
	}
}
