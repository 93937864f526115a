package httpapi_test

import (
	"context"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
)

// A reply the connection cuts short (the master stopping as it answered)
// is the master unavailable, as no answer is: a command that waits carries
// on, where it ended on an internal error. A complete reply it cannot
// decode is not.
func TestClientTakesAReplyCutShortAsNoAnswer(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("job") == "whole" {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"not": "a list"}`))
			return
		}
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n[{\"job\": \"a\"")
		buf.Flush()
		conn.Close()
	}))
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	c, err := httpapi.NewClient(srv.URL, "mat_x", roots)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Runs(context.Background(), []muster.RunRef{{Target: "web1", RunID: "r1"}}, 0)
	if code := muster.ErrorCode(err); code != muster.EUNAVAILABLE || !strings.Contains(muster.ErrorMessage(err), "cannot reach the master at "+strings.TrimPrefix(srv.URL, "https://")) {
		t.Errorf("a reply cut short: %v (code %s), want %s saying the master cannot be reached", err, code, muster.EUNAVAILABLE)
	}
	_, _, _, err = c.WatchRuns(context.Background(), httpapi.RunsFilter{Job: "whole"}, "", 0)
	if code := muster.ErrorCode(err); code != muster.EINTERNAL {
		t.Errorf("a whole reply that is not a list of runs: %v (code %s), want %s", err, code, muster.EINTERNAL)
	}
}
