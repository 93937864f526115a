package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/musterhq/muster"
)

// Output formats: -o table (for people), json or yaml (for programs and
// files). YAML holds the same fields as JSON.
const (
	outputTable = "table"
	outputJSON  = "json"
	outputYAML  = "yaml"
)

// outputHelp is the help of every -o flag that prints a table.
const outputHelp = "output format: table, json or yaml"

// checkOutput checks the value of -o.
func checkOutput(format string) error {
	switch format {
	case outputTable, outputJSON, outputYAML:
		return nil
	}
	return fmt.Errorf("--output: %q is not table, json or yaml", format)
}

// printAs writes v as JSON or YAML, or with table for -o table.
func printAs(w io.Writer, format string, v any, table func(io.Writer) error) error {
	switch format {
	case outputJSON:
		return printJSON(w, v)
	case outputYAML:
		return printYAML(w, v)
	}
	return table(w)
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printYAML writes v as YAML with the keys and values of its JSON, in the
// same order: the API's names, whatever YAML tags the Go types carry.
func printYAML(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	n, err := yamlNode(dec)
	if err != nil {
		return err
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return err
	}
	return enc.Close()
}

// yamlNode builds the YAML node of the next JSON value of dec, keeping the
// order of its keys.
func yamlNode(dec *json.Decoder) (*yaml.Node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		if t == '{' {
			n.Kind, n.Tag = yaml.MappingNode, "!!map"
		}
		for dec.More() {
			if n.Kind == yaml.MappingNode {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, yamlString(k.(string)))
			}
			c, err := yamlNode(dec)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, c)
		}
		if len(n.Content) == 0 {
			n.Style = yaml.FlowStyle // [] and {}
		}
		_, err := dec.Token() // the closing delimiter
		return n, err
	case string:
		return yamlString(t), nil
	case json.Number:
		tag := "!!int"
		if strings.ContainsAny(t.String(), ".eE") {
			tag = "!!float"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: t.String()}, nil
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(t)}, nil
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
}

// yamlString is a string's node, quoted as gopkg.in/yaml.v3 quotes a Go
// string (so that YAML 1.1 readers do not take no or 08:00 for a boolean or
// a number), and double-quoted where yaml.v3 would write a form it does not
// read back the same (a first line starting with white space or a line
// break, tabs, carriage returns).
func yamlString(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	switch b, _ := yaml.Marshal(s); {
	case strings.ContainsAny(s, "\t\r") || strings.HasPrefix(s, "\n") || strings.HasPrefix(s, " "):
		n.Style = yaml.DoubleQuotedStyle
	case bytes.HasPrefix(b, []byte(`"`)):
		n.Style = yaml.DoubleQuotedStyle
	case bytes.HasPrefix(b, []byte(`'`)):
		n.Style = yaml.SingleQuotedStyle
	}
	return n
}

// table writes aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

// row writes one row; each cell is made safe for a terminal (see cell).
func (t *table) row(cells ...string) {
	safe := make([]string, len(cells))
	for i, c := range cells {
		safe[i] = cell(c)
	}
	fmt.Fprintln(t.tw, strings.Join(safe, "\t"))
}

// cell writes each control character of s (a tab, a line break, an escape
// a terminal would act on) and each bidirectional control (which would show
// the text in another order than it reads) as its Go escape: what a target
// or a step reported, shown in a table, can neither break its columns nor
// drive or mislead the terminal it is printed on.
func cell(s string) string { return escapeRunes(s, unshowable) }

// unshowable reports whether r is printed as its escape on a terminal.
func unshowable(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) }

// escapeRunes writes each rune of s that escape reports as its Go escape,
// and each byte that is not UTF-8 as \xNN: a terminal could take such a
// byte, with what follows it, for a control. (escapingWriter puts a
// character split between two writes together before it gets here.)
func escapeRunes(s string, escape func(rune) bool) string {
	if !strings.ContainsFunc(s, escape) && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case escape(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func (t *table) flush() error { return t.tw.Flush() }

// forTerminal returns the writer step output is printed to: w itself when
// raw, or when w is not a terminal (a file, a pipe: the output as the step
// wrote it); on a terminal, a writer that prints each control character but
// line breaks and tabs as its Go escape, as a table's cells are. A step's
// output, or a target that lies about it, then cannot drive the operator's
// terminal (move its cursor, retitle it, rewrite what it shows).
//
// A writer forTerminal already made is returned as it is, or, raw, as the
// terminal beneath it: a table function that prints step output with --raw
// undoes the escaping query gives every table.
func forTerminal(w io.Writer, raw bool) io.Writer {
	if e, ok := w.(*escapingWriter); ok {
		if raw {
			return e.w
		}
		return e
	}
	if raw || !writesToTerminal(w) {
		return w
	}
	return &escapingWriter{w: w}
}

// writesToTerminal reports whether w is a terminal.
var writesToTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}

// escapingWriter writes what it is given with its control characters, but
// line breaks and tabs, and its bidirectional controls escaped. A
// character that a write ends in the middle of is held until the next
// write completes it, and escaped then as any other: a control written a
// byte at a time is escaped as one written whole. (What the last write
// leaves incomplete is no character, and a terminal would show none.)
type escapingWriter struct {
	w    io.Writer
	mu   sync.Mutex
	held []byte // the start of a character the last write ended in
}

func (e *escapingWriter) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := string(e.held) + string(p)
	e.held = e.held[:0]
	// The last character, if it is incomplete, waits for the next write.
	for i := len(s) - 1; i >= 0 && i >= len(s)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(s[i]) {
			if !utf8.FullRuneInString(s[i:]) {
				e.held = append(e.held, s[i:]...)
				s = s[:i]
			}
			break
		}
	}
	if _, err := io.WriteString(e.w, escapeControls(s)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// escapeControls is cell, but for line breaks and tabs, which it keeps.
func escapeControls(s string) string {
	return escapeRunes(s, func(r rune) bool { return r != '\n' && r != '\t' && unshowable(r) })
}

// ago renders how long before now t was, for tables ("12s ago").
func ago(t *time.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	d := now.Sub(*t)
	if d < 0 {
		// An hour or more ahead, rounded to the minute first: what was
		// set to expire in 90d a moment ago expires in 90d, not 89d and
		// some hours. Within the hour, to the second, as a time past is:
		// what expires in 20s does not expire in 0s.
		if -d >= time.Hour {
			return "in " + muster.Duration((-d).Round(time.Minute)).Rounded()
		}
		return "in " + muster.Duration(-d).Rounded()
	}
	return muster.Duration(d).Rounded() + " ago"
}

// millis renders a duration in milliseconds for tables.
func millis(ms int64) string { return muster.Duration(time.Duration(ms) * time.Millisecond).Rounded() }

// dash renders "" as "-".
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
