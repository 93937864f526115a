package jsonhttp

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
)

// An error reply that says when to try again keeps its code, and gives
// the wait: in seconds, or as a date measured against the reply's own
// Date, not the client's clock.
func TestDecodeErrorRetryAfter(t *testing.T) {
	date := "Sat, 05 Dec 2026 22:00:00 GMT"
	for _, tc := range []struct {
		name   string
		header http.Header
		after  time.Duration
		ok     bool
	}{
		{"no header", http.Header{}, 0, false},
		{"seconds", http.Header{"Retry-After": {"7"}}, 7 * time.Second, true},
		{"a date", http.Header{"Retry-After": {"Sat, 05 Dec 2026 22:01:30 GMT"}, "Date": {date}}, 90 * time.Second, true},
		{"a date past", http.Header{"Retry-After": {"Sat, 05 Dec 2026 21:00:00 GMT"}, "Date": {date}}, 0, true},
		{"a date with no Date", http.Header{"Retry-After": {"Sat, 05 Dec 2026 22:01:30 GMT"}}, 0, true},
		{"more than a day", http.Header{"Retry-After": {"999999999999"}}, 24 * time.Hour, true},
		{"negative", http.Header{"Retry-After": {"-1"}}, 0, false},
		{"not a wait", http.Header{"Retry-After": {"soon"}}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: http.StatusTooManyRequests, Header: tc.header,
				Body: io.NopCloser(strings.NewReader(`{"error": {"code": "rate_limited", "message": "busy"}}`))}
			err := DecodeError(resp)
			if code := muster.ErrorCode(err); code != muster.ERATELIMIT {
				t.Errorf("code %q, want %q", code, muster.ERATELIMIT)
			}
			after, ok := RetryAfter(err)
			if after != tc.after || ok != tc.ok {
				t.Errorf("RetryAfter: %s %v, want %s %v", after, ok, tc.after, tc.ok)
			}
			var rl *RetryLater
			if errors.As(err, &rl) != tc.ok {
				t.Errorf("a *RetryLater: %v, want %v", !tc.ok, tc.ok)
			}
		})
	}
}
