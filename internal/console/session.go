package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/jsonhttp"
	"github.com/musterhq/muster/internal/pki"
)

// Cookies. The session cookie holds the session's secret; the master keeps
// its hash. The sign-in cookie holds a random token the sign-in form
// repeats (double submit), so that no other site can sign a browser in;
// the link cookie holds the same for the page a login link opens. They are
// two, so that a login link opened in one tab leaves a sign-in form open
// in another working.
const (
	sessionCookie = "muster_session"
	signInCookie  = "muster_signin"
	linkCookie    = "muster_link"
)

// csrfToken is the CSRF token of a session: derived from the session's
// secret, so a page of another site, which cannot read the cookie, cannot
// know it, and the master stores nothing more.
func csrfToken(secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("muster console csrf"))
	return hex.EncodeToString(m.Sum(nil))
}

// checkCSRF refuses a POST whose csrf field (or X-CSRF-Token header) is not
// want.
func checkCSRF(r *http.Request, want string) error {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	if want == "" || !hmac.Equal([]byte(got), []byte(want)) {
		return muster.Errorf(muster.EFORBIDDEN, "csrf: the form's token does not match your session; reload the page and try again")
	}
	return nil
}

// ClaimsSession reports whether r carries a console session cookie, not
// yet checked: the master counts such a request among those with
// credentials, as it does one with a bearer token, and the console refuses
// it before it reads its form when the session does not hold. The
// sign-in form and a login link's button are served without a session,
// reading their form first: a cookie sent with them claims nothing.
func ClaimsSession(r *http.Request) bool {
	if p := r.URL.Path; p == "/login" || p == httpapi.LoginPath {
		return false
	}
	c, err := r.Cookie(sessionCookie)
	return err == nil && c.Value != ""
}

// session returns the view of a request's signed-in session.
func (s *Server) session(r *http.Request) (*view, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, muster.Errorf(muster.EUNAUTHORIZED, "you are signed out; sign in with an API key or a login link")
	}
	k, err := s.DB.AuthenticateSession(r.Context(), pki.HashSecret(c.Value))
	if err != nil {
		return nil, err
	}
	if k.Scope.Limited() {
		return nil, scopedRefusal(k.Name)
	}
	token := csrfToken(c.Value)
	return &view{s: s, Key: k, CSRF: token, csrf: token}, nil
}

// scopedRefusal refuses a scoped key: the console shows the whole fleet.
func scopedRefusal(name string) error {
	return muster.Errorf(muster.EFORBIDDEN, "API key %q is scoped, and the console shows the whole fleet: sign in with a key without scopes, or use the API and CLI, which keep to the scope", name)
}

// setSession sets the session cookie for secret, until expires. It is
// SameSite=Lax: a link to a page of the console, followed from a chat or
// a mail, opens it signed in, where Strict would show the sign-in form
// each time; another site's form, script or frame still gets no session
// (every page that changes anything is a POST carrying the session's
// CSRF token, and no page may be framed).
func (s *Server) setSession(w http.ResponseWriter, secret string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: secret, Path: "/", Expires: expires,
		HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteLaxMode})
}

// newSignInToken sets a new double-submit token in cookie (signInCookie
// or linkCookie), for the form of the sign-in page or of a login link's
// page to repeat, and returns it.
func (s *Server) newSignInToken(w http.ResponseWriter, cookie string) string {
	token := pki.RandomSecret()
	http.SetCookie(w, &http.Cookie{Name: cookie, Value: token, Path: "/login", MaxAge: 3600,
		HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteStrictMode})
	return token
}

// signInTokenSent reports whether a sign-in form repeats the token of
// cookie: it came from a page of this console, not another site.
func signInTokenSent(r *http.Request, cookie string) bool {
	c, err := r.Cookie(cookie)
	return err == nil && c.Value != "" && hmac.Equal([]byte(c.Value), []byte(r.PostFormValue("csrf")))
}

// loginPage is the sign-in form's data.
type loginPage struct {
	Next    string
	Token   string
	Message string
}

// loginForm shows the sign-in form, with a fresh double-submit token.
func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	s.showLogin(w, r, http.StatusOK, "")
}

func (s *Server) showLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	token := s.newSignInToken(w, signInCookie)
	next := r.URL.Query().Get("next")
	if next == "" {
		next = r.PostFormValue("next")
	}
	if !localPath(next) {
		next = "/fleet"
	}
	v := &view{s: s, Title: "Sign in", Data: loginPage{Next: next, Token: token, Message: msg}}
	if err := s.render(w, status, "login", v); err != nil {
		s.Log.Error("console", "path", r.URL.Path, "err", err)
	}
}

// login signs in with an API key typed into the form.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if !signInTokenSent(r, signInCookie) {
		s.showLogin(w, r, http.StatusForbidden, "The sign-in form expired or came from elsewhere; try again.")
		return
	}
	key := strings.TrimSpace(r.PostFormValue("key"))
	if key == "" {
		s.showLogin(w, r, http.StatusBadRequest, "key: paste an API key (muster apikey create makes one).")
		return
	}
	secret := pki.RandomSecret()
	k, expires, err := s.DB.StartSession(r.Context(), pki.HashSecret(key), pki.HashSecret(secret), httpapi.Source(r))
	if err == nil && k.Scope.Limited() {
		s.DB.EndSession(r.Context(), pki.HashSecret(secret))
		err = scopedRefusal(k.Name)
	}
	if err != nil {
		// In the status the API would answer with: 401 for a key that is
		// not valid, 503 while the catalog does not answer.
		status := jsonhttp.StatusCode(muster.ErrorCode(err))
		if status >= 500 {
			s.Log.Error("console sign-in", "err", err)
		}
		s.showLogin(w, r, status, muster.ErrorMessage(err))
		return
	}
	s.setSession(w, secret, expires)
	next := r.PostFormValue("next")
	if !localPath(next) {
		next = "/fleet"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// linkPage is the data of the page a login link opens: whom the link
// signs in as, or why it cannot.
type linkPage struct {
	Action  string
	Secret  string
	Token   string
	Key     string
	Role    string
	Expires time.Time
	Message string
}

// linkForm shows the page a login link opens: a button that signs in with
// it. Opening the link spends nothing, so that what fetches links to show
// a preview of them (chat and mail clients, mail scanners) does not use it
// up before the person it was made for; the form's POST does, with the
// double-submit token the sign-in form uses, so that no other site can
// sign a browser in with a link of its own.
func (s *Server) linkForm(w http.ResponseWriter, r *http.Request) {
	s.showLink(w, r, http.StatusOK, r.URL.Query().Get("secret"), "")
}

// showLink shows a login link's page: whom it signs in as and its button,
// or, for a link that no longer signs anyone in, why, and no button.
func (s *Server) showLink(w http.ResponseWriter, r *http.Request, status int, secret, msg string) {
	if secret == "" {
		s.fail(w, r, nil, muster.Errorf(muster.EINVALID, "secret: the link has none; copy the whole link, or ask an admin for a new one (muster login-link)"))
		return
	}
	page := linkPage{Action: httpapi.LoginPath, Message: msg}
	k, expires, err := s.DB.LoginLink(r.Context(), pki.HashSecret(secret))
	switch code := muster.ErrorCode(err); {
	case err == nil:
		page.Secret, page.Key, page.Role, page.Expires = secret, k.Name, k.Role, expires
		page.Token = s.newSignInToken(w, linkCookie)
	case code == muster.EUNAUTHORIZED:
		status, page.Message = http.StatusUnauthorized, muster.ErrorMessage(err)
	default:
		s.fail(w, r, nil, err)
		return
	}
	v := &view{s: s, Title: "Sign in", Data: page}
	if err := s.render(w, status, "link", v); err != nil {
		s.Log.Error("console", "path", r.URL.Path, "err", err)
	}
}

// openLink spends a login link, sets the session cookie, and goes to the
// fleet page.
func (s *Server) openLink(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	link := r.PostFormValue("secret")
	if !signInTokenSent(r, linkCookie) {
		s.showLink(w, r, http.StatusForbidden, link, "The page expired or came from elsewhere; sign in again.")
		return
	}
	secret := pki.RandomSecret()
	k, expires, err := s.DB.OpenLoginLink(r.Context(), pki.HashSecret(link), pki.HashSecret(secret), httpapi.Source(r))
	if err == nil && k.Scope.Limited() {
		s.DB.EndSession(r.Context(), pki.HashSecret(secret))
		err = scopedRefusal(k.Name)
	}
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	s.setSession(w, secret, expires)
	http.Redirect(w, r, "/fleet", http.StatusSeeOther)
}

// logout ends the session and clears its cookie. A session that has
// already ended (expired, its key revoked) has nothing left to end: the
// cookie is cleared all the same, so that Sign out always signs out. One
// that could not be read (the catalog does not answer) is not ended: the
// page says so, and the cookie is kept to end it with.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	v, err := s.session(r)
	if code := muster.ErrorCode(err); err != nil && code != muster.EUNAUTHORIZED && code != muster.EFORBIDDEN {
		s.fail(w, r, nil, err)
		return
	}
	if err == nil {
		if err := checkCSRF(r, v.csrf); err != nil {
			s.fail(w, r, v, err)
			return
		}
		c, _ := r.Cookie(sessionCookie)
		if err := s.DB.EndSession(r.Context(), pki.HashSecret(c.Value)); err != nil {
			s.fail(w, r, v, err)
			return
		}
	}
	// Only a cookie the request carried is cleared: a form of another
	// site, which the browser sends without it, clears nothing.
	if ClaimsSession(r) {
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
			HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteLaxMode})
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
