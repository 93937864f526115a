package master

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/pki"
)

// heldRequest is an enlistment from addr whose body has not arrived yet.
type heldRequest struct {
	body *io.PipeWriter
	done chan struct{}
}

// hold sends an enlistment from addr to the master's handler and leaves
// it reading its body.
func hold(m *Main, addr string) heldRequest {
	pr, pw := io.Pipe()
	r := httptest.NewRequest(http.MethodPost, agentproto.PathEnlist, pr)
	r.ContentLength = 2
	r.RemoteAddr = addr
	r.Header.Set(agentproto.HeaderProtocol, "1")
	h := heldRequest{body: pw, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		m.srv.Handler.ServeHTTP(httptest.NewRecorder(), r)
	}()
	return h
}

// Requests without credentials are capped per address and in all; beyond a
// cap they are answered 429 at once, and their connection closed. Targets
// and operators are not counted.
func TestUnauthenticatedRequestsAreCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := testMaster(t, func(c *Config) { c.Limits.PerAddress = 3; c.Limits.Unauthenticated = 5 })
		tg := enlist(t, m, "web1")
		var held []heldRequest
		for range 3 {
			held = append(held, hold(m, "192.0.2.1:1"))
		}
		for range 2 {
			held = append(held, hold(m, "192.0.2.2:1"))
		}
		synctest.Wait() // all five are reading their bodies

		refused := func(addr, why string) {
			t.Helper()
			w := serveFrom(m, addr, nil, http.MethodPost, agentproto.PathEnlist, agentproto.EnlistRequest{})
			if w.Code != http.StatusTooManyRequests || errorCode(t, w) != muster.ERATELIMIT || w.Header().Get("Connection") != "close" || w.Header().Get("Retry-After") != "1" {
				t.Errorf("%s: %d %s (Connection: %q, Retry-After %q), want 429, Retry-After 1 and the connection closed", why, w.Code, w.Body, w.Header().Get("Connection"), w.Header().Get("Retry-After"))
			}
		}
		refused("192.0.2.1:2", "a fourth request from one address")
		refused("192.0.2.3:1", "a sixth request in all")
		if w := serve(m, tg.tls, http.MethodGet, agentproto.PathTime, nil); w.Code != http.StatusOK {
			t.Errorf("a target's request with the caps full: %d %s, want 200", w.Code, w.Body)
		}
		r := httptest.NewRequest(http.MethodGet, "/api/v1/targets", nil)
		r.RemoteAddr = "192.0.2.1:3"
		r.Header.Set("Authorization", "Bearer "+m.AdminToken)
		w := httptest.NewRecorder()
		m.srv.Handler.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Errorf("an operator's request with the caps full: %d %s, want 200", w.Code, w.Body)
		}

		// A slot freed is taken again.
		held[0].body.Write([]byte("{}"))
		held[0].body.Close()
		<-held[0].done
		if w := serveFrom(m, "192.0.2.1:2", nil, http.MethodPost, agentproto.PathEnlist, agentproto.EnlistRequest{}); w.Code == http.StatusTooManyRequests {
			t.Errorf("a request from an address with a slot free: %d %s", w.Code, w.Body)
		}
		for _, h := range held[1:] {
			h.body.Close()
			<-h.done
		}
	})
}

// A body larger than any request without credentials takes is refused
// before it is read.
func TestUnauthenticatedBodyOverTheLimit(t *testing.T) {
	m := testMaster(t, nil)
	big := make([]byte, maxAnonymousBody+1)
	w := serve(m, nil, http.MethodPost, agentproto.PathEnlist, big)
	if w.Code != http.StatusRequestEntityTooLarge || errorCode(t, w) != muster.ETOOLARGE {
		t.Errorf("%d %s, want 413", w.Code, w.Body)
	}
}

// A person signed in to the web console is an operator too: their pages,
// and the live refresh each open page makes every two seconds, are not
// counted against the caps on requests without credentials, nor is each
// answered on a connection closed after it.
func TestConsoleSessionsAreNotCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := testMaster(t, func(c *Config) { c.Limits.PerAddress = 1; c.Limits.Unauthenticated = 1 })
		secret := pki.RandomSecret()
		if _, _, err := m.Catalog.StartSession(context.Background(), pki.HashSecret(m.AdminToken), pki.HashSecret(secret), "test"); err != nil {
			t.Fatal(err)
		}
		held := hold(m, "192.0.2.1:1")
		synctest.Wait() // it holds the one slot
		r := httptest.NewRequest(http.MethodGet, "/fleet", nil)
		r.RemoteAddr = "192.0.2.1:2"
		r.AddCookie(&http.Cookie{Name: "muster_session", Value: secret})
		w := httptest.NewRecorder()
		m.srv.Handler.ServeHTTP(w, r)
		if w.Code != http.StatusOK || w.Header().Get("Connection") == "close" {
			t.Errorf("a signed-in console page with the caps full: %d (Connection: %q) %.200s, want 200 on a connection kept open",
				w.Code, w.Header().Get("Connection"), w.Body)
		}
		held.body.Close()
		<-held.done
	})
}

// The sign-in form and a login link's button are served without a
// session, reading their form first: a session cookie sent with them,
// which nothing checks, does not take them past the caps on requests
// without credentials.
func TestSignInWithASessionCookieIsCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := testMaster(t, func(c *Config) { c.Limits.PerAddress = 1; c.Limits.Unauthenticated = 1 })
		held := hold(m, "192.0.2.1:1")
		synctest.Wait() // it holds the one slot
		for _, path := range []string{"/login", httpapi.LoginPath} {
			r := httptest.NewRequest(http.MethodPost, path, strings.NewReader("csrf=x&key=y&secret=z"))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.RemoteAddr = "192.0.2.1:2"
			r.AddCookie(&http.Cookie{Name: "muster_session", Value: "not-a-session"})
			w := httptest.NewRecorder()
			m.srv.Handler.ServeHTTP(w, r)
			if w.Code != http.StatusTooManyRequests || errorCode(t, w) != muster.ERATELIMIT {
				t.Errorf("POST %s with a made-up session cookie, the caps full: %d %.200s, want 429 %s", path, w.Code, w.Body, muster.ERATELIMIT)
			}
		}
		held.body.Close()
		<-held.done
	})
}
