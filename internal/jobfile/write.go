package jobfile

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/musterhq/muster"
)

// Entry returns j as a job file holds it: without what the master sets
// (its version) and without the defaults Read and the master fill in again
// (schedule names schedule-1, schedule-2, …), so that applying the entry
// gives j back unchanged.
func Entry(j muster.Job) muster.Job {
	j.Version = 0
	j.Schedules = unnamed(j.Schedules)
	if len(j.Overrides) > 0 {
		j.Overrides = append([]muster.Override(nil), j.Overrides...)
		for i, o := range j.Overrides {
			if o.Schedules != nil {
				s := unnamed(*o.Schedules)
				if s == nil {
					s = []muster.Schedule{}
				}
				j.Overrides[i].Schedules = &s
			}
		}
	}
	return j
}

// unnamed returns a copy of schedules without the names the master fills
// in (schedule-1, schedule-2, …).
func unnamed(schedules []muster.Schedule) []muster.Schedule {
	if len(schedules) == 0 {
		return schedules
	}
	out := append([]muster.Schedule(nil), schedules...)
	for i := range out {
		if out[i].Name == muster.DefaultScheduleName(i) {
			out[i].Name = ""
		}
	}
	return out
}

// Write writes jobs as a job file: the form `muster export` prints and
// `muster apply` reads. Each job goes through Entry, and enabled is written
// only when it is false, so a file written by hand comes back as it was
// written, and Read of what Write wrote gives the same definitions.
func Write(w io.Writer, jobs []muster.Job) error {
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, j := range jobs {
		n, err := encode(Entry(j))
		if err != nil {
			return fmt.Errorf("job %q: %w", j.Name, err)
		}
		if j.Enabled {
			removeKey(n, "enabled")
		}
		compact(n, "")
		seq.Content = append(seq.Content, n)
	}
	if len(jobs) == 0 {
		seq.Style = yaml.FlowStyle
	}
	doc := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
		{Kind: yaml.ScalarNode, Tag: "!!str", Value: "jobs"}, seq,
	}}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	return enc.Close()
}

// encode turns a job into a YAML node. gopkg.in/yaml.v3 writes some
// strings in a form it cannot read back the same (a first line that starts
// with a tab or a line break, in a block scalar), so each string it would
// not give back whole is kept out of its way: encoded as a placeholder, then
// put back into the node double-quoted, a form that holds any text.
func encode(j muster.Job) (*yaml.Node, error) {
	// Work on a deep copy: the placeholders must not reach the caller's job.
	b, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	var c muster.Job
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	var nonce [8]byte
	rand.Read(nonce[:])
	sh := shield{prefix: "muster-quoted-" + hex.EncodeToString(nonce[:]) + "-", held: map[string]string{}}
	sh.walk(reflect.ValueOf(&c).Elem())
	var n yaml.Node
	if err := n.Encode(c); err != nil {
		return nil, err
	}
	sh.restore(&n)
	return &n, nil
}

// shield swaps the strings YAML would not give back whole for placeholders.
type shield struct {
	prefix string
	held   map[string]string // the original text, by placeholder
}

func (sh *shield) walk(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		if s := v.String(); !roundTrips(s) {
			p := sh.prefix + strconv.Itoa(len(sh.held))
			sh.held[p] = s
			v.SetString(p)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			sh.walk(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				sh.walk(v.Field(i))
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			sh.walk(v.Index(i))
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			sh.walk(e)
			v.SetMapIndex(k, e)
		}
	}
}

// restore puts the original strings back, double-quoted.
func (sh *shield) restore(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode {
		if s, ok := sh.held[n.Value]; ok {
			n.Value, n.Tag, n.Style = s, "!!str", yaml.DoubleQuotedStyle
		}
	}
	for _, c := range n.Content {
		sh.restore(c)
	}
}

// roundTrips reports whether yaml.v3 reads s back whole after writing it
// as deep in a job file as a step's values are.
func roundTrips(s string) bool {
	if s == "" {
		return true
	}
	in := []map[string][]map[string]string{{"k": {{"k": s}}}}
	b, err := yaml.Marshal(in)
	if err != nil {
		return false
	}
	var out []map[string][]map[string]string
	if yaml.Unmarshal(b, &out) != nil || len(out) != 1 || len(out[0]["k"]) != 1 {
		return false
	}
	return out[0]["k"][0]["k"] == s
}

// removeKey drops key and its value from a mapping node.
func removeKey(n *yaml.Node, key string) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content = append(n.Content[:i], n.Content[i+2:]...)
			return
		}
	}
}

// flowKey reports whether key is one of the small mappings written on one
// line, as docs/jobs.md writes them: retry: {attempts: 2, interval: 5m}.
func flowKey(key string) bool {
	switch key {
	case "retry", "daily", "weekly", "monthly", "monthly_relative", "repeat":
		return true
	}
	return false
}

// maxFlowLen is the longest list or mapping written on one line.
const maxFlowLen = 72

// compact writes short lists of scalars and the small mappings of flowKey
// on one line, as people write them. key is the key n is the value of.
func compact(n *yaml.Node, key string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			compact(n.Content[i+1], n.Content[i].Value)
		}
		if flowKey(key) && oneLine(n) {
			n.Style = yaml.FlowStyle
		}
	case yaml.SequenceNode:
		scalars := true
		for _, c := range n.Content {
			compact(c, "")
			scalars = scalars && c.Kind == yaml.ScalarNode
		}
		if scalars && oneLine(n) {
			n.Style = yaml.FlowStyle
		}
	}
}

// oneLine reports whether a node holds only short one-line scalars.
func oneLine(n *yaml.Node) bool {
	total := 0
	var walk func(*yaml.Node) bool
	walk = func(n *yaml.Node) bool {
		if n.Kind == yaml.ScalarNode {
			total += len(n.Value) + 2
			return !strings.ContainsAny(n.Value, "\n\r")
		}
		for _, c := range n.Content {
			if !walk(c) {
				return false
			}
		}
		return true
	}
	return walk(n) && total <= maxFlowLen
}

// WriteJSON writes jobs as a job file in JSON, the form `muster export -o
// json` prints and `muster apply` reads (JSON is YAML). Each job goes
// through Entry, as in Write. The characters JSON writes as they are but
// YAML takes only escaped (DEL, the C1 controls, U+FFFE and U+FFFF) are
// written escaped, \u007f, so that Read gives back what was written.
func WriteJSON(w io.Writer, jobs []muster.Job) error {
	entries := make([]muster.Job, len(jobs))
	for i, j := range jobs {
		entries[i] = Entry(j)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(map[string][]muster.Job{"jobs": entries}); err != nil {
		return err
	}
	// Outside its strings, JSON is ASCII: every such character is in a
	// string, where \u escapes mean the same in JSON and in YAML.
	out := make([]byte, 0, buf.Len())
	for _, r := range buf.String() {
		if yamlEscapes(r) {
			out = fmt.Appendf(out, `\u%04x`, r)
			continue
		}
		out = utf8.AppendRune(out, r)
	}
	_, err := w.Write(out)
	return err
}

// yamlEscapes reports whether YAML takes r only escaped, though JSON
// writes it as it is.
func yamlEscapes(r rune) bool {
	return r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == 0xfffe || r == 0xffff
}
