package jsonhttp

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// hasDuplicateKey reports whether an object in data, valid JSON, holds a
// key twice, read the slow way: a token at a time.
func hasDuplicateKey(t *testing.T, data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var walk func() bool
	walk = func() bool {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("%q: %v", data, err)
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			dup := false
			for dec.More() {
				key, err := dec.Token()
				if err != nil {
					t.Fatalf("%q: %v", data, err)
				}
				dup = dup || seen[key.(string)]
				seen[key.(string)] = true
				dup = walk() || dup
			}
			dec.Token()
			return dup
		case json.Delim('['):
			dup := false
			for dec.More() {
				dup = walk() || dup
			}
			dec.Token()
			return dup
		}
		return false
	}
	return walk()
}

// CheckKeys finds a key given twice wherever it is, however it is written,
// and nothing else in a value whose keys are free; it never fails on what
// is not JSON.
func FuzzCheckKeys(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"a":2}`, `{"a":{"b":[{"c":1},{"c":2,"c":3}]}}`, `{"a":"\"}","b":"\\","a\\"":1}`,
		`{"\u0061":1,"a":2}`, `[{"x":[],"y":{}},{"x":null}]`, `{"a":1e5,"b":-0.5,"c":true,"d":null}`, `{"a" : 1 , "b":{ } }`,
		"{\"\xff\":1,\"\xfe\":2}", `{"é":1,"\u00e9":2}`, `{"a":1,`, `"x"`, `1`, `{"a":"\ud800","a":"x"}`} {
		f.Add([]byte(s))
	}
	anyType := reflect.TypeFor[any]()
	f.Fuzz(func(t *testing.T, data []byte) {
		err := CheckKeys(data, anyType)
		if !json.Valid(data) {
			return
		}
		if dup := hasDuplicateKey(t, data); dup != (err != nil) {
			t.Errorf("%q: a key twice: %v; CheckKeys: %v", data, dup, err)
		}
	})
}
