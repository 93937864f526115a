package jsonhttp

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/musterhq/muster"
)

// encoding/json takes a key given twice in one object (the last value
// wins) and fills a field from a key spelled in another case ("NAME" fills
// "name"). A proxy or validator in front of the master may read the other
// value, so a request body is held to one spelling: checkKeys refuses,
// before it is decoded, a key given twice and a key that is not spelled
// exactly as the field it would fill.

// shapeKind is what a JSON value decodes into, as far as its keys go.
type shapeKind uint8

const (
	shapeScalar shapeKind = iota // a string, number, boolean: no keys
	shapeStruct                  // an object whose keys are the struct's fields
	shapeMap                     // an object whose keys are free
	shapeList                    // a list of elem
	shapeAny                     // anything: keys free (an interface)
	shapeOwn                     // a type that decodes itself, and checks its own keys
)

// shape is the keys a Go type takes from JSON.
type shape struct {
	kind   shapeKind
	fields map[string]int // shapeStruct: each key as spelled, to its index
	names  []string       // shapeStruct: the keys, by index
	elems  []*shape       // shapeStruct: each key's value, by index
	elem   *shape         // shapeMap: each value; shapeList: each element
}

var (
	anyShape    = &shape{kind: shapeAny}
	ownShape    = &shape{kind: shapeOwn}
	scalarShape = &shape{kind: shapeScalar}
	shapes      sync.Map // reflect.Type to *shape
	shapesMu    sync.Mutex
	unmarshaler = reflect.TypeFor[json.Unmarshaler]()
	rawMessage  = reflect.TypeFor[json.RawMessage]()
	textDecoder = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// shapeOf returns the shape of t, made once.
func shapeOf(t reflect.Type) *shape {
	if s, ok := shapes.Load(t); ok {
		return s.(*shape)
	}
	shapesMu.Lock()
	defer shapesMu.Unlock()
	s := makeShape(t, map[reflect.Type]*shape{})
	shapes.Store(t, s)
	return s
}

// makeShape makes t's shape; making holds those being made, which a type
// that holds itself (a list of its own kind) refers to.
func makeShape(t reflect.Type, making map[reflect.Type]*shape) *shape {
	if s, ok := shapes.Load(t); ok {
		return s.(*shape)
	}
	if s, ok := making[t]; ok {
		return s
	}
	// A type that decodes itself (json.Unmarshaler) checks its own keys,
	// with Unmarshal when it decodes an object, so that its refusals can
	// say what it is; a text decoder takes a string.
	switch {
	case t == rawMessage:
		return anyShape // kept as sent, for a decoder that may not check
	case t.Implements(unmarshaler) || reflect.PointerTo(t).Implements(unmarshaler):
		return ownShape
	case t.Implements(textDecoder) || reflect.PointerTo(t).Implements(textDecoder):
		return scalarShape
	}
	switch t.Kind() {
	case reflect.Pointer:
		return makeShape(t.Elem(), making)
	case reflect.Interface:
		return anyShape
	case reflect.Map:
		s := &shape{kind: shapeMap}
		making[t] = s
		s.elem = makeShape(t.Elem(), making)
		return s
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && t.Kind() == reflect.Slice {
			return scalarShape // []byte is a base64 string
		}
		s := &shape{kind: shapeList}
		making[t] = s
		s.elem = makeShape(t.Elem(), making)
		return s
	case reflect.Struct:
		s := &shape{kind: shapeStruct, fields: map[string]int{}}
		making[t] = s
		for _, f := range jsonFields(t) {
			s.fields[f.name] = len(s.names)
			s.names = append(s.names, f.name)
			s.elems = append(s.elems, makeShape(f.typ, making))
		}
		return s
	}
	return scalarShape
}

// jsonField is a key a struct takes, and the type of its value.
type jsonField struct {
	name   string
	typ    reflect.Type
	depth  int
	tagged bool
}

// jsonFields lists the keys encoding/json decodes into a struct of type t:
// its exported fields under their tag's name or their own, and those of
// the structs it embeds, a shallower field hiding a deeper one of the same
// name, and two at one depth hiding each other unless one alone is tagged.
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	byName := map[string][]int{}
	level := []reflect.Type{t}
	visited := map[reflect.Type]bool{}
	for depth := 0; len(level) > 0; depth++ {
		var next []reflect.Type
		for _, st := range level {
			if visited[st] {
				continue
			}
			visited[st] = true
			for i := range st.NumField() {
				f := st.Field(i)
				ft := f.Type
				if f.Anonymous && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if !f.IsExported() && !(f.Anonymous && ft.Kind() == reflect.Struct) {
					continue
				}
				tag := f.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, _, _ := strings.Cut(tag, ",")
				if name == "" && f.Anonymous && ft.Kind() == reflect.Struct {
					next = append(next, ft)
					continue
				}
				if !f.IsExported() {
					continue
				}
				tagged := name != ""
				if !tagged {
					name = f.Name
				}
				byName[name] = append(byName[name], len(out))
				out = append(out, jsonField{name: name, typ: f.Type, depth: depth, tagged: tagged})
			}
		}
		level = next
	}
	var kept []jsonField
	for _, f := range out {
		same := byName[f.name]
		if len(same) == 1 {
			kept = append(kept, f)
			continue
		}
		// The shallowest wins; at one depth, the one tagged alone.
		first := out[same[0]]
		var win []jsonField
		for _, j := range same {
			if g := out[j]; g.depth == first.depth && (g.tagged || !hasTagged(out, same, first.depth)) {
				win = append(win, g)
			}
		}
		if len(win) == 1 && win[0] == f {
			kept = append(kept, f)
		}
	}
	return kept
}

func hasTagged(fields []jsonField, idx []int, depth int) bool {
	for _, j := range idx {
		if fields[j].depth == depth && fields[j].tagged {
			return true
		}
	}
	return false
}

// keyError is a key refused: where it is, and the rule it broke.
type keyError struct {
	path []string
	rule string
}

func (e *keyError) Error() string {
	if len(e.path) == 0 {
		return e.rule
	}
	return strings.Join(e.path, ".") + ": " + e.rule
}

// CheckKeys checks the keys of data, one JSON value to be decoded into a
// value of type t: it returns an invalid error naming the first key given
// twice in one object, or not spelled exactly as the field it would fill,
// or the first string (or key) that is not valid UTF-8, which encoding/json
// would take with U+FFFD in place of its bytes; nil when there is none.
// What is not valid JSON it leaves to the decoder to explain (it returns
// nil).
func CheckKeys(data []byte, t reflect.Type) error {
	return checkKeys(data, t, "", -1, true)
}

// CheckReplyKeys is CheckKeys for a reply, which may carry keys a newer
// sender added: a key that fills no field in any spelling is let through
// (its value's keys checked as free keys), once. A key given twice, or
// spelled in another case than the field it would fill, is refused as
// CheckKeys refuses it.
func CheckReplyKeys(data []byte, t reflect.Type) error {
	return checkers.Get().(*keyChecker).check(data, t, "", -1, true, true)
}

// checkKeys is CheckKeys for item index of the list field, named so in
// its errors, when field is not "", checking strings are UTF-8 when utf8
// is true.
func checkKeys(data []byte, t reflect.Type, field string, index int, utf8 bool) error {
	return checkers.Get().(*keyChecker).check(data, t, field, index, utf8, false)
}

// check is checkKeys with c, letting unknown keys through when unknownOK
// is true; it puts c back in checkers.
func (c *keyChecker) check(data []byte, t reflect.Type, field string, index int, utf8, unknownOK bool) error {
	c.data, c.pos, c.utf8, c.unknownOK = data, 0, utf8, unknownOK
	err := c.value(shapeOf(t), 0)
	clear(c.path[:cap(c.path)])
	clear(c.keys[:cap(c.keys)])
	c.data, c.path, c.keys = nil, c.path[:0], c.keys[:0]
	checkers.Put(c)
	if ke, ok := err.(*keyError); ok {
		if field != "" {
			return muster.Errorf(muster.EINVALID, "%s[%d].%s", field, index, ke.Error())
		}
		return muster.Errorf(muster.EINVALID, "%s", ke.Error())
	}
	return nil
}

// keyChecker walks a JSON value, its keys against a shape.
type keyChecker struct {
	data []byte
	pos  int
	path [][]byte // the keys from the root to the value read
	utf8 bool     // refuse strings that are not UTF-8
	// unknownOK lets through a key that fills no field of a struct, in
	// any spelling, as a free key.
	unknownOK bool
	// keys are the keys of the free-keyed objects being read, each
	// object's after its parent's: slices of data, or of a key unescaped,
	// not copies.
	keys [][]byte
}

// checkers keep keyCheckers, and what they grew, for the next body.
var checkers = sync.Pool{New: func() any { return &keyChecker{} }}

// errNotJSON ends a walk on what is not valid JSON.
var errNotJSON = fmt.Errorf("not JSON")

func (c *keyChecker) space() {
	for c.pos < len(c.data) {
		switch c.data[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

func (c *keyChecker) peek() byte {
	c.space()
	if c.pos == len(c.data) {
		return 0
	}
	return c.data[c.pos]
}

// value reads one value of shape s, depth deep.
func (c *keyChecker) value(s *shape, depth int) error {
	if depth > MaxDepth {
		return errNotJSON // the body's reader refuses it first
	}
	if s.kind == shapeOwn {
		return c.skip()
	}
	switch c.peek() {
	case '{':
		if s.kind != shapeStruct && s.kind != shapeMap {
			s = anyShape // the decoder refuses what is not an object where one belongs
		}
		return c.object(s, depth)
	case '[':
		c.pos++
		elem := anyShape
		if s.kind == shapeList {
			elem = s.elem
		}
		if c.peek() == ']' {
			c.pos++
			return nil
		}
		for {
			if err := c.value(elem, depth+1); err != nil {
				return err
			}
			switch c.peek() {
			case ',':
				c.pos++
			case ']':
				c.pos++
				return nil
			default:
				return errNotJSON
			}
		}
	case '"':
		raw, _, err := c.str()
		if err == nil && c.utf8 && !isASCII(raw) && !utf8.Valid(raw) {
			return c.invalid(false)
		}
		return err
	case 0:
		return errNotJSON
	}
	c.literal()
	return nil
}

// invalid returns the error for the value being read, which is not
// UTF-8, or holds a key that is not (key).
func (c *keyChecker) invalid(key bool) error {
	switch {
	case len(c.path) > 0 && key:
		return c.errorAt(c.path, "a key is not valid UTF-8")
	case len(c.path) > 0:
		return c.errorAt(c.path, "not valid UTF-8")
	case key:
		return &keyError{rule: "a key of the request body is not valid UTF-8"}
	}
	return &keyError{rule: "the request body is not valid UTF-8"}
}

// skip reads a value without looking at its keys.
func (c *keyChecker) skip() error {
	switch c.peek() {
	case '"':
		_, _, err := c.str()
		return err
	case '{', '[':
		open := 0
		for c.pos < len(c.data) {
			switch c.data[c.pos] {
			case '"':
				if _, _, err := c.str(); err != nil {
					return err
				}
				continue
			case '{', '[':
				open++
			case '}', ']':
				if open--; open == 0 {
					c.pos++
					return nil
				}
			}
			c.pos++
		}
		return errNotJSON
	case 0:
		return errNotJSON
	}
	c.literal()
	return nil
}

// literal reads a number, true, false or null.
func (c *keyChecker) literal() {
	for c.pos < len(c.data) {
		switch c.data[c.pos] {
		case ',', ']', '}', ' ', '\t', '\n', '\r':
			return
		}
		c.pos++
	}
}

// str reads a string and returns its content as written, and whether it
// holds an escape.
func (c *keyChecker) str() ([]byte, bool, error) {
	c.pos++ // the opening quote
	start, escaped := c.pos, false
	for c.pos < len(c.data) {
		switch c.data[c.pos] {
		case '"':
			c.pos++
			return c.data[start : c.pos-1], escaped, nil
		case '\\':
			escaped = true
			c.pos++
		}
		c.pos++
	}
	return nil, false, errNotJSON
}

// object reads an object of shape s (a struct's or free keys).
func (c *keyChecker) object(s *shape, depth int) error {
	c.pos++
	var seen [2]uint64 // a struct's keys read, by index, when it has at most 128
	var seenMore map[int]bool
	var free map[string]bool // the keys read, when many
	keys := len(c.keys)
	defer func() { c.keys = c.keys[:keys] }()
	if c.peek() == '}' {
		c.pos++
		return nil
	}
	for {
		if c.peek() != '"' {
			return errNotJSON
		}
		raw, escaped, err := c.str()
		if err != nil {
			return err
		}
		key := raw
		if c.utf8 && !isASCII(raw) && !utf8.Valid(raw) {
			return c.invalid(true)
		}
		if escaped || !isASCII(raw) {
			// As the decoder reads it: escapes undone, what is not UTF-8
			// replaced.
			var k string
			if json.Unmarshal(c.data[c.pos-len(raw)-2:c.pos], &k) != nil {
				return errNotJSON
			}
			key = []byte(k)
		}
		if c.peek() != ':' {
			return errNotJSON
		}
		c.pos++
		elem := anyShape
		i, ok := 0, false
		if s.kind == shapeStruct {
			i, ok = s.fields[string(key)]
		}
		switch {
		case s.kind == shapeStruct && !ok:
			rule := unknownKey(s, string(key))
			if !c.unknownOK || rule != noSuchField {
				return c.refuse(key, rule)
			}
			if c.freeKey(key, keys, &free) {
				return c.refuse(key, "given twice")
			}
		case s.kind == shapeStruct:
			if i < 128 {
				if seen[i/64]&(1<<(i%64)) != 0 {
					return c.refuse(key, "given twice")
				}
				seen[i/64] |= 1 << (i % 64)
			} else {
				if seenMore[i] {
					return c.refuse(key, "given twice")
				}
				if seenMore == nil {
					seenMore = map[int]bool{}
				}
				seenMore[i] = true
			}
			elem = s.elems[i]
		default:
			if s.kind == shapeMap {
				elem = s.elem
			}
			if c.freeKey(key, keys, &free) {
				return c.refuse(key, "given twice")
			}
		}
		c.path = append(c.path, key)
		err = c.value(elem, depth+1)
		if err != nil {
			return err
		}
		c.path = c.path[:len(c.path)-1]
		switch c.peek() {
		case ',':
			c.pos++
		case '}':
			c.pos++
			return nil
		default:
			return errNotJSON
		}
	}
}

// freeKey notes key, a free key of the object being read, whose keys
// begin at c.keys[keys] (or are in *free, when many), and reports whether
// the object gave it already.
func (c *keyChecker) freeKey(key []byte, keys int, free *map[string]bool) bool {
	// A few keys are compared one by one; many are looked up.
	const few = 16
	if *free != nil {
		if (*free)[string(key)] {
			return true
		}
		(*free)[string(key)] = true
		return false
	}
	for _, k := range c.keys[keys:] {
		if string(k) == string(key) {
			return true
		}
	}
	c.keys = append(c.keys, key)
	if len(c.keys)-keys > few {
		*free = make(map[string]bool, 2*few)
		for _, k := range c.keys[keys:] {
			(*free)[string(k)] = true
		}
	}
	return false
}

// refuse returns the error for key, in the object being read.
func (c *keyChecker) refuse(key []byte, rule string) error {
	return c.errorAt(append(c.path[:len(c.path):len(c.path)], key), rule)
}

// errorAt returns the error for the value at path.
func (c *keyChecker) errorAt(path [][]byte, rule string) error {
	names := make([]string, len(path))
	for i, k := range path {
		names[i] = string(k)
	}
	return &keyError{path: names, rule: rule}
}

// unknownKey says why key is not one of s's: not a key at all, or a key
// spelled in another case.
func unknownKey(s *shape, key string) string {
	for _, name := range s.names {
		if strings.EqualFold(name, key) {
			return fmt.Sprintf("no such field; keys are case-sensitive: %q", name)
		}
	}
	return noSuchField
}

// noSuchField is the rule a key that fills no field breaks.
const noSuchField = "no such field"

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// Unmarshal decodes data, one JSON value, into v as DecodeJSON decodes a
// request body: keys given twice or not spelled exactly, unknown fields and
// trailing data refused. Its errors are encoding/json's, or an invalid
// *muster.Error; DecodeFailure words either.
func Unmarshal(data []byte, v any) error {
	if err := CheckKeys(data, reflect.TypeOf(v)); err != nil {
		return err
	}
	return decodeValue(data, v)
}
