package httpapi_test

import (
	"net/http/httptest"
	"testing"

	"github.com/musterhq/muster/internal/httpapi"
)

// The scheme of an Authorization header is named in any case (RFC 9110,
// 11.1): "bearer" and "BEARER" are the Bearer scheme. Other schemes, and
// a Bearer header without a token, carry none.
func TestBearerToken(t *testing.T) {
	cases := []struct {
		header, token string
		ok            bool
	}{
		{"Bearer mat_x", "mat_x", true},
		{"bearer mat_x", "mat_x", true},
		{"BEARER  mat_x ", "mat_x", true},
		{"Bearer ", "", false},
		{"Bearer", "", false},
		{"Basic dXNlcjpwYXNz", "", false},
		{"", "", false},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/api/v1/targets", nil)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		token, ok := httpapi.BearerToken(r)
		if ok != c.ok || (ok && token != c.token) {
			t.Errorf("Authorization %q: %q, %v; want %q, %v", c.header, token, ok, c.token, c.ok)
		}
	}
}
