package jsonhttp_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/jsonhttp"
)

// A body that does not decode is refused with a message that names the
// field, when there is one, and the rule, in the API's words: not Go's
// type names, and not a bare EOF.
func TestDecodeJSONNamesTheFieldAndRule(t *testing.T) {
	type request struct {
		TTL    int64           `json:"ttl_seconds"`
		Small  int8            `json:"small"`
		Count  uint16          `json:"count"`
		Window muster.Duration `json:"window"`
		Inner  struct {
			On bool `json:"on"`
		} `json:"inner"`
		Names []string `json:"names"`
	}
	for _, tc := range []struct{ body, want string }{
		{``, "the request body is empty; it must be a JSON object"},
		{`{"ttl_seconds": 5`, "the request body ends before its JSON value does"},
		{`{"ttl_seconds": 5,}`, "the request body is not valid JSON: invalid character '}' looking for beginning of object key string (at byte 19)"},
		{`[]`, "the request body must be an object, not an array"},
		{`{"ttl_seconds": "5"}`, "ttl_seconds: a whole number, not a string"},
		{`{"ttl_seconds": 1e20}`, "ttl_seconds: a whole number, not 1e20"},
		{`{"ttl_seconds": 1.5}`, "ttl_seconds: a whole number, not 1.5"},
		{`{"ttl_seconds": 99999999999999999999}`, "ttl_seconds: a whole number from -9223372036854775808 to 9223372036854775807, not 99999999999999999999"},
		{`{"small": 300}`, "small: a whole number from -128 to 127, not 300"},
		{`{"count": -1}`, "count: a whole number from 0 to 65535, not -1"},
		{`{"count": 1e3}`, "count: a whole number, not 1e3"},
		{`{"window": "-1s"}`, `window: a duration of 0 or more, such as "90s" or "15m", not "-1s"`},
		{`{"window": "soon"}`, `window: a duration of 0 or more, such as "90s" or "15m", not "soon"`},
		{`{"window": 90}`, `window: a duration of 0 or more, such as "90s" or "15m", not 90`},
		{`{"inner": {"on": 1}}`, "inner.on: true or false, not a number"},
		{`{"inner": []}`, "inner: an object, not an array"},
		{`{"names": "web1"}`, "names: a list, not a string"},
		{`{"bogus": 1}`, "bogus: no such field"},
	} {
		var v request
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
		err := jsonhttp.DecodeJSON(httptest.NewRecorder(), r, 1<<20, &v)
		if muster.ErrorCode(err) != muster.EINVALID || muster.ErrorMessage(err) != tc.want {
			t.Errorf("%s: %v\n want invalid: %s", tc.body, err, tc.want)
		}
	}
	// null is no value: the field stays as it was.
	v := request{Window: muster.Duration(5)}
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"window": null}`))
	if err := jsonhttp.DecodeJSON(httptest.NewRecorder(), r, 1<<20, &v); err != nil || v.Window != 5 {
		t.Errorf(`{"window": null}: %v, window %v; want it left as it was`, err, v.Window)
	}
}

// own decodes itself; its keys are its own to check.
type own struct{ raw string }

func (o *own) UnmarshalJSON(b []byte) error {
	o.raw = string(b)
	return nil
}

// A key given twice in one object, or spelled otherwise than the API
// spells it, is refused naming it: encoding/json alone would take the last
// of two values, and fill "name" from "NAME" or "Name", where a proxy or
// validator in front of the API may read another value than the master.
func TestDecodeJSONRefusesKeysNotSpelledExactly(t *testing.T) {
	type step struct {
		Name string `json:"name"`
	}
	type embedded struct {
		Note string `json:"note"`
	}
	type request struct {
		embedded
		Name  string            `json:"name"`
		Steps []step            `json:"steps"`
		Env   map[string]string `json:"env"`
		Any   any               `json:"any"`
		Own   own               `json:"own"`
		Raw   json.RawMessage   `json:"raw"`
		Plain int
	}
	for _, tc := range []struct{ body, want string }{
		{`{"name": "a", "name": "b"}`, "name: given twice"},
		{`{"name": "a", "n\u0061me": "b"}`, "name: given twice"},
		{`{"name": "a", "Name": "b"}`, `Name: no such field; keys are case-sensitive: "name"`},
		{`{"NAME": "a"}`, `NAME: no such field; keys are case-sensitive: "name"`},
		{`{"nAme": "a"}`, `nAme: no such field; keys are case-sensitive: "name"`},
		{`{"ſteps": []}`, `ſteps: no such field; keys are case-sensitive: "steps"`},
		{`{"Note": "a"}`, `Note: no such field; keys are case-sensitive: "note"`},
		{`{"plain": 1}`, `plain: no such field; keys are case-sensitive: "Plain"`},
		{`{"steps": [{"name": "a"}, {"name": "b", "name": "c"}]}`, "steps.name: given twice"},
		{`{"steps": [{"Name": "a"}]}`, `steps.Name: no such field; keys are case-sensitive: "name"`},
		{`{"steps": [{"bogus": "a"}]}`, "steps.bogus: no such field"},
		{`{"env": {"A": "1", "a": "2", "A": "3"}}`, "env.A: given twice"},
		{`{"any": {"x": {"y": 1, "y": 2}}}`, "any.x.y: given twice"},
		{`{"any": [{"k": 1, "k": 1}]}`, "any.k: given twice"},
		{`{"raw": {"k": {"j": 1, "j": 2}}}`, "raw.k.j: given twice"},
		{`{"own": {"k": 1, "k": 1, "o": [{"}": "]"}]}, "name": "a", "name": "b"}`, "name: given twice"},
	} {
		var v request
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
		err := jsonhttp.DecodeJSON(httptest.NewRecorder(), r, 1<<20, &v)
		if muster.ErrorCode(err) != muster.EINVALID || muster.ErrorMessage(err) != tc.want {
			t.Errorf("%s: %v\n want invalid: %s", tc.body, err, tc.want)
		}
	}
	// Keys spelled exactly, escaped or not, in any order, and map keys that
	// differ only in case, are taken.
	var v request
	body := `{"own": {"K": [1, "x"], "k": {}}, "Plain": 1, "env": {"A": "1", "a": "2"}, "n\u0061me": "x", "note": "n", "steps": [{"name": "a"}, {"name": "b"}], "any": {"Y": 1, "y": 2}}`
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	if err := jsonhttp.DecodeJSON(httptest.NewRecorder(), r, 1<<20, &v); err != nil || v.Name != "x" || v.Note != "n" || v.Plain != 1 ||
		len(v.Steps) != 2 || v.Env["a"] != "2" || v.Own.raw != `{"K": [1, "x"], "k": {}}` {
		t.Errorf("%s: %+v, %v", body, v, err)
	}
}

// A string that is not valid UTF-8 is refused naming its field, not
// stored with U+FFFD in place of its bytes (what encoding/json does): a
// name, a location, a script changed on the way in.
func TestDecodeJSONRefusesStringsNotUTF8(t *testing.T) {
	type step struct {
		Shell string `json:"shell"`
	}
	type request struct {
		Name  string            `json:"name"`
		Steps []step            `json:"steps"`
		Env   map[string]string `json:"env"`
	}
	for _, tc := range []struct{ body, want string }{
		{"{\"name\": \"d\xffb\"}", "name: not valid UTF-8"},
		{"{\"steps\": [{\"shell\": \"echo caf\xe9\"}]}", "steps.shell: not valid UTF-8"},
		{"{\"env\": {\"A\": \"\xc3\"}}", "env.A: not valid UTF-8"},
		{"{\"env\": {\"\xc3\": \"x\"}}", "env: a key is not valid UTF-8"},
		{"\"\xff\"", "the request body is not valid UTF-8"},
	} {
		var v request
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
		err := jsonhttp.DecodeJSON(httptest.NewRecorder(), r, 1<<20, &v)
		if muster.ErrorCode(err) != muster.EINVALID || muster.ErrorMessage(err) != tc.want {
			t.Errorf("%q: %v\n want invalid: %s", tc.body, err, tc.want)
		}
	}
	var v request
	body := `{"name": "caf\u00e9 é 😀", "env": {"é": "\ud83d\ude00"}}`
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	if err := jsonhttp.DecodeJSON(httptest.NewRecorder(), r, 1<<20, &v); err != nil || v.Name != "café é 😀" || v.Env["é"] != "😀" {
		t.Errorf("%s: %+v, %v", body, v, err)
	}
}
