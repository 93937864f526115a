package jsonhttp_test

import (
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
		TTL    int             `json:"ttl_seconds"`
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
