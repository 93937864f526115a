package agent

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/musterhq/muster"
)

// checkSettingsFile reads b, a settings file, as yaml.v3 will decode it
// into Settings, and refuses its first mistake naming the setting it is
// in ("connections.pg.dsn"), its line and the rule. yaml.v3 alone names a
// Go type instead of the setting, cuts a fraction given for a whole number
// (1.5 became 1), and reads only the first of several documents.
func checkSettingsFile(b []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil
	} else if err != nil {
		return err
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return muster.Errorf(muster.EINVALID, "line %d: a second YAML document; the settings are one document, without a --- between them", next.Line)
	} else if !errors.Is(err, io.EOF) {
		return err
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root := resolveAlias(doc.Content[0])
	if isNullNode(root) {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		return muster.Errorf(muster.EINVALID, "line %d: the settings are a mapping of keys to values, not %s", root.Line, nodeShape(root))
	}
	return checkSettingsValue(root, reflect.TypeFor[Settings](), "")
}

// checkSettingsValue checks that n can be decoded into a value of type t,
// at the setting named path.
func checkSettingsValue(n *yaml.Node, t reflect.Type, path string) error {
	at := n
	n = resolveAlias(n)
	if isNullNode(n) {
		return nil // left at its default, as yaml.v3 does
	}
	fail := func(format string, args ...any) error {
		return muster.Errorf(muster.EINVALID, "%s: line %d: %s", path, at.Line, fmt.Sprintf(format, args...))
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
		v := reflect.New(t)
		if err := v.Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			// muster's unmarshalers begin with the line, given here.
			msg := err.Error()
			if _, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "line ") {
				msg = rest
			}
			return fail("%s", msg)
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return fail("a mapping of keys to values, not %s", nodeShape(n))
		}
		return checkSettingsMapping(n, path, func(key string) (reflect.Type, bool, []string) {
			var names []string
			var found reflect.Type
			for i := range t.NumField() {
				name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
				if name == "" || name == "-" {
					continue
				}
				names = append(names, name)
				if name == key {
					found = t.Field(i).Type
				}
			}
			return found, found != nil, names
		})
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return fail("a mapping of keys to values, not %s", nodeShape(n))
		}
		return checkSettingsMapping(n, path, func(string) (reflect.Type, bool, []string) { return t.Elem(), true, nil })
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			return fail("a single value, not %s", nodeShape(n))
		}
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode {
			return fail("true or false, not %s", nodeShape(n))
		}
		if n.Decode(&b) != nil { // yaml.v3 takes YAML 1.1's yes and no too

			return fail("%q is not true or false", n.Value)
		}
	case reflect.Int, reflect.Int64:
		var i int64
		if n.Kind != yaml.ScalarNode {
			return fail("a whole number, not %s", nodeShape(n))
		}
		if n.ShortTag() != "!!int" || n.Decode(&i) != nil || reflect.New(t).Elem().OverflowInt(i) {
			return fail("%q is not a whole number", n.Value)
		}
	}
	// Any other kind is left to yaml.v3, which decodes the file after.
	return nil
}

// checkSettingsMapping checks each key of the mapping n: known (field
// returns its type, or false and the keys there are), given once, and its
// value. A merge key (<<: *common) is left to yaml.v3, which applies it.
func checkSettingsMapping(n *yaml.Node, path string, field func(key string) (reflect.Type, bool, []string)) error {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolveAlias(n.Content[i])
		key := k.Value
		at := path + "." + key
		if path == "" {
			at = key
		}
		if k.Kind != yaml.ScalarNode {
			return muster.Errorf(muster.EINVALID, "%s: line %d: a key is a single word, not %s", cmp.Or(path, "settings"), k.Line, nodeShape(k))
		}
		if key == "<<" && k.ShortTag() == "!!merge" {
			continue
		}
		if line, dup := seen[key]; dup {
			return muster.Errorf(muster.EINVALID, "%s: line %d: given twice (also on line %d)", at, k.Line, line)
		}
		seen[key] = k.Line
		t, ok, names := field(key)
		if !ok {
			return muster.Errorf(muster.EINVALID, "%s: line %d: unknown setting; the settings here are %s", at, k.Line, strings.Join(names, ", "))
		}
		if err := checkSettingsValue(n.Content[i+1], t, at); err != nil {
			return err
		}
	}
	return nil
}

// resolveAlias follows an alias to the node it names.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNullNode(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// nodeShape names the shape of n for messages.
func nodeShape(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	return "a single value"
}
