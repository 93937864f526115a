package console

import (
	"crypto/hmac"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/pki"
)

// listPage is a page of a list read newest first: its entries, and the
// links to the newest page and to the next, older one (each empty when
// there is none).
type listPage[T any] struct {
	Entries       []T
	Newest, Older string
}

// pageLinks sets the links of a page of the list at path: to the page
// that starts at cursor next, and, on a page that is not the first, to the
// newest; the request's filters carry over.
func (p *listPage[T]) pageLinks(r *http.Request, path, next string) {
	q := r.URL.Query()
	at := func(cursor string) string {
		q.Del("cursor")
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		if len(q) == 0 {
			return path
		}
		return path + "?" + q.Encode()
	}
	if next != "" {
		p.Older = at(next)
	}
	if r.URL.Query().Get("cursor") != "" {
		p.Newest = at("")
	}
}

// eventsPageSize is how many events a page of the console shows.
const eventsPageSize = 200

func (s *Server) events(w http.ResponseWriter, r *http.Request, v *view) error {
	q := r.URL.Query()
	var p listPage[muster.Event]
	var next string
	var err error
	p.Entries, next, err = s.DB.FindEventsPage(r.Context(), catalog.EventFilter{Target: q.Get("target"), Job: q.Get("job"), Limit: eventsPageSize,
		Cursor: q.Get("cursor")})
	if err != nil {
		return err
	}
	p.pageLinks(r, "/events", next)
	v.Title, v.Nav, v.Live, v.Data = "Events", "events", r.URL.RequestURI(), p
	return s.render(w, http.StatusOK, "events", v)
}

// alertsPage is the alerts and the operators they notify.
type alertsPage struct {
	Alerts    []muster.Alert
	Operators []muster.Operator
}

func (s *Server) alerts(w http.ResponseWriter, r *http.Request, v *view) error {
	var p alertsPage
	var err error
	if p.Alerts, err = s.DB.FindAlerts(r.Context()); err != nil {
		return err
	}
	if p.Operators, err = s.DB.FindOperators(r.Context()); err != nil {
		return err
	}
	if v.Key.Role != catalog.RoleAdmin {
		for i := range p.Operators {
			p.Operators[i] = p.Operators[i].Redacted()
		}
	}
	v.Title, v.Nav, v.Data = "Alerts and operators", "alerts", p
	return s.render(w, http.StatusOK, "alerts", v)
}

// deliveriesPageSize is how many notifications a page of the alerts'
// history shows.
const deliveriesPageSize = 100

// alertHistory shows what alerts sent, newest first, as `muster alert
// history` does, filtered by alert, operator and status as its flags
// filter it.
func (s *Server) alertHistory(w http.ResponseWriter, r *http.Request, v *view) error {
	q := r.URL.Query()
	status := muster.DeliveryStatus(q.Get("status"))
	if err := muster.ValidateDeliveryStatus("status", status); err != nil {
		return err
	}
	var p listPage[muster.Delivery]
	var next string
	var err error
	p.Entries, next, err = s.DB.FindDeliveriesPage(r.Context(), catalog.DeliveryFilter{Alert: q.Get("alert"), Operator: q.Get("operator"),
		Status: status, Limit: deliveriesPageSize, Cursor: q.Get("cursor")})
	if err != nil {
		return err
	}
	p.pageLinks(r, "/alerts/history", next)
	v.Title, v.Nav, v.Live, v.Data = "Alert history", "alerts", r.URL.RequestURI(), p
	return s.render(w, http.StatusOK, "deliveries", v)
}

// auditPageSize is how many entries a page of the console's audit log
// shows.
const auditPageSize = 100

func (s *Server) audit(w http.ResponseWriter, r *http.Request, v *view) error {
	q := r.URL.Query()
	var p listPage[muster.AuditEntry]
	var next string
	var err error
	p.Entries, next, err = s.DB.FindAuditPage(r.Context(), catalog.AuditFilter{Actor: q.Get("actor"), Job: q.Get("job"), Target: q.Get("target"),
		Limit: auditPageSize, Cursor: q.Get("cursor")})
	if err != nil {
		return err
	}
	p.pageLinks(r, "/audit", next)
	v.Title, v.Nav, v.Live, v.Data = "Audit log", "audit", r.URL.RequestURI(), p
	return s.render(w, http.StatusOK, "audit", v)
}

// tokensPage lists enlistment tokens: those that can still enlist a
// target, or, with All, every one the master keeps.
type tokensPage struct {
	Tokens []muster.EnlistToken
	All    bool
}

// tokens shows the enlistment tokens, as `muster token list [--all]` does.
func (s *Server) tokens(w http.ResponseWriter, r *http.Request, v *view) error {
	var p tokensPage
	var err error
	if p.All, err = httpapi.BoolParam(r.URL.Query().Get("all"), "all"); err != nil {
		return err
	}
	if p.Tokens, err = s.DB.FindEnlistTokens(r.Context(), p.All); err != nil {
		return err
	}
	v.Title, v.Nav, v.Data = "Enlistment tokens", "tokens", p
	return s.render(w, http.StatusOK, "tokens", v)
}

// revokeToken revokes an enlistment token, as `muster token revoke ID`
// does.
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, v *view) error {
	id, err := httpapi.ParseTokenID(r.PathValue("id"))
	if err != nil {
		return err
	}
	if _, err := s.DB.RevokeEnlistToken(r.Context(), id, httpapi.Actor(v.Key, r)); err != nil {
		return err
	}
	return back(w, r, "/tokens")
}

// keysPage lists API keys, with the secret of one just made.
type keysPage struct {
	Keys    []muster.APIKey
	Created *httpapi.KeyResponse
}

// createdCookie carries a key just made, with its secret, from the POST
// that made it to the one page that shows it: the POST answers with a
// redirect, so that going back or reloading sends nothing again.
const createdCookie = "muster_created_key"

// maxKeyDays is the longest lifetime the form takes, catalog.MaxKeyTTL.
const maxKeyDays = int(catalog.MaxKeyTTL / (24 * time.Hour))

func (s *Server) keys(w http.ResponseWriter, r *http.Request, v *view) error {
	var created *httpapi.KeyResponse
	if c, err := r.Cookie(createdCookie); err == nil {
		http.SetCookie(w, &http.Cookie{Name: createdCookie, Value: "", Path: "/keys", MaxAge: -1,
			HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteStrictMode})
		// Shown only to the session that made it.
		if q, err := url.ParseQuery(c.Value); err == nil && hmac.Equal([]byte(q.Get("session")), []byte(v.csrf)) {
			created = &httpapi.KeyResponse{APIKey: muster.APIKey{Name: q.Get("name"), Role: q.Get("role")}, Key: q.Get("key")}
		}
	}
	keys, err := s.DB.FindAPIKeys(r.Context())
	if err != nil {
		return err
	}
	v.Title, v.Nav, v.Data = "API keys", "keys", keysPage{Keys: keys, Created: created}
	return s.render(w, http.StatusOK, "keys", v)
}

// createKey makes an API key, and goes to the keys page, which shows its
// secret once.
func (s *Server) createKey(w http.ResponseWriter, r *http.Request, v *view) error {
	ttl := time.Duration(0)
	if days := strings.TrimSpace(r.PostFormValue("ttl_days")); days != "" {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > maxKeyDays {
			return muster.Errorf(muster.EINVALID, "ttl_days: %q is not a whole number of days from 1 to %d, or 0 for a key that lives until it is revoked", days, maxKeyDays)
		}
		ttl = time.Duration(n) * 24 * time.Hour
	}
	secret := httpapi.NewAPIKeySecret()
	k, err := s.DB.CreateAPIKey(r.Context(), catalog.NewAPIKey{Name: r.PostFormValue("name"), Role: r.PostFormValue("role"), TTL: ttl},
		pki.HashSecret(secret), httpapi.Actor(v.Key, r))
	if err != nil {
		return err
	}
	created := url.Values{"name": {k.Name}, "role": {k.Role}, "key": {secret}, "session": {v.csrf}}
	http.SetCookie(w, &http.Cookie{Name: createdCookie, Value: created.Encode(), Path: "/keys", MaxAge: 300,
		HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/keys", http.StatusSeeOther)
	return nil
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request, v *view) error {
	if _, err := s.DB.RevokeAPIKey(r.Context(), r.PathValue("name"), httpapi.Actor(v.Key, r)); err != nil {
		return err
	}
	http.Redirect(w, r, "/keys", http.StatusSeeOther)
	return nil
}
