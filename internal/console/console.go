// Package console is the master's web console, served at / on the master's
// one listener: server-rendered pages (html/template) made live by htmx,
// which is vendored and embedded with the stylesheet and one small script,
// so nothing is fetched from elsewhere and no Node is needed to build or
// run it.
//
// The console reads and changes the catalog through the same methods the
// operator API calls, and asks the API's own access rules
// (httpapi.Server.Authorize) before it shows a control and again before it
// makes a change, so a reader sees no control that changes anything and a
// reader's forged POST is refused whatever the page sent. A person signs
// in with an API key, or with a single-use login link an admin prints
// (`muster login-link`); the session acts as that key, and each change is
// in the audit log under its name.
package console

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/jsonhttp"
)

//go:embed assets templates
var files embed.FS

// Authorizer answers whether a key may do what an API route does.
type Authorizer interface {
	Authorize(k catalog.KeyIdentity, pattern string) error
}

// Server serves the web console.
type Server struct {
	DB    *catalog.Catalog
	API   Authorizer
	Poker httpapi.Poker
	Log   *slog.Logger
	// Secure marks the session cookie Secure; set it when the listener
	// speaks TLS (the master always does).
	Secure bool

	pages map[string]*template.Template
}

// Security headers on every console response. The pages load scripts
// and styles from the master alone and have no inline script, so the
// policy needs no exceptions.
var securityHeaders = [...][2]string{
	{"Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"},
	{"X-Content-Type-Options", "nosniff"},
	{"Referrer-Policy", "no-referrer"},
	{"X-Frame-Options", "DENY"},
}

// Routes registers the console on mux.
func (s *Server) Routes(mux *http.ServeMux) error {
	if err := s.parse(); err != nil {
		return err
	}
	assets, err := fs.Sub(files, "assets")
	if err != nil {
		return err
	}
	static := http.StripPrefix("/assets/", http.FileServerFS(assets))
	mux.Handle("GET /assets/", s.headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") { // a directory: served one by one, not listed
			s.fail(w, r, nil, muster.Errorf(muster.ENOTFOUND, "there is no page at %s", r.URL.Path))
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		static.ServeHTTP(w, r)
	})))
	mux.Handle("GET /{$}", s.headers(http.RedirectHandler("/fleet", http.StatusSeeOther)))
	mux.Handle("GET /login", s.headers(http.HandlerFunc(s.loginForm)))
	mux.Handle("POST /login", s.headers(http.HandlerFunc(s.login)))
	mux.Handle("GET "+httpapi.LoginPath, s.headers(http.HandlerFunc(s.linkForm)))
	mux.Handle("POST "+httpapi.LoginPath, s.headers(http.HandlerFunc(s.openLink)))
	mux.Handle("POST /logout", s.headers(http.HandlerFunc(s.logout)))

	s.page(mux, "GET /fleet", "", s.fleet)
	s.page(mux, "POST /targets/{name}/poll", "POST /api/v1/targets/{name}/poll", s.forcePoll)
	s.page(mux, "POST /targets/{name}/resync", "POST /api/v1/resync", s.resync)
	s.page(mux, "POST /targets/{name}/pause", "POST /api/v1/pause", s.pause(true))
	s.page(mux, "POST /targets/{name}/resume", "POST /api/v1/resume", s.pause(false))
	s.page(mux, "GET /targets/{name}/delete", "DELETE /api/v1/targets/{name}", s.confirmDelete)
	s.page(mux, "POST /targets/{name}/delete", "DELETE /api/v1/targets/{name}", s.deleteTarget)
	s.page(mux, "GET /targets/{name}", "", s.target)
	s.page(mux, "POST /instructions/{target}/{seq}/retry", "POST /api/v1/downloadlist/{seq}/retry", s.retryInstruction)
	s.page(mux, "POST /instructions/{target}/{seq}/delete", "DELETE /api/v1/downloadlist/{seq}", s.deleteInstruction)

	s.page(mux, "GET /jobs", "", s.jobs)
	s.page(mux, "GET /jobs/{name}", "", s.job)
	s.page(mux, "POST /jobs/{name}/start", "POST /api/v1/jobs/{name}/start", s.startJob)
	s.page(mux, "POST /jobs/{name}/stop", "POST /api/v1/jobs/{name}/stop", s.stopJob)
	s.page(mux, "POST /jobs/{name}/enable", "POST /api/v1/jobs/{name}/enable", s.enableJob(true))
	s.page(mux, "POST /jobs/{name}/disable", "POST /api/v1/jobs/{name}/disable", s.enableJob(false))
	s.page(mux, "GET /runs/{target}/{id}", "", s.run)

	s.page(mux, "GET /events", "", s.events)
	s.page(mux, "GET /alerts", "", s.alerts)
	s.page(mux, "GET /alerts/history", "GET /api/v1/alerts/history", s.alertHistory)
	s.page(mux, "GET /audit", "GET /api/v1/audit", s.audit)
	s.page(mux, "GET /tokens", "GET /api/v1/tokens", s.tokens)
	s.page(mux, "POST /tokens/{id}/revoke", "POST /api/v1/tokens/{id}/revoke", s.revokeToken)
	s.page(mux, "GET /keys", "GET /api/v1/apikeys", s.keys)
	s.page(mux, "POST /keys", "POST /api/v1/apikeys", s.createKey)
	s.page(mux, "POST /keys/{name}/revoke", "POST /api/v1/apikeys/{name}/revoke", s.revokeKey)
	return nil
}

// WithPages wraps mux, on which the console's routes are registered, so
// that a browser asking for a page nothing serves (a mistyped or outdated
// link) gets the console's page saying so, with its navigation, where a
// program asking for it (no text/html in its Accept) gets mux's answer,
// as does every path under /api/.
func (s *Server) WithPages(mux *http.ServeMux) http.Handler {
	notFound := s.headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, _ := s.session(r)
		s.fail(w, r, v, muster.Errorf(muster.ENOTFOUND, "there is no page at %s", r.URL.Path))
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/") && !strings.HasPrefix(r.URL.Path, "/agent/") {
			// The console's own paths carry the security headers whatever
			// answers them, a method the route does not take (405) too.
			for _, kv := range securityHeaders {
				w.Header().Set(kv[0], kv[1])
			}
		}
		if r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html") && !strings.HasPrefix(r.URL.Path, "/api/") {
			if _, pattern := mux.Handler(r); pattern == "" {
				notFound.ServeHTTP(w, r)
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// A handler of a console page gets the request's session.
type pageHandler func(w http.ResponseWriter, r *http.Request, v *view) error

// headers wraps h with the security headers.
func (s *Server) headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, kv := range securityHeaders {
			w.Header().Set(kv[0], kv[1])
		}
		h.ServeHTTP(w, r)
	})
}

// page registers a page or an action that needs a session. route, when
// set, is the API route whose access rules the action follows: the
// session's key must be allowed it. Every POST must carry the session's
// CSRF token.
func (s *Server) page(mux *http.ServeMux, pattern, route string, h pageHandler) {
	mux.Handle(pattern, s.headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := s.session(r)
		if code := muster.ErrorCode(err); err != nil && code != muster.EUNAUTHORIZED && code != muster.EFORBIDDEN {
			// The session could not be read (the catalog's database does
			// not answer): the page says so, and a live refresh keeps what
			// it showed and tries again, rather than signing out.
			s.fail(w, r, nil, err)
			return
		}
		if err != nil {
			signIn := "/login?next=" + url.QueryEscape(r.URL.RequestURI())
			if r.Method == http.MethodGet && r.Header.Get("HX-Request") == "true" {
				// A live refresh: htmx would follow a redirect unseen and
				// swap in nothing, blanking the page. It takes the page
				// itself to the sign-in form instead.
				w.Header().Set("HX-Redirect", signIn)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			if r.Method == http.MethodGet {
				http.Redirect(w, r, signIn, http.StatusSeeOther)
				return
			}
			s.fail(w, r, nil, err)
			return
		}
		if r.Method == http.MethodPost {
			if err := checkCSRF(r, v.csrf); err != nil {
				s.fail(w, r, v, err)
				return
			}
		}
		if route != "" {
			if err := s.API.Authorize(v.Key, route); err != nil {
				s.fail(w, r, v, err)
				return
			}
		}
		if err := h(w, r, v); err != nil {
			s.fail(w, r, v, err)
		}
	})))
}

// view is what every page template gets: who is signed in, what they may
// do, and the page's own data.
type view struct {
	s     *Server
	Key   catalog.KeyIdentity
	CSRF  string
	Title string
	Nav   string
	// Live is the URL the page's live region reloads from every two
	// seconds; empty for a page that stays as it is.
	Live  string
	Flash string
	Data  any
	csrf  string
}

// Can reports whether the signed-in key may do what the API route pattern
// does: a page shows a control only when it may.
func (v *view) Can(pattern string) bool { return v.s.API.Authorize(v.Key, pattern) == nil }

// render writes the named page with v.
func (s *Server) render(w http.ResponseWriter, status int, name string, v *view) error {
	t, ok := s.pages[name]
	if !ok {
		return errors.New("console: no page " + name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// fail answers a request that went wrong: with the error page, in the
// status the API would answer with.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, v *view, err error) {
	status := jsonhttp.StatusCode(muster.ErrorCode(err))
	msg := muster.ErrorMessage(err)
	if status >= 500 {
		s.Log.Error("console", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "the master could not answer: " + msg
	}
	if v == nil {
		v = &view{s: s}
	}
	page := errorPage{Status: status, Code: muster.ErrorCode(err), Message: msg, Form: r.Method == http.MethodPost}
	if status == http.StatusServiceUnavailable {
		// The master, or its catalog, does not answer for now: the page
		// offers to try again, whether the session holds or not.
		page.Retry = "/fleet"
		if r.Method == http.MethodGet && localPath(r.URL.RequestURI()) {
			page.Retry = r.URL.RequestURI()
		}
	}
	v.Title, v.Nav, v.Live, v.Data = "Refused", "", "", page
	if rerr := s.render(w, status, "error", v); rerr != nil {
		http.Error(w, msg, status)
	}
}

type errorPage struct {
	Status  int
	Code    string
	Message string
	// Form is set when a form was refused: the page offers to go back to
	// it, to correct what the message names.
	Form bool
	// Retry, when set, is the page to try again: the master could not
	// answer for now.
	Retry string
}

// back redirects a form's POST to the page it came from (a path given in
// the form's "back" field), or to fallback.
func back(w http.ResponseWriter, r *http.Request, fallback string) error {
	to := r.PostFormValue("back")
	if !localPath(to) {
		to = fallback
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

// localPath reports whether p is a path on this site, never another host.
// Browsers drop tab, LF and CR from a URL and read a backslash as a slash,
// so "/\t/evil.example" or "/\\evil.example" would lead them away: p may
// hold neither a control character nor a backslash, decoded or not, and
// its path must begin with a single slash.
func localPath(p string) bool {
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return false
	}
	return cleanText(p) && cleanText(u.Path) && strings.HasPrefix(u.Path, "/") && !strings.HasPrefix(u.Path, "//")
}

// cleanText reports whether s has no control character and no backslash.
func cleanText(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r == '\\' || unicode.IsControl(r) })
}

// pageNumber reads ?page=N, from 1.
// pager is where a paginated page stands: its page of Pages, and the
// links to the pages before and after it.
type pager struct {
	Page, Pages int
	Prev, Next  string
}

// paginate places the pager among the pages of n items, size a page,
// keeping its page within them, and returns the bounds of the page's items.
func (p *pager) paginate(n, size int) (from, to int) {
	p.Pages = max(1, (n+size-1)/size)
	p.Page = min(max(p.Page, 1), p.Pages)
	from = (p.Page - 1) * size
	return from, min(from+size, n)
}

// link sets the links to the pages before and after, on path with the
// query q (its filters), and returns the link to the page itself.
func (p *pager) link(path string, q url.Values) string {
	at := func(page int) string {
		u := maps.Clone(q)
		if page > 1 {
			u.Set("page", strconv.Itoa(page))
		}
		if len(u) == 0 {
			return path
		}
		return path + "?" + u.Encode()
	}
	if p.Page > 1 {
		p.Prev = at(p.Page - 1)
	}
	if p.Page < p.Pages {
		p.Next = at(p.Page + 1)
	}
	return at(p.Page)
}

func pageNumber(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil || n < 1 {
		return 1
	}
	return n
}
