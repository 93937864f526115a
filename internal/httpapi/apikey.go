package httpapi

import (
	"net/http"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/jsonhttp"
	"github.com/musterhq/muster/internal/pki"
)

// keyRoutes registers API keys (admin only) and the audit log, which has
// no route to change or delete it.
func (s *Server) keyRoutes(mux *http.ServeMux) {
	s.handle(mux, "GET /api/v1/apikeys", catalog.RoleAdmin, s.listKeys)
	s.handle(mux, "POST /api/v1/apikeys", catalog.RoleAdmin, s.createKey)
	s.handle(mux, "POST /api/v1/apikeys/{name}/revoke", catalog.RoleAdmin, s.revokeKey)
	s.handle(mux, "GET /api/v1/audit", catalog.RoleReader, s.listAudit)
	s.handle(mux, "POST /api/v1/loginlinks", catalog.RoleAdmin, s.createLoginLink)
}

// LoginLinkRequest asks for a login link to the web console.
type LoginLinkRequest struct {
	// Role is the role the console session gets: the caller's own when
	// empty, never above it.
	Role string `json:"role,omitempty"`
	// TTLSeconds is how long the link may be opened: 300 when 0, from 60
	// to 86400.
	TTLSeconds int `json:"ttl_seconds,omitempty"`
}

// LoginLinkResponse is a new single-use login link. Path is relative to
// the master's URL; it is shown once, and the master keeps only its hash.
type LoginLinkResponse struct {
	Path      string    `json:"path"`
	Key       string    `json:"key"`
	Role      string    `json:"role"`
	ExpiresAt time.Time `json:"expires_at"`
}

// LoginPath is the console's path that opens a login link.
const LoginPath = "/login/link"

func (s *Server) createLoginLink(w http.ResponseWriter, r *http.Request, c caller) error {
	var req LoginLinkRequest
	if err := jsonhttp.DecodeJSON(w, r, maxBody, &req); err != nil {
		return err
	}
	ttl := catalog.DefaultLinkTTL
	if req.TTLSeconds != 0 {
		if err := ttlSeconds(int64(req.TTLSeconds), catalog.MaxLoginLinkTTL); err != nil {
			return err
		}
		ttl = time.Duration(req.TTLSeconds) * time.Second
	}
	role := req.Role
	if role == "" {
		role = c.key.Role
	}
	secret := "mll_" + pki.RandomSecret()
	expires, err := s.DB.CreateLoginLink(r.Context(), pki.HashSecret(secret), c.key, role, ttl, c.actor())
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusCreated, LoginLinkResponse{Path: LoginPath + "?secret=" + secret, Key: c.key.Name,
		Role: role, ExpiresAt: expires.UTC()})
	return nil
}

// KeyRequest creates an API key.
type KeyRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// Scopes limit the key ("job:NAME", "job:PREFIX*", "group:NAME").
	Scopes []string `json:"scopes,omitempty"`
	// TTLSeconds is how long the key lives; 0 for a key that lives until
	// it is revoked.
	TTLSeconds int64 `json:"ttl_seconds,omitempty"`
}

// KeyResponse is a new API key with its secret, which is shown only here:
// the master keeps its hash.
type KeyResponse struct {
	muster.APIKey
	Key string `json:"key"`
}

// ttlSeconds checks a request's ttl_seconds, when it gives one: from 60 to
// most, checked before it is made a duration, which a count of seconds
// past about 292 years would wrap.
func ttlSeconds(n int64, most time.Duration) error {
	if n < 60 || n > int64(most/time.Second) {
		return muster.Errorf(muster.EINVALID, "ttl_seconds: from 60 to %d, not %d", int64(most/time.Second), n)
	}
	return nil
}

// NewAPIKeySecret makes the secret of an API key.
func NewAPIKeySecret() string { return "mat_" + pki.RandomSecret() }

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request, _ caller) error {
	keys, err := s.DB.FindAPIKeys(r.Context())
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, keys)
	return nil
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request, c caller) error {
	var req KeyRequest
	if err := jsonhttp.DecodeJSON(w, r, maxBody, &req); err != nil {
		return err
	}
	scope, err := muster.ParseScopes("scopes", req.Scopes)
	if err != nil {
		return err
	}
	if req.TTLSeconds != 0 {
		if err := ttlSeconds(req.TTLSeconds, catalog.MaxKeyTTL); err != nil {
			return muster.Errorf(muster.EINVALID, "%s, or 0 for a key that lives until it is revoked", muster.ErrorMessage(err))
		}
	}
	secret := NewAPIKeySecret()
	k, err := s.DB.CreateAPIKey(r.Context(), catalog.NewAPIKey{Name: req.Name, Role: req.Role, Scope: scope,
		TTL: time.Duration(req.TTLSeconds) * time.Second}, pki.HashSecret(secret), c.actor())
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusCreated, KeyResponse{APIKey: k, Key: secret})
	return nil
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request, c caller) error {
	k, err := s.DB.RevokeAPIKey(r.Context(), r.PathValue("name"), c.actor())
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, k)
	return nil
}

// listAudit answers GET /api/v1/audit[?since=RFC3339][&actor=][&job=]
// [&target=][&limit=][&cursor=]: a page of the audit log, newest first,
// with a Link header to the next page when there is one.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, _ caller) error {
	q := r.URL.Query()
	limit, err := intParam(q.Get("limit"), "limit", 100, 1, catalog.MaxAuditList)
	if err != nil {
		return err
	}
	f := catalog.AuditFilter{Actor: q.Get("actor"), Job: q.Get("job"), Target: q.Get("target"), Limit: limit, Cursor: q.Get("cursor")}
	if v := q.Get("since"); v != "" {
		if f.Since, err = timeParam(v, "since"); err != nil {
			return err
		}
	}
	entries, next, err := s.DB.FindAuditPage(r.Context(), f)
	if err != nil {
		return err
	}
	setNextPage(w, r, next)
	jsonhttp.WriteJSON(w, http.StatusOK, entries)
	return nil
}
