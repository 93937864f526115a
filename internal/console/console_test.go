package console_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
	"github.com/musterhq/muster/internal/console"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/pki"
	"github.com/musterhq/muster/internal/testenv"
)

// site is the console and the API on a real catalog (SQLite in a temporary
// directory), served by httptest, with a clock the test moves.
type site struct {
	t     *testing.T
	srv   *httptest.Server
	db    *catalog.Catalog
	clock *testenv.Clock
	keys  map[string]string // role → secret of a key with that role
	ids   map[string]catalog.TargetIdentity
	poked []int64
}

func newSite(t *testing.T) *site {
	t.Helper()
	return newSiteOn(t, catalogtest.SQLite.Open(t))
}

// newSiteOn is newSite on store, which a test may wrap to make it fail.
func newSiteOn(t *testing.T, store catalog.Store) *site {
	t.Helper()
	ctx := context.Background()
	s := &site{t: t, clock: &testenv.Clock{}, keys: map[string]string{}, ids: map[string]catalog.TargetIdentity{}}
	db, err := catalog.Open(ctx, store, catalog.Options{Now: s.clock.Now, Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s.db = db
	master := muster.Actor{Kind: muster.ActorMaster, Name: "test"}
	for _, role := range []string{catalog.RoleAdmin, catalog.RoleOperator, catalog.RoleReader} {
		secret := httpapi.NewAPIKeySecret()
		if _, err := db.CreateAPIKey(ctx, catalog.NewAPIKey{Name: role + "-key", Role: role}, pki.HashSecret(secret), master); err != nil {
			t.Fatal(err)
		}
		s.keys[role] = secret
	}
	for _, name := range []string{"web1", "web2"} {
		if _, err := db.CreateEnlistToken(ctx, "hash-"+name, name, time.Hour, master); err != nil {
			t.Fatal(err)
		}
		id, err := db.Enlist(ctx, catalog.Enlistment{TokenHash: "hash-" + name, Name: name, UID: "uid-" + name},
			func(string) (catalog.IssuedCert, error) {
				return catalog.IssuedCert{Serial: "serial-" + name, NotAfter: time.Now().Add(time.Hour)}, nil
			})
		if err != nil {
			t.Fatal(err)
		}
		s.ids[name] = id
	}
	mux := http.NewServeMux()
	api := &httpapi.Server{DB: db, Poker: pokeFunc(func(ids []int64) bool { s.poked = append(s.poked, ids...); return true }),
		Now: s.clock.Now, Log: slog.New(slog.DiscardHandler)}
	api.Routes(mux)
	web := &console.Server{DB: db, API: api, Poker: api.Poker, Log: testenv.Logger(t)}
	if err := web.Routes(mux); err != nil {
		t.Fatal(err)
	}
	s.srv = httptest.NewServer(web.WithPages(mux))
	t.Cleanup(s.srv.Close)
	return s
}

type pokeFunc func([]int64) bool

func (f pokeFunc) Poke(ids []int64) bool { return f(ids) }

// browser is a client with a cookie jar that does not follow redirects.
func (s *site) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// get fetches a page and returns its status and body.
func (s *site) get(c *http.Client, path string) (int, string) {
	s.t.Helper()
	resp, err := c.Get(s.srv.URL + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// post submits a form and returns the status and body.
func (s *site) post(c *http.Client, path string, form url.Values) (int, string) {
	s.t.Helper()
	resp, err := c.PostForm(s.srv.URL+path, form)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// linkForm opens a login link in c, as its person does, and returns the
// form its page's button sends.
func (s *site) linkForm(c *http.Client, secret string) url.Values {
	s.t.Helper()
	_, body := s.get(c, httpapi.LoginPath+"?secret="+url.QueryEscape(secret))
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		s.t.Fatalf("the login link's page has no csrf field:\n%s", body)
	}
	return url.Values{"csrf": {m[1]}, "secret": {secret}}
}

// openLink signs in with a login link in c, and returns the status and
// the Location.
func (s *site) openLink(c *http.Client, secret string) (int, string) {
	s.t.Helper()
	resp, err := c.PostForm(s.srv.URL+httpapi.LoginPath, s.linkForm(c, secret))
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// signIn signs a new browser in with the key of role through the form,
// and returns it with the session's CSRF token.
func (s *site) signIn(role string) (*http.Client, string) {
	s.t.Helper()
	c := s.browser()
	_, body := s.get(c, "/login")
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		s.t.Fatalf("the sign-in form has no csrf field:\n%s", body)
	}
	status, body := s.post(c, "/login", url.Values{"csrf": {m[1]}, "key": {s.keys[role]}, "next": {"/fleet"}})
	if status != http.StatusSeeOther {
		s.t.Fatalf("sign in as %s: %d, want 303\n%s", role, status, body)
	}
	status, body = s.get(c, "/fleet")
	if status != http.StatusOK {
		s.t.Fatalf("fleet after signing in: %d\n%s", status, body)
	}
	m = csrfField.FindStringSubmatch(body)
	if m == nil {
		s.t.Fatalf("the fleet page has no csrf field:\n%s", body)
	}
	return c, m[1]
}

func TestSignedOutGoesToSignIn(t *testing.T) {
	s := newSite(t)
	c := s.browser()
	resp, err := c.Get(s.srv.URL + "/jobs?group=web")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.Header.Get("Location"), "/login?next="+url.QueryEscape("/jobs?group=web"); resp.StatusCode != http.StatusSeeOther || got != want {
		t.Fatalf("GET /jobs signed out: %d to %q, want 303 to %q", resp.StatusCode, got, want)
	}
	if status, _ := s.post(c, "/targets/web1/pause", url.Values{}); status != http.StatusUnauthorized {
		t.Fatalf("POST signed out: %d, want 401", status)
	}
}

func TestSignInRefusesBadKeysAndForeignForms(t *testing.T) {
	s := newSite(t)
	c := s.browser()
	_, body := s.get(c, "/login")
	token := csrfField.FindStringSubmatch(body)[1]
	for _, tc := range []struct {
		name   string
		forged bool // the form's token is not the cookie's
		key    string
		want   int
	}{
		{"wrong key", false, "mat_nope", http.StatusUnauthorized},
		{"no key", false, "", http.StatusBadRequest},
		{"form from elsewhere", true, s.keys[catalog.RoleAdmin], http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			csrf := token
			if tc.forged {
				csrf = "forged"
			}
			status, body := s.post(c, "/login", url.Values{"csrf": {csrf}, "key": {tc.key}})
			if status != tc.want {
				t.Fatalf("got %d, want %d\n%s", status, tc.want, regexp.MustCompile(`role="alert">[^<]*`).FindString(body))
			}
			if strings.Contains(body, "Sign out") {
				t.Fatal("the refusal signed the browser in")
			}
			// Each refusal sets a new form token; read it for the next case.
			_, b := s.get(c, "/login")
			token = csrfField.FindStringSubmatch(b)[1]
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	s := newSite(t)
	c, _ := s.signIn(catalog.RoleReader)
	for _, path := range []string{"/login", "/fleet", "/assets/htmx.min.js", "/jobs/nope", "DELETE /fleet"} {
		method, target, ok := strings.Cut(path, " ")
		if !ok {
			method, target = http.MethodGet, path
		}
		req, err := http.NewRequest(method, s.srv.URL+target, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if method == http.MethodDelete && resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s: %d, want 405", path, resp.StatusCode)
		}
		for k, want := range map[string]string{
			"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
		} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", path, k, got, want)
			}
		}
	}
	// The session cookie is out of scripts' reach and never sent by
	// another site.
	resp, err := s.browser().Get(s.srv.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("sign-in cookie %+v: want one, HttpOnly and SameSite=Strict", cookies)
	}
	// The session's is Lax: a link to the console followed from another
	// site (a chat, a mail) opens signed in; its forms still need the
	// session's token.
	c = s.browser()
	_, body := s.get(c, "/login")
	resp, err = c.PostForm(s.srv.URL+"/login", url.Values{"csrf": {csrfField.FindStringSubmatch(body)[1]}, "key": {s.keys[catalog.RoleReader]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "muster_session" {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode {
		t.Fatalf("session cookie %+v: want HttpOnly and SameSite=Lax", session)
	}
}

// The assets are served one by one: their directory is not listed.
func TestAssetsAreNotListed(t *testing.T) {
	s := newSite(t)
	for _, path := range []string{"/assets/", "/assets/?C=M;O=D"} {
		if status, body := s.get(s.browser(), path); status != http.StatusNotFound || strings.Contains(body, `href="htmx.min.js"`) {
			t.Errorf("%s: %d, want 404 listing nothing\n%s", path, status, body)
		}
	}
	if status, _ := s.get(s.browser(), "/assets/htmx.min.js"); status != http.StatusOK {
		t.Errorf("an asset: %d, want 200", status)
	}
}

// Pages hold no inline script: the policy would block it, and the
// console must work under it.
func TestNoInlineScript(t *testing.T) {
	s := newSite(t)
	c, _ := s.signIn(catalog.RoleAdmin)
	inline := regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]|\son[a-z]+="`)
	pages := []string{"/fleet", "/jobs", "/targets/web1", "/events", "/alerts", "/audit", "/keys", "/targets/web1/delete"}
	for _, path := range pages {
		status, body := s.get(c, path)
		if status != http.StatusOK {
			t.Fatalf("%s: %d\n%s", path, status, body)
		}
		if m := inline.FindString(body); m != "" {
			t.Errorf("%s has inline script: %q", path, m)
		}
	}
	t.Logf("%d pages checked", len(pages))
}

func TestCSRF(t *testing.T) {
	s := newSite(t)
	c, token := s.signIn(catalog.RoleOperator)
	for _, tc := range []struct {
		name string
		form url.Values
	}{
		{"no token", url.Values{}},
		{"another session's token", url.Values{"csrf": {strings.Repeat("0", len(token))}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := s.post(c, "/targets/web1/pause", tc.form)
			if status != http.StatusForbidden || !strings.Contains(body, "csrf") {
				t.Fatalf("got %d, want 403 naming the csrf token\n%s", status, body)
			}
		})
	}
	target, err := s.db.FindTarget(context.Background(), "web1")
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(target.Flags, muster.FlagPaused) {
		t.Fatalf("web1 flags %v after refused pauses, want it not paused", target.Flags)
	}
	if status, body := s.post(c, "/targets/web1/pause", url.Values{"csrf": {token}, "back": {"/fleet"}}); status != http.StatusSeeOther {
		t.Fatalf("pause with the token: %d\n%s", status, body)
	}
	entries, err := s.db.FindAudit(context.Background(), catalog.AuditFilter{Target: "web1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 || entries[0].Action != muster.AuditTargetPause || entries[0].Actor.Name != "operator-key" {
		t.Fatalf("audit of the pause: %+v, want target.pause by operator-key first", entries)
	}
}

// A reader's session shows no control that changes anything, and the
// server refuses what a reader forges, whatever the page offered.
func TestReaderRefused(t *testing.T) {
	s := newSite(t)
	c, token := s.signIn(catalog.RoleReader)
	for _, path := range []string{"/fleet", "/targets/web1", "/jobs"} {
		_, body := s.get(c, path)
		if n := strings.Count(body, `method="post"`); n != 1 || !strings.Contains(body, `action="/logout"`) {
			t.Errorf("a reader's %s has %d forms that post, want only sign out", path, n)
		}
		if strings.Contains(body, "Delete…") {
			t.Errorf("a reader's %s links to deleting a target", path)
		}
	}
	forged := []string{"/targets/web1/pause", "/targets/web1/poll", "/targets/web1/resync", "/targets/web1/delete",
		"/jobs/any/start", "/jobs/any/stop", "/instructions/web1/1/retry", "/keys"}
	for _, path := range forged {
		status, body := s.post(c, path, url.Values{"csrf": {token}, "confirm": {"web1"}, "name": {"x"}, "role": {"admin"}, "batch": {"1"}})
		if status != http.StatusForbidden {
			t.Errorf("reader POST %s: %d, want 403\n%s", path, status, body)
		}
	}
	if len(s.poked) != 0 {
		t.Errorf("a reader's forged poll reached targets %v", s.poked)
	}
	t.Logf("%d forged posts refused", len(forged))
	// An operator may pause but not delete or manage keys.
	op, optoken := s.signIn(catalog.RoleOperator)
	for path, want := range map[string]int{"/targets/web2/delete": http.StatusForbidden, "/keys": http.StatusForbidden, "/targets/web2/pause": http.StatusSeeOther} {
		if status, body := s.post(op, path, url.Values{"csrf": {optoken}, "confirm": {"web2"}, "name": {"x"}, "role": {"reader"}}); status != want {
			t.Errorf("operator POST %s: %d, want %d\n%s", path, status, want, body)
		}
	}
}

func TestSessionExpires(t *testing.T) {
	s := newSite(t)
	c, _ := s.signIn(catalog.RoleReader)
	s.clock.Advance(catalog.SessionTTL - time.Minute)
	if status, _ := s.get(c, "/fleet"); status != http.StatusOK {
		t.Fatalf("a minute before the session ends: %d, want 200", status)
	}
	s.clock.Advance(2 * time.Minute)
	resp, err := c.Get(s.srv.URL + "/fleet")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Fatalf("after the session ended: %d to %q, want 303 to the sign-in page", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestRevokingTheKeyEndsItsSessions(t *testing.T) {
	s := newSite(t)
	c, token := s.signIn(catalog.RoleOperator)
	admin, adminToken := s.signIn(catalog.RoleAdmin)
	if status, body := s.post(admin, "/keys/operator-key/revoke", url.Values{"csrf": {adminToken}}); status != http.StatusSeeOther {
		t.Fatalf("revoke from the console: %d\n%s", status, body)
	}
	status, body := s.post(c, "/targets/web1/pause", url.Values{"csrf": {token}})
	if status != http.StatusUnauthorized || !strings.Contains(body, "revoked") {
		t.Fatalf("a revoked key's session: %d, want 401 saying it was revoked\n%s", status, body)
	}
	entries, err := s.db.FindAudit(context.Background(), catalog.AuditFilter{Actor: "admin-key"})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Action != muster.AuditKeyRevoke {
		t.Fatalf("audit by admin-key: %+v, want the revocation", entries)
	}
}

func TestLoginLink(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	admin, err := s.db.AuthenticateAPIKey(ctx, pki.HashSecret(s.keys[catalog.RoleAdmin]))
	if err != nil {
		t.Fatal(err)
	}
	actor := muster.Actor{Kind: muster.ActorKey, Name: admin.Name, Role: admin.Role}
	if _, err := s.db.CreateLoginLink(ctx, "h", catalog.KeyIdentity{Name: "reader-key", Role: catalog.RoleReader, ID: 3}, catalog.RoleAdmin, time.Minute, actor); muster.ErrorCode(err) != muster.EFORBIDDEN {
		t.Fatalf("a reader's link as admin: %v, want forbidden", err)
	}
	if _, err := s.db.CreateLoginLink(ctx, "h", admin, catalog.RoleReader, 48*time.Hour, actor); muster.ErrorCode(err) != muster.EINVALID {
		t.Fatalf("a link for two days: %v, want invalid", err)
	}
	secret := "mll_" + pki.RandomSecret()
	if _, err := s.db.CreateLoginLink(ctx, pki.HashSecret(secret), admin, catalog.RoleReader, time.Minute, actor); err != nil {
		t.Fatal(err)
	}
	// Opened, as a link preview opens it, the link shows a page and
	// spends nothing.
	// The page says whom the link signs in as, in what role.
	opened := 0
	for i := range 2 {
		status, body := s.get(s.browser(), httpapi.LoginPath+"?secret="+secret)
		if status != http.StatusOK || !strings.Contains(body, `value="`+secret+`"`) {
			t.Fatalf("opening the link, time %d: %d, want the page that signs in with it\n%s", i+1, status, body)
		}
		if !strings.Contains(body, "as API key <strong>admin-key</strong> with the <strong>reader</strong> role") {
			t.Fatalf("opening the link, time %d: the page does not say it signs in as admin-key, reader:\n%s", i+1, body)
		}
		opened++
	}
	if opened != 2 {
		t.Fatalf("the link was opened %d times, want 2", opened)
	}
	// Its form, sent from another site (no double-submit cookie), is
	// refused and spends nothing either.
	if status, body := s.post(s.browser(), httpapi.LoginPath, url.Values{"secret": {secret}, "csrf": {"forged"}}); status != http.StatusForbidden || !strings.Contains(body, "came from elsewhere") {
		t.Fatalf("the link's form from another site: %d, want 403\n%s", status, body)
	}
	c := s.browser()
	if status, loc := s.openLink(c, secret); status != http.StatusSeeOther || loc != "/fleet" {
		t.Fatalf("signing in with the link: %d to %q, want 303 to /fleet", status, loc)
	}
	status, body := s.get(c, "/fleet")
	if status != http.StatusOK || !strings.Contains(body, "admin-key") || !strings.Contains(body, `class="role">reader`) {
		t.Fatalf("the link's session: %d, want admin-key in the reader role\n%s", status, body)
	}
	// The link works once: opened again, its page says so and has no
	// button, and its form sent all the same is refused.
	if status, body := s.get(s.browser(), httpapi.LoginPath+"?secret="+secret); status != http.StatusUnauthorized || !strings.Contains(body, "works once") || csrfField.MatchString(body) {
		t.Fatalf("the link opened again: %d, want 401 saying it works once, without a form\n%s", status, body)
	}
	c = s.browser()
	form := s.linkForm(c, mintLink(t, s, admin, actor))
	form.Set("secret", secret)
	if status, body := s.post(c, httpapi.LoginPath, form); status != http.StatusUnauthorized || !strings.Contains(body, "works once") {
		t.Fatalf("the link used again: %d\n%s", status, body)
	}
	// A link with no secret says what is missing.
	if status, body := s.get(s.browser(), httpapi.LoginPath); status != http.StatusBadRequest || !strings.Contains(body, "secret: the link has none") {
		t.Fatalf("a link without its secret: %d\n%s", status, body)
	}
	// An expired link does not open.
	late := "mll_" + pki.RandomSecret()
	if _, err := s.db.CreateLoginLink(ctx, pki.HashSecret(late), admin, "", time.Minute, actor); err != nil {
		t.Fatal(err)
	}
	s.clock.Advance(2 * time.Minute)
	if status, body := s.get(s.browser(), httpapi.LoginPath+"?secret="+late); status != http.StatusUnauthorized || !strings.Contains(body, "expired") || csrfField.MatchString(body) {
		t.Fatalf("an expired link: %d, want 401 saying it expired, without a form\n%s", status, body)
	}
}

// mintLink makes a new login link for the reader role as key, and returns
// its secret.
func mintLink(t *testing.T, s *site, key catalog.KeyIdentity, actor muster.Actor) string {
	t.Helper()
	secret := "mll_" + pki.RandomSecret()
	if _, err := s.db.CreateLoginLink(context.Background(), pki.HashSecret(secret), key, catalog.RoleReader, time.Minute, actor); err != nil {
		t.Fatal(err)
	}
	return secret
}

// A login link opened in one tab leaves the sign-in form open in another
// working, and the other way round: each page's form has a cookie of its
// own.
func TestLoginLinkAndSignInFormInTwoTabs(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	admin, err := s.db.AuthenticateAPIKey(ctx, pki.HashSecret(s.keys[catalog.RoleAdmin]))
	if err != nil {
		t.Fatal(err)
	}
	actor := muster.Actor{Kind: muster.ActorKey, Name: admin.Name, Role: admin.Role}

	c := s.browser()
	_, body := s.get(c, "/login")
	signIn := csrfField.FindStringSubmatch(body)[1]
	s.linkForm(c, mintLink(t, s, admin, actor)) // another tab
	if status, body := s.post(c, "/login", url.Values{"csrf": {signIn}, "key": {s.keys[catalog.RoleReader]}}); status != http.StatusSeeOther {
		t.Fatalf("the sign-in form after a link opened in another tab: %d, want 303\n%s", status, body)
	}

	c = s.browser()
	link := s.linkForm(c, mintLink(t, s, admin, actor))
	s.get(c, "/login") // another tab
	if status, loc := s.redirect(c, httpapi.LoginPath, link); status != http.StatusSeeOther || loc != "/fleet" {
		t.Fatalf("the link's button after the sign-in form opened in another tab: %d to %q, want 303 to /fleet", status, loc)
	}
}

// redirect submits a form with c's cookies and returns the status and the
// Location. It goes through the transport alone: Go's client refuses a
// Location it cannot parse, where a browser strips what it does not want
// and follows the rest.
func (s *site) redirect(c *http.Client, path string, form url.Values) (int, string) {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, ck := range c.Jar.Cookies(req.URL) {
		req.AddCookie(ck)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// offSite are next and back fields that a browser would follow to another
// host, were they sent as the Location: it drops tab, LF and CR, and reads
// a backslash as a slash. The form carries a tab as %09, which the server
// decodes; "/%09/…" is a tab encoded twice.
var offSite = []string{
	"//evil.example/fleet",
	"https://evil.example",
	`/\evil.example`,
	`/fleet\..\\evil.example`,
	"/\t/evil.example/phish",
	"/\n/evil.example/phish",
	"/\r/evil.example/phish",
	"/%09/evil.example/phish",
}

// After signing in, the form goes back only to a page of the console,
// never to another site.
func TestSignInGoesOnlyToLocalPages(t *testing.T) {
	s := newSite(t)
	want := map[string]string{"/jobs?failed=1": "/jobs?failed=1", "/fleet?group=eu+west&page=2": "/fleet?group=eu+west&page=2"}
	for _, next := range offSite {
		want[next] = "/fleet"
	}
	for next, want := range want {
		t.Run(strconv.Quote(next), func(t *testing.T) {
			c := s.browser()
			_, body := s.get(c, "/login")
			token := csrfField.FindStringSubmatch(body)[1]
			status, got := s.redirect(c, "/login", url.Values{"csrf": {token}, "key": {s.keys[catalog.RoleReader]}, "next": {next}})
			if status != http.StatusSeeOther || got != want {
				t.Errorf("next=%q: %d to %q, want 303 to %q", next, status, got, want)
			}
		})
	}
}

// A form's POST goes back to the page named in its back field only if that
// page is on this site; otherwise to the page of what it acted on.
func TestFormsGoBackOnlyToLocalPages(t *testing.T) {
	s := newSite(t)
	c, token := s.signIn(catalog.RoleOperator)
	want := map[string]string{"/fleet?group=eu+west": "/fleet?group=eu+west"}
	for _, back := range offSite {
		want[back] = "/targets/web1"
	}
	for back, want := range want {
		t.Run(strconv.Quote(back), func(t *testing.T) {
			status, got := s.redirect(c, "/targets/web1/poll", url.Values{"csrf": {token}, "back": {back}})
			if status != http.StatusSeeOther || got != want {
				t.Errorf("back=%q: %d to %q, want 303 to %q", back, status, got, want)
			}
		})
	}
}

// A target that left the fleet is not among the active ones; the status
// filter lists it apart, with no control that acts on a target.
func TestFleetListsTargetsThatLeft(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	web2, err := s.db.AuthenticateTarget(ctx, "serial-web2")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.DefectTarget(ctx, web2.ID, muster.Actor{Kind: muster.ActorTarget, Name: "web2"}); err != nil {
		t.Fatal(err)
	}
	c, _ := s.signIn(catalog.RoleAdmin)
	_, body := s.get(c, "/fleet")
	if !strings.Contains(body, `data-target="web1"`) || strings.Contains(body, `data-target="web2"`) {
		t.Errorf("the fleet lists the defected web2 among its targets, or not web1:\n%s", body)
	}
	if !strings.Contains(body, `<option value="defected">defected (1)</option>`) {
		t.Errorf("the status filter does not count one defected target:\n%s", body)
	}
	status, body := s.get(c, "/fleet?status=defected")
	if status != http.StatusOK {
		t.Fatalf("/fleet?status=defected: %d\n%s", status, body)
	}
	row := regexp.MustCompile(`(?s)<tr data-target="web2">.*?</tr>`).FindString(body)
	if row == "" || strings.Contains(body, `data-target="web1"`) {
		t.Fatalf("the defected list does not hold web2 alone:\n%s", body)
	}
	if strings.Contains(row, `method="post"`) || strings.Contains(row, "Delete…") {
		t.Errorf("a defected target's row has controls:\n%s", row)
	}
	if status, _ := s.get(c, "/fleet?status=asleep"); status != http.StatusBadRequest {
		t.Errorf("/fleet?status=asleep: %d, want 400", status)
	}
}

// A browser asking for a page nothing serves gets the console's page
// saying so, in the console's layout, with the security headers; a
// program asking for it, and any path under /api/, gets the plain answer.
func TestPageNotFound(t *testing.T) {
	s := newSite(t)
	c, _ := s.signIn(catalog.RoleOperator)
	fetch := func(c *http.Client, path, accept string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, s.srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	resp, body := fetch(c, "/jobz", browserAccept)
	if resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, "there is no page at /jobz") || !strings.Contains(body, `href="/jobs"`) ||
		resp.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("a browser's GET /jobz: %d %s, CSP %q:\n%s\nwant 404, the console's page naming the path, with its navigation",
			resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Security-Policy"), body)
	}
	// Signed out: the same page, offering to sign in.
	resp, body = fetch(s.browser(), "/jobz", browserAccept)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, `href="/login"`) {
		t.Errorf("a signed-out browser's GET /jobz: %d:\n%s\nwant 404 offering to sign in", resp.StatusCode, body)
	}
	for _, p := range []struct{ path, accept, want string }{
		{"/jobz", "", "404 page not found\n"},
		{"/jobz", "application/json", "404 page not found\n"},
	} {
		resp, body := fetch(c, p.path, p.accept)
		if resp.StatusCode != http.StatusNotFound || body != p.want {
			t.Errorf("GET %s with Accept %q: %d %q, want 404 %q", p.path, p.accept, resp.StatusCode, body, p.want)
		}
	}
	resp, body = fetch(c, "/api/v1/nosuch", browserAccept)
	if resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("a browser's GET /api/v1/nosuch: %d %s %q, want the API's 404 in JSON", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}
