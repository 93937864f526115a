package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"gopkg.in/yaml.v3"
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
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return err
	}
	blockStyle(&n)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return err
	}
	return enc.Close()
}

// blockStyle drops the flow and quoting styles a node read from JSON has,
// so that it is written as YAML people write (the encoder still quotes
// what needs quoting). Strings that YAML would not read back the same keep
// their double quotes.
func blockStyle(n *yaml.Node) {
	if n.Kind != yaml.ScalarNode || !strings.ContainsAny(n.Value, "\t\r") && !strings.HasPrefix(n.Value, "\n") && !strings.HasPrefix(n.Value, " ") {
		n.Style = 0
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// table writes aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) { fmt.Fprintln(t.tw, strings.Join(cells, "\t")) }

func (t *table) flush() error { return t.tw.Flush() }

// ago renders how long before now t was, for tables ("12s ago").
func ago(t *time.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	d := now.Sub(*t)
	if d < 0 {
		return "in " + roundDuration(-d)
	}
	return roundDuration(d) + " ago"
}

func roundDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// millis renders a duration in milliseconds for tables.
func millis(ms int64) string { return roundDuration(time.Duration(ms) * time.Millisecond) }

// dash renders "" as "-".
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
