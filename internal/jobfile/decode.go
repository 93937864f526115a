package jobfile

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/musterhq/muster"
)

// decoder fills Go values from YAML nodes by their yaml tags, as yaml.v3's
// own decoder does, but goes on after a mistake: every unknown key and
// every value of the wrong shape becomes a problem at its line and column,
// worded for the person who wrote the file.
type decoder struct {
	ps  *problems
	job string // the job being decoded, for messages; "" outside one
}

// typeWord names a struct of a job file in messages ("" for any other
// type). This and example are switches, not maps, so that nothing is built
// when the program starts: the target daemon, which is this binary too,
// never reads a job file.
func typeWord(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[muster.Job]():
		return "a job"
	case reflect.TypeFor[muster.Step]():
		return "a step"
	case reflect.TypeFor[muster.Schedule]():
		return "a schedule"
	case reflect.TypeFor[muster.Retry]():
		return "retry"
	case reflect.TypeFor[muster.Repeat]():
		return "repeat"
	case reflect.TypeFor[muster.DailyFrequency]():
		return "daily"
	case reflect.TypeFor[muster.WeeklyFrequency]():
		return "weekly"
	case reflect.TypeFor[muster.MonthlyFrequency]():
		return "monthly"
	case reflect.TypeFor[muster.MonthlyRelativeFrequency]():
		return "monthly_relative"
	case reflect.TypeFor[muster.Override]():
		return "an override"
	case reflect.TypeFor[muster.StepOverride]():
		return "a step override"
	}
	return ""
}

// example shows the shape a key's value takes, for "must be a mapping"
// messages; "" for a key that gets a generic word.
func example(key string) string {
	switch key {
	case "retry":
		return "{attempts: 2, interval: 30s}"
	case "repeat":
		return `{every: 15m, from: "08:00", until: "18:00"}`
	case "daily":
		return "{every: 1}"
	case "weekly":
		return "{days: [mon, fri]}"
	case "monthly":
		return "{day: 1}"
	case "monthly_relative":
		return "{week: last, day: friday}"
	case "env":
		return "{NAME: value}"
	case "target_env":
		return "{web1: {NAME: value}}"
	case "steps":
		return "{name: build, shell: make}"
	case "schedules":
		return `{cron: "0 2 * * *"}`
	case "jobs":
		return "{name: backup, targets: [db1], steps: [...]}"
	case "overrides":
		return "{target: web1, timeout: 2h}"
	}
	return ""
}

// exampleFor returns the example of a key's value at field: an override's
// steps are a mapping by step name, not a list of steps.
func exampleFor(field, key string) string {
	if key == "steps" && strings.HasPrefix(field, "overrides[") {
		return "{STEP: {timeout: 10m}}"
	}
	return example(key)
}

// fail records a problem at node n, prefixed with the job it is in.
func (d *decoder) fail(n *yaml.Node, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if d.job != "" {
		msg = fmt.Sprintf("job %q: %s", d.job, msg)
	}
	d.ps.add(n.Line, n.Column, "%s", msg)
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// decode fills v, which must be settable, from n. field is the path of the
// value in the job ("steps[1].retry"), for messages; key is its last key.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, field, key string) {
	at := n // problems point at the alias where the value is used
	n = resolve(n)
	if n == nil || isNull(n) {
		return
	}
	if reflect.PointerTo(v.Type()).Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			// muster's unmarshalers wrap their reason with the line; the
			// location is given here, so only the reason is kept.
			if inner := errors.Unwrap(err); inner != nil {
				err = inner
			}
			d.fail(at, "%s: %v", field, err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), field, key)
	case reflect.Struct:
		d.decodeStruct(at, n, v, field)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.wrongShape(at, n, field, key, "a list")
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			path := fmt.Sprintf("%s[%d]", field, i)
			// Null is a value only of a key (left out); an item of a
			// list that is null is a slip, whatever its type.
			if r := resolve(item); r != nil && isNull(r) {
				if v.Type().Elem().Kind() == reflect.String && r.Value != "" {
					d.fail(item, "%s is null; quote it for the text (%q), or write \"\" for an empty value", path, r.Value)
				} else {
					d.fail(item, "%s is empty; remove the \"-\" or give the item", path)
				}
				continue
			}
			d.decode(item, s.Index(i), path, key)
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.wrongShape(at, n, field, key, "a mapping")
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		d.decodeMap(n, m, field)
		v.Set(m)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.wrongShape(at, n, field, key, "a single value")
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
			d.fail(at, "%s must be true or false", field)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		var i int64
		if n.Kind != yaml.ScalarNode || n.Decode(&i) != nil || v.OverflowInt(i) {
			d.fail(at, "%s must be a whole number, e.g. 3", field)
			return
		}
		v.SetInt(i)
	default:
		panic(fmt.Sprintf("jobfile: no decoding for %s", v.Type()))
	}
}

// decodeMap fills m from the mapping n, key by key. Merge keys ("<<:
// *common") are applied after the mapping's own keys, each adding only the
// keys not set yet, so the mapping's own keys win, and of a list of
// mappings to merge the first that sets a key wins, as in yaml.v3.
func (d *decoder) decodeMap(n *yaml.Node, m reflect.Value, field string) {
	seen := map[string]int{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolve(n.Content[i])
		if k.Kind != yaml.ScalarNode {
			d.fail(n.Content[i], "%s: a key must be a single word, not a list or a mapping", field)
			continue
		}
		if k.Value == "<<" && k.ShortTag() == "!!merge" {
			merges = append(merges, n.Content[i+1])
			continue
		}
		if line, dup := seen[k.Value]; dup {
			d.fail(n.Content[i], "%s: %q is given twice (also on line %d)", field, k.Value, line)
			continue
		}
		seen[k.Value] = n.Content[i].Line
		elem := reflect.New(m.Type().Elem()).Elem()
		d.decode(n.Content[i+1], elem, field+"."+k.Value, k.Value)
		m.SetMapIndex(reflect.ValueOf(k.Value), elem)
	}
	for _, val := range merges {
		srcs := mergeSources(val)
		if len(srcs) == 0 && !isNull(resolve(val)) {
			d.fail(val, "%s: << merges a mapping, or a list of mappings, e.g. <<: *common", field)
		}
		for _, src := range srcs {
			add := reflect.MakeMap(m.Type())
			d.decodeMap(src, add, field)
			iter := add.MapRange()
			for iter.Next() {
				if !m.MapIndex(iter.Key()).IsValid() {
					m.SetMapIndex(iter.Key(), iter.Value())
				}
			}
		}
	}
}

// wrongShape reports a value that is not of the shape its key takes.
func (d *decoder) wrongShape(at, n *yaml.Node, field, key, want string) {
	var got string
	switch n.Kind {
	case yaml.ScalarNode:
		got = "a single value"
	case yaml.SequenceNode:
		got = "a list"
	default:
		got = "a mapping"
	}
	switch {
	case want == "a list" && n.Kind == yaml.ScalarNode:
		d.fail(at, "%s must be a list, e.g. [%s]", field, n.Value)
	case want == "a list" && n.Kind == yaml.MappingNode && exampleFor(field, key) != "":
		d.fail(at, "%s must be a list, each item starting with \"- \", e.g. - %s", field, exampleFor(field, key))
	case want == "a mapping" && exampleFor(field, key) != "":
		d.fail(at, "%s must be a mapping, e.g. %s, not %s", field, exampleFor(field, key), got)
	default:
		d.fail(at, "%s must be %s, not %s", field, want, got)
	}
}

// decodeStruct fills a struct from a mapping, key by key, through its yaml
// tags. Merge keys ("<<: *defaults") are applied first, so the mapping's
// own keys win, as in yaml.v3.
func (d *decoder) decodeStruct(at, n *yaml.Node, v reflect.Value, field string) {
	t := v.Type()
	words := typeWord(t)
	if n.Kind != yaml.MappingNode {
		what := field
		if what == "" {
			what = words
		}
		if ex := example(lastKey(field)); ex != "" {
			d.fail(at, "%s must be a mapping of keys to values, e.g. %s", what, ex)
		} else {
			d.fail(at, "%s must be a mapping of keys to values", what)
		}
		return
	}
	fields, names := structFields(t)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, val := resolve(n.Content[i]), n.Content[i+1]
		if kn.Kind == yaml.ScalarNode && kn.Value == "<<" {
			// Of a list of mappings to merge, the first that sets a key
			// wins: each is decoded over those after it.
			srcs := mergeSources(val)
			if len(srcs) == 0 && !isNull(resolve(val)) {
				d.fail(val, "%s << merges a mapping, or a list of mappings, e.g. <<: *defaults", words)
			}
			for _, src := range slices.Backward(srcs) {
				d.decodeStruct(val, src, v, field)
			}
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, val := resolve(n.Content[i]), n.Content[i+1]
		if kn.Kind != yaml.ScalarNode {
			d.fail(n.Content[i], "a key of %s must be a single word, not a list or a mapping", words)
			continue
		}
		name := kn.Value
		if name == "<<" {
			continue
		}
		idx, ok := fields[name]
		if !ok {
			where := words
			if field != "" && t != reflect.TypeFor[muster.Job]() {
				where = fmt.Sprintf("%s (%s)", words, field)
			}
			if s := suggest(name, names); s != "" {
				d.fail(n.Content[i], "unknown key %q in %s; did you mean %q?", name, where, s)
			} else {
				d.fail(n.Content[i], "unknown key %q in %s; its keys are %s", name, where, strings.Join(names, ", "))
			}
			continue
		}
		if line, dup := seen[name]; dup {
			d.fail(n.Content[i], "%q is given twice in %s (also on line %d)", name, words, line)
			continue
		}
		seen[name] = n.Content[i].Line
		path := name
		if field != "" {
			path = field + "." + name
		}
		d.decode(val, v.Field(idx), path, name)
	}
}

// mergeSources returns the mappings a merge key's value names: one
// mapping, or a list of them.
func mergeSources(val *yaml.Node) []*yaml.Node {
	val = resolve(val)
	if val.Kind == yaml.SequenceNode {
		var out []*yaml.Node
		for _, c := range val.Content {
			if c = resolve(c); c.Kind == yaml.MappingNode {
				out = append(out, c)
			}
		}
		return out
	}
	if val.Kind == yaml.MappingNode {
		return []*yaml.Node{val}
	}
	return nil
}

// structFields maps the yaml keys of a struct to its field indexes, and
// lists the keys in the order of the fields.
func structFields(t reflect.Type) (map[string]int, []string) {
	fields := map[string]int{}
	var names []string
	for i := range t.NumField() {
		name := yamlKey(t.Field(i))
		if name == "" {
			continue
		}
		fields[name] = i
		names = append(names, name)
	}
	return fields, names
}

// yamlKey returns the key a struct field is written with in a job file, or
// "" if the field is not in job files.
func yamlKey(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

// lastKey returns the last key of a field path: "retry" for
// "steps[1].retry", "steps" for "steps".
func lastKey(field string) string {
	if i := strings.LastIndexByte(field, '.'); i >= 0 {
		field = field[i+1:]
	}
	if i := strings.IndexByte(field, '['); i >= 0 {
		field = field[:i]
	}
	return field
}

// lookup finds the node a field path ("steps[1].on_failure") names under a
// job's mapping node, or the deepest node on the way when the path goes
// further than the file does (a default, or a key that was left out).
func lookup(job *yaml.Node, path string) *yaml.Node {
	n := job
	parts := strings.Split(path, ".")
	for i := 0; i < len(parts); i++ {
		part := parts[i]
		if part == "" {
			continue
		}
		key, rest, _ := strings.Cut(part, "[")
		next := findKey(n, key)
		// A key may hold dots itself (a step's name in an override's
		// steps): try it with the parts that follow.
		for j := i + 1; next == nil && rest == "" && j < len(parts); j++ {
			key = strings.Join(parts[i:j+1], ".")
			if next = findKey(n, key); next != nil {
				i = j
			}
		}
		if next == nil {
			return n
		}
		n = next
		for rest != "" {
			idxText, after, _ := strings.Cut(rest, "]")
			rest = strings.TrimPrefix(after, "[")
			i, err := strconv.Atoi(idxText)
			seq := resolve(n)
			if err != nil || seq.Kind != yaml.SequenceNode || i >= len(seq.Content) {
				return n
			}
			n = seq.Content[i]
		}
	}
	return n
}

// findKey returns the value node of key in mapping n (looking through
// merge keys too), keyed by its key node so that problems point at the key.
func findKey(n *yaml.Node, key string) *yaml.Node {
	m := resolve(n)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := resolve(m.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			// The key's own position, holding the value for further steps.
			return keyed(m.Content[i], m.Content[i+1])
		}
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := resolve(m.Content[i]); k.Kind == yaml.ScalarNode && k.Value == "<<" {
			for _, src := range mergeSources(m.Content[i+1]) {
				if v := findKey(src, key); v != nil {
					return v
				}
			}
		}
	}
	return nil
}

// keyed returns a copy of value positioned at key: a problem with a
// value is reported where its key is written, yet the path can go on
// through the value.
func keyed(key, value *yaml.Node) *yaml.Node {
	v := *resolve(value)
	v.Line, v.Column = key.Line, key.Column
	return &v
}
