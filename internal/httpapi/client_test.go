package httpapi_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/testenv"
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

// A name is sent as one segment of the path, whatever it is: "." and ".."
// are not taken for the path's own dot segments, which would send the
// request to another route (DELETE /api/v1/targets/. to DELETE
// /api/v1/targets, which deletes every target), and an empty name is
// refused before anything is sent.
func TestClientSendsANameAsOneSegment(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	ctx := context.Background()
	checked := 0
	for _, name := range []string{".", ".."} {
		err := env.Client.DeleteTarget(ctx, name, true)
		wantRefusal(t, fmt.Sprintf("deleting target %q", name), err, muster.ENOTFOUND, fmt.Sprintf("%q", name))
		_, err = env.Client.RevokeAPIKey(ctx, name)
		wantRefusal(t, fmt.Sprintf("revoking key %q", name), err, muster.ENOTFOUND, fmt.Sprintf("no API key named %q", name))
		_, err = env.Client.Job(ctx, name)
		wantRefusal(t, fmt.Sprintf("reading job %q", name), err, muster.ENOTFOUND, fmt.Sprintf("no job named %q", name))
		checked++
	}
	err := env.Client.DeleteTarget(ctx, "", true)
	wantRefusal(t, "deleting the target named nothing", err, muster.EINVALID, "a name is required")
	_, err = env.Client.RevokeAPIKey(ctx, "")
	wantRefusal(t, "revoking the key named nothing", err, muster.EINVALID, "a name is required")
	if checked != 2 {
		t.Fatalf("checked %d names, want 2", checked)
	}
	if ts, err := env.Client.Targets(ctx, ""); err != nil || len(ts) != 1 || len(ts[0].Flags) != 0 {
		t.Errorf("targets after: %+v, %v; want web1 as it was", ts, err)
	}
}
