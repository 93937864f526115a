package jsonhttp

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/musterhq/muster"
)

// longReply is a server whose replies are replyLen bytes long: an
// object whose one string is written a chunk at a time, so the server
// never holds more than a chunk of it. Each reply reports on sent
// whether it was sent whole, once its handler has returned.
func longReply(t *testing.T, sent chan<- bool) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		sent <- writeLong(w)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// replyLen is far more than the limit the tests set and than what the
// connection buffers between the two ends.
const replyLen = 64 << 20

func writeLong(w http.ResponseWriter) bool {
	if _, err := w.Write([]byte(`{"a":"`)); err != nil {
		return false
	}
	chunk := []byte(strings.Repeat("x", 32<<10))
	for n := 0; n < replyLen; n += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			return false
		}
	}
	_, err := w.Write([]byte(`"}`))
	return err == nil
}

// A reply longer than the request's MaxReply is refused once that much
// of it is read, strict or not, with an error that names the limit, and
// the rest is never read: a server that sends without end cannot make
// the client read for ever.
func TestDoRefusesAReplyOverMaxReply(t *testing.T) {
	const limit = 256 << 10
	sent := make(chan bool, 1)
	srv := longReply(t, sent)
	for _, strict := range []bool{true, false} {
		t.Run("strict="+strconv.FormatBool(strict), func(t *testing.T) {
			var out struct {
				A string `json:"a"`
			}
			err := Do(context.Background(), srv.Client(), Request{Method: http.MethodGet, URL: srv.URL + "/x", Out: &out,
				Strict: strict, MaxReply: limit})
			whole := <-sent
			if code := muster.ErrorCode(err); code != muster.ETOOLARGE {
				t.Fatalf("a reply over the limit: %v (code %s), want %s", err, code, muster.ETOOLARGE)
			}
			if msg := muster.ErrorMessage(err); !strings.Contains(msg, strconv.Itoa(limit)) || !strings.Contains(msg, "GET /x") {
				t.Errorf("message %q; want it to name the request and the limit of %d bytes", msg, limit)
			}
			if whole {
				t.Errorf("the server sent all %d bytes; want the client to stop reading at the limit", replyLen)
			}
		})
	}
}

// A reply of exactly MaxReply bytes is read.
func TestDoReadsAReplyOfMaxReply(t *testing.T) {
	body := `{"a":"` + strings.Repeat("x", 100) + `"}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(body))
	}))
	defer srv.Close()
	for _, strict := range []bool{true, false} {
		var out struct {
			A string `json:"a"`
		}
		err := Do(context.Background(), srv.Client(), Request{Method: http.MethodGet, URL: srv.URL, Out: &out,
			Strict: strict, MaxReply: int64(len(body))})
		if err != nil || len(out.A) != 100 {
			t.Errorf("strict=%t: a reply of exactly the limit: %v, read %d bytes of its string; want all 100", strict, err, len(out.A))
		}
	}
}

// Do tells a reply of success it could not take (ReplyError, its code
// kept) from a refusal the server answered and from no answer at all.
func TestDoTellsAReplyThatCannotBeTaken(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/cut":
			w.Write([]byte(`{"a":`))
		case "/twice":
			w.Write([]byte(`{"a":"x","a":"y"}`))
		case "/refused":
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`{"error":{"code":"conflict","message":"no"}}`))
		}
	}))
	defer srv.Close()
	var out struct {
		A string `json:"a"`
	}
	cases := 0
	for _, tc := range []struct {
		path       string
		unreadable bool
		code       string
	}{
		{"/cut", true, muster.EINTERNAL},
		{"/twice", true, muster.EINVALID},
		{"/refused", false, muster.ECONFLICT},
	} {
		cases++
		err := Do(context.Background(), srv.Client(), Request{Method: http.MethodGet, URL: srv.URL + tc.path, Out: &out, Strict: true})
		var re *ReplyError
		if errors.As(err, &re) != tc.unreadable || muster.ErrorCode(err) != tc.code {
			t.Errorf("%s: %v (code %s, a reply that cannot be taken: %v), want code %s, %v", tc.path, err, muster.ErrorCode(err), errors.As(err, &re), tc.code, tc.unreadable)
		}
	}
	srv.Close()
	err := Do(context.Background(), srv.Client(), Request{Method: http.MethodGet, URL: srv.URL + "/cut", Out: &out})
	var re *ReplyError
	var te *TransportError
	if errors.As(err, &re) || !errors.As(err, &te) {
		t.Errorf("no answer: %v, want a transport error only", err)
	}
	if cases != 3 {
		t.Errorf("%d cases ran, want 3", cases)
	}
}
