package jsonhttp

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/musterhq/muster"
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

// A reply's keys are held to one spelling as a request's are, but a key
// of no field, which a newer sender may add, is let through once.
func TestCheckReplyKeys(t *testing.T) {
	type item struct {
		ID   int               `json:"id"`
		Tags map[string]string `json:"tags,omitempty"`
	}
	type reply struct {
		Name  string `json:"name"`
		Items []item `json:"items"`
	}
	for _, tc := range []struct {
		name, data, want string // want "": taken
	}{
		{"each key once", `{"name":"a","items":[{"id":1,"tags":{"x":"1","X":"2"}}]}`, ""},
		{"a key of no field", `{"name":"a","later":{"b":[1]},"items":[]}`, ""},
		{"keys of no field, many", `{"a1":1,"a2":1,"a3":1,"a4":1,"a5":1,"a6":1,"a7":1,"a8":1,"a9":1,"a10":1,"a11":1,"a12":1,"a13":1,"a14":1,"a15":1,"a16":1,"a17":1,"a18":1,"name":"a"}`, ""},
		{"a field given twice", `{"name":"a","items":[],"name":"b"}`, "name: given twice"},
		{"a key of no field given twice", `{"later":1,"name":"a","later":2}`, "later: given twice"},
		{"a key of no field given twice, among many", `{"a1":1,"a2":1,"a3":1,"a4":1,"a5":1,"a6":1,"a7":1,"a8":1,"a9":1,"a10":1,"a11":1,"a12":1,"a13":1,"a14":1,"a15":1,"a16":1,"a17":1,"a18":1,"a1":2}`, "a1: given twice"},
		{"a key given twice inside a key of no field", `{"later":{"b":1,"b":2}}`, "later.b: given twice"},
		{"a field in another case", `{"Name":"a"}`, `Name: no such field; keys are case-sensitive: "name"`},
		{"a nested field given twice", `{"items":[{"id":1,"id":2}]}`, "items.id: given twice"},
		{"a map key given twice", `{"items":[{"id":1,"tags":{"x":"1","x":"2"}}]}`, "items.tags.x: given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckReplyKeys([]byte(tc.data), reflect.TypeFor[*reply]())
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("%s: %v, want it taken", tc.data, err)
			case tc.want != "" && (muster.ErrorCode(err) != muster.EINVALID || err.Error() != tc.want):
				t.Errorf("%s: %v, want %s %q", tc.data, err, muster.EINVALID, tc.want)
			}
		})
	}
	// CheckKeys still refuses a key of no field, after CheckReplyKeys let
	// one through with a checker both share.
	if err := CheckKeys([]byte(`{"later":1}`), reflect.TypeFor[*reply]()); err == nil || err.Error() != "later: no such field" {
		t.Errorf("CheckKeys: %v, want later: no such field", err)
	}
}
