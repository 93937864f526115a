package jsonhttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
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

// records is a log handler that keeps the level and message of each
// record.
type records struct{ got *[]string }

func (h records) Enabled(context.Context, slog.Level) bool { return true }
func (h records) Handle(_ context.Context, r slog.Record) error {
	*h.got = append(*h.got, r.Level.String()+" "+r.Message)
	return nil
}
func (h records) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h records) WithGroup(string) slog.Handler      { return h }

// A request its client gave up on is answered 499 canceled and logged at
// debug level, not as an internal error; an internal error is logged at
// error level, through the logger given, and its text is not sent.
func TestWriteErrorLevels(t *testing.T) {
	canceledCtx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		err      error
		status   int
		code     string
		logged   string
		leakText bool
	}{
		{"canceled by its client", canceledCtx, fmt.Errorf("query: %w", context.Canceled), StatusClientClosedRequest, muster.ECANCELED, "DEBUG request canceled by its client", false},
		{"internal", context.Background(), errors.New("disk on fire"), http.StatusInternalServerError, muster.EINTERNAL, "ERROR request failed", false},
		{"invalid", context.Background(), muster.Errorf(muster.EINVALID, "name: required"), http.StatusBadRequest, muster.EINVALID, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodGet, "/api/v1/jobs", nil).WithContext(tc.ctx)
			WriteError(w, r, slog.New(records{&got}), tc.err)
			if w.Code != tc.status {
				t.Errorf("status %d, want %d", w.Code, tc.status)
			}
			var body ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != tc.code {
				t.Errorf("body %s (%v), want code %q", w.Body, err, tc.code)
			}
			if strings.Contains(w.Body.String(), tc.err.Error()) != tc.leakText {
				t.Errorf("body %s: the error's text sent %v, want %v", w.Body, !tc.leakText, tc.leakText)
			}
			want := []string{}
			if tc.logged != "" {
				want = append(want, tc.logged)
			}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("logged %q, want %q", got, want)
			}
		})
	}
}
