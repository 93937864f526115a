package testenv

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// WebhookRequest is a request a WebhookReceiver got, and what it answered.
type WebhookRequest struct {
	Header http.Header
	Body   []byte
	Status int
}

// WebhookReceiver is an HTTP server on 127.0.0.1 that keeps every request
// it gets and answers 204, or the statuses it is told to fail with first.
type WebhookReceiver struct {
	// URL is where it listens, e.g. http://127.0.0.1:41234/hook.
	URL string

	mu   sync.Mutex
	reqs []WebhookRequest
	fail []int
}

// NewWebhookReceiver starts a receiver; it stops when the test ends.
func NewWebhookReceiver(t testing.TB) *WebhookReceiver {
	t.Helper()
	w := &WebhookReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(w.serve))
	t.Cleanup(srv.Close)
	w.URL = srv.URL + "/hook"
	return w
}

// FailNext makes the next requests get these statuses, one each, before
// the receiver accepts again.
func (w *WebhookReceiver) FailNext(statuses ...int) {
	w.mu.Lock()
	w.fail = append(w.fail, statuses...)
	w.mu.Unlock()
}

// Requests returns the requests received so far, oldest first.
func (w *WebhookReceiver) Requests() []WebhookRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]WebhookRequest(nil), w.reqs...)
}

// Accepted returns the requests it answered with 204.
func (w *WebhookReceiver) Accepted() []WebhookRequest {
	var out []WebhookRequest
	for _, r := range w.Requests() {
		if r.Status == http.StatusNoContent {
			out = append(out, r)
		}
	}
	return out
}

func (w *WebhookReceiver) serve(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.mu.Lock()
	status := http.StatusNoContent
	if len(w.fail) > 0 {
		status, w.fail = w.fail[0], w.fail[1:]
	}
	w.reqs = append(w.reqs, WebhookRequest{Header: r.Header.Clone(), Body: body, Status: status})
	w.mu.Unlock()
	rw.WriteHeader(status)
}
