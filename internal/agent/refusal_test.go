package agent

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/jsonhttp"
	"github.com/musterhq/muster/internal/master"
)

// heldRequest sends a request to the master at url with hc whose body
// does not arrive: the master holds it in progress until release, which
// ends it.
func heldRequest(t *testing.T, hc *http.Client, url string) (release func()) {
	t.Helper()
	body, w := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(agentproto.HeaderProtocol, strconv.Itoa(agentproto.Version))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := hc.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	// The first bytes reach the handler: the request is in progress.
	if _, err := w.Write([]byte(`{"runs": [`)); err != nil {
		t.Fatal(err)
	}
	released := false
	release = func() {
		if !released {
			released = true
			w.CloseWithError(io.ErrUnexpectedEOF)
			<-done
		}
	}
	t.Cleanup(release)
	return release
}

// A master that has a target's upload in progress refuses the next one
// for now, 429 with Retry-After, which reaches the uploader as a refusal
// saying when to come back (retryLoop waits that long); the upload is
// taken once the other is done.
func TestUploadRefusedForNowSaysWhenToComeBack(t *testing.T) {
	tm := startTestMaster(t, func(c *master.Config) { c.Limits.UploadWait = time.Millisecond })
	m := uploadTarget(t, tm)
	ctx := context.Background()
	if err := m.store.saveRun(ctx, finishedRun("later", 1), nil); err != nil {
		t.Fatal(err)
	}
	release := heldRequest(t, m.client.http.Load(), tm.URL+agentproto.PathRuns)
	var err error
	// The held upload takes its turn once its request reaches the
	// handler, which the test cannot see from here: until then the next
	// upload goes through, and is sent again.
	waitFor(t, time.Minute, "an upload refused for now", func() bool {
		if err = m.uploadOnce(ctx); err == nil {
			if serr := m.store.exec(ctx, `UPDATE runs SET uploaded_revision = 0`); serr != nil {
				t.Fatal(serr)
			}
		}
		return err != nil
	})
	after, ok := jsonhttp.RetryAfter(err)
	if code := muster.ErrorCode(err); code != muster.ERATELIMIT || !ok || after != time.Second {
		t.Fatalf("upload: %v (code %s, Retry-After %s %v), want %s with Retry-After 1 s", err, code, after, ok, muster.ERATELIMIT)
	}
	if d := retryDelay(m.cfg.MaxBackoff, 0, err); d < time.Second {
		t.Errorf("the retry loop would come back after %s, before the 1 s the master asked for", d)
	}
	release()
	waitFor(t, time.Minute, "the upload taken", func() bool { return m.uploadOnce(ctx) == nil })
	if n := m.store.spoolDepth(ctx); n != 0 {
		t.Errorf("spool depth %d, want 0", n)
	}
}

// refusals is a log handler that counts the records saying a master
// refused for now, and signals each.
type refusals struct{ c chan struct{} }

func (h refusals) Enabled(context.Context, slog.Level) bool { return true }
func (h refusals) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "the master refused for now; trying again" {
		h.c <- struct{}{}
	}
	return nil
}
func (h refusals) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h refusals) WithGroup(string) slog.Handler      { return h }

// Enlistment refused for now by the master's admission control (429,
// Retry-After: too many requests without credentials in progress) is sent
// again after the wait asked for, with the same token, and succeeds.
func TestEnlistWaitsForAMasterThatRefusesForNow(t *testing.T) {
	tm := startTestMaster(t, func(c *master.Config) { c.Limits.PerAddress, c.Limits.Unauthenticated = 1, 1 })
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tm.CA.Pool()}}}
	defer hc.CloseIdleConnections()
	release := heldRequest(t, hc, tm.URL+agentproto.PathEnlist)
	// The held request has its slot once another is refused.
	waitFor(t, time.Minute, "the held request in progress", func() bool {
		resp, err := hc.Get(tm.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusTooManyRequests
	})
	refused := refusals{c: make(chan struct{}, 16)}
	done := make(chan error, 1)
	go func() {
		_, err := Enlist(context.Background(), EnlistOptions{MasterURL: tm.URL, Token: tm.token(t, "web1"), Name: "web1",
			DataDir: t.TempDir(), Log: slog.New(refused)})
		done <- err
	}()
	select {
	case <-refused.c:
	case err := <-done:
		t.Fatalf("enlistment ended without a refusal: %v", err)
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("enlist: %v", err)
	}
	if n := len(refused.c); n > 0 {
		t.Errorf("%d more refusals after the held request ended", n)
	}
}

// A refusal that asks for a wait longer than enlistment waits is the
// answer: untilAccepted returns it at once, as it returns any error that
// is not a refusal for now.
func TestUntilAcceptedGivesUp(t *testing.T) {
	long := &jsonhttp.RetryLater{Err: muster.Errorf(muster.ERATELIMIT, "wait a minute"), After: time.Minute}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"a refusal for longer than the wait", long},
		{"an error that is no refusal", muster.Errorf(muster.EUNAUTHORIZED, "the token is not valid")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := untilAccepted(t.Context(), quiet(), 5, 10*time.Second, func(context.Context) error { calls++; return tc.err })
			if calls != 1 || err != tc.err {
				t.Errorf("%d calls, returned %v; want one call returning %v", calls, err, tc.err)
			}
		})
	}
}
