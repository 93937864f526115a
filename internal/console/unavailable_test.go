package console_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
	"github.com/musterhq/muster/internal/httpapi"
)

// downStore is a catalog store whose database stops answering when the
// test says so, as PostgreSQL's does when its server goes away.
type downStore struct {
	catalog.Store
	down atomic.Bool
}

func (s *downStore) FindConsoleSession(ctx context.Context, hash string) (catalog.ConsoleTokenRow, error) {
	if s.down.Load() {
		return catalog.ConsoleTokenRow{}, muster.Errorf(muster.EUNAVAILABLE, "the catalog database cannot be reached")
	}
	return s.Store.FindConsoleSession(ctx, hash)
}

func (s *downStore) FindConsoleLink(ctx context.Context, hash string) (catalog.ConsoleTokenRow, error) {
	if s.down.Load() {
		return catalog.ConsoleTokenRow{}, muster.Errorf(muster.EUNAVAILABLE, "the catalog database cannot be reached")
	}
	return s.Store.FindConsoleLink(ctx, hash)
}

// A login link opened while the catalog does not answer says so in a 503,
// rather than that the link is not valid.
func TestLoginLinkWithTheCatalogDownIsUnavailable(t *testing.T) {
	store := &downStore{Store: catalogtest.SQLite.Open(t)}
	s := newSiteOn(t, store)
	store.down.Store(true)
	status, body := s.get(s.browser(), httpapi.LoginPath+"?secret=mll_x")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "the catalog database cannot be reached") {
		t.Fatalf("a login link with the catalog down: %d, want 503 saying the catalog cannot be reached:\n%s", status, body)
	}
}

// While the catalog's database does not answer, a signed-in page says so
// in a 503, and a live refresh gets that 503 (which the page shows above
// what it last showed, and keeps trying): neither is sent to the sign-in
// form, as if the session had ended, which would lose the page and could
// not sign anyone in either.
func TestCatalogDownIsUnavailableNotSignedOut(t *testing.T) {
	store := &downStore{Store: catalogtest.SQLite.Open(t)}
	s := newSiteOn(t, store)
	c, token := s.signIn(catalog.RoleOperator)
	store.down.Store(true)
	for _, tc := range []struct {
		name, method string
		live         bool
	}{
		{"a page", http.MethodGet, false},
		{"a live refresh", http.MethodGet, true},
		{"a form", http.MethodPost, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/fleet"
			var body io.Reader
			if tc.method == http.MethodPost {
				path, body = "/targets/web1/poll", strings.NewReader(url.Values{"csrf": {token}}.Encode())
			}
			req, err := http.NewRequest(tc.method, s.srv.URL+path, body)
			if err != nil {
				t.Fatal(err)
			}
			if body != nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if tc.live {
				req.Header.Set("HX-Request", "true")
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Location") != "" || resp.Header.Get("HX-Redirect") != "" ||
				!strings.Contains(string(b), "the catalog database cannot be reached") {
				t.Fatalf("%s %s with the catalog down: %d, Location %q, HX-Redirect %q:\n%s\nwant 503 saying the catalog cannot be reached",
					tc.method, path, resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("HX-Redirect"), b)
			}
			// The page offers to try again, not to sign in: the session
			// may well hold.
			if strings.Contains(string(b), `href="/login"`) || (tc.method == http.MethodGet && !strings.Contains(string(b), `href="/fleet">Try again`)) {
				t.Errorf("%s %s with the catalog down offers:\n%s\nwant to try again, not to sign in", tc.method, path, b)
			}
		})
	}
}

func (s *downStore) Update(ctx context.Context, fn func(catalog.Tx) error) error {
	if s.down.Load() {
		return muster.Errorf(muster.EUNAVAILABLE, "the catalog database cannot be reached")
	}
	return s.Store.Update(ctx, fn)
}

// Signing in while the catalog's database does not answer is refused with
// 503 and why, not 401 as if the key were wrong.
func TestSignInWithTheCatalogDownIsUnavailable(t *testing.T) {
	store := &downStore{Store: catalogtest.SQLite.Open(t)}
	s := newSiteOn(t, store)
	c := s.browser()
	_, body := s.get(c, "/login")
	token := csrfField.FindStringSubmatch(body)[1]
	store.down.Store(true)
	status, body := s.post(c, "/login", url.Values{"csrf": {token}, "key": {s.keys[catalog.RoleReader]}})
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "the catalog database cannot be reached") {
		t.Fatalf("sign in with the catalog down: %d, want 503 saying the catalog cannot be reached:\n%s", status, body)
	}
}

// Sign out while the catalog does not answer says that it could not sign
// out, rather than clear the cookie alone and leave the session usable
// for hours by whoever else holds it.
func TestSignOutWithTheCatalogDownIsUnavailable(t *testing.T) {
	store := &downStore{Store: catalogtest.SQLite.Open(t)}
	s := newSiteOn(t, store)
	c, token := s.signIn(catalog.RoleReader)
	store.down.Store(true)
	status, body := s.post(c, "/logout", url.Values{"csrf": {token}})
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "the catalog database cannot be reached") {
		t.Fatalf("sign out with the catalog down: %d, want 503 saying the catalog cannot be reached:\n%s", status, body)
	}
	store.down.Store(false)
	if status, _ := s.get(c, "/fleet"); status != http.StatusOK {
		t.Fatalf("the fleet once the catalog answers again: %d, want 200: the session was not ended, and its cookie is kept to end it", status)
	}
}
