package console_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/catalog"
)

// A page's live region reloads itself with htmx, whose requests follow a
// redirect unseen: when the session has ended, such a request is told to
// take the whole page to the sign-in form, which comes back to the page.
func TestLiveRefreshAfterTheSessionEndedGoesToSignIn(t *testing.T) {
	s := newSite(t)
	c, _ := s.signIn(catalog.RoleReader)
	s.clock.Advance(catalog.SessionTTL + time.Minute)
	req, err := http.NewRequest(http.MethodGet, s.srv.URL+"/targets/web1?x=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("HX-Request", "true")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := "/login?next=" + url.QueryEscape("/targets/web1?x=1")
	if got := resp.Header.Get("HX-Redirect"); got != want || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a live refresh after the session ended: %d, HX-Redirect %q (Location %q), want 401 with HX-Redirect %q",
			resp.StatusCode, got, resp.Header.Get("Location"), want)
	}
}

// Sign out works whatever became of the session: one that already ended
// still clears the cookie and goes to the sign-in form.
func TestSignOutAfterTheSessionEnded(t *testing.T) {
	s := newSite(t)
	c, token := s.signIn(catalog.RoleReader)
	s.clock.Advance(catalog.SessionTTL + time.Minute)
	status, loc := s.redirect(c, "/logout", url.Values{"csrf": {token}})
	if status != http.StatusSeeOther || loc != "/login" {
		t.Fatalf("sign out of an ended session: %d to %q, want 303 to /login", status, loc)
	}
}

// A sign-out form sent by another site, which the browser sends without
// the session's cookie, clears nothing; one sent with a cookie whose
// session ended clears it.
func TestSignOutClearsOnlyACookieItWasSent(t *testing.T) {
	s := newSite(t)
	cleared := func(c *http.Client) bool {
		t.Helper()
		resp, err := c.PostForm(s.srv.URL+"/logout", url.Values{})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign out: %d, want 303", resp.StatusCode)
		}
		for _, ck := range resp.Cookies() {
			if ck.Name == "muster_session" && ck.MaxAge < 0 {
				return true
			}
		}
		return false
	}
	if cleared(s.browser()) {
		t.Error("a sign-out without the cookie cleared it")
	}
	c, _ := s.signIn(catalog.RoleReader)
	s.clock.Advance(catalog.SessionTTL + time.Minute)
	if !cleared(c) {
		t.Error("a sign-out with the cookie of an ended session left it")
	}
}
