package httpapi

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/pki"
)

// Who may call what. Every route under /api/v1/ but the OpenAPI document
// needs an API key. Each route names the least role it needs (reader <
// operator < admin). A key with a scope (muster.Scope) may call only the
// routes in scopedRoute, whose handlers keep to its scope; every other
// route is for keys without scopes. docs/security.md has the whole table,
// and TestAccessTable holds the routes to it.

// scopedRoute reports whether a key with a scope may call the route with
// this pattern. Their handlers list only what is in the scope, and refuse a named job, target,
// instruction or group outside it (the catalog refuses changes outside it
// in the transaction that would make them).
func scopedRoute(pattern string) bool {
	switch pattern {
	case "GET /api/v1/targets",
		"GET /api/v1/targets/{name}",
		"PATCH /api/v1/targets/{name}",
		"POST /api/v1/targets/{name}/poll",
		"GET /api/v1/jobs",
		"POST /api/v1/apply",
		"GET /api/v1/jobs/{name}",
		"DELETE /api/v1/jobs/{name}",
		"POST /api/v1/jobs/{name}/enable",
		"POST /api/v1/jobs/{name}/disable",
		"POST /api/v1/jobs/{name}/start",
		"POST /api/v1/jobs/{name}/stop",
		"GET /api/v1/jobs/{name}/history",
		"GET /api/v1/jobs/{name}/next",
		"GET /api/v1/jobs/{name}/rollouts",
		"GET /api/v1/jobs/{name}/rollouts/{id}",
		"GET /api/v1/runs",
		"GET /api/v1/downloadlist",
		"POST /api/v1/downloadlist/{seq}/retry",
		"DELETE /api/v1/downloadlist/{seq}",
		"GET /api/v1/groups",
		"POST /api/v1/post",
		"POST /api/v1/pause",
		"POST /api/v1/resume",
		"GET /api/v1/events":
		return true
	}
	return false
}

// caller is the authenticated API key of a request, and where the request
// came from.
type caller struct {
	key    catalog.KeyIdentity
	source string
}

// actor is the caller as the catalog records it.
func (c caller) actor() muster.Actor {
	return muster.Actor{Kind: muster.ActorKey, Name: c.key.Name, Role: c.key.Role, Source: c.source, Scope: c.key.Scope}
}

func (c caller) scope() muster.Scope { return c.key.Scope }

// admin reports whether the caller's key has the admin role, which alone
// sees operators' webhooks whole (see muster.RedactWebhook).
func (c caller) admin() bool { return c.key.Role == catalog.RoleAdmin }

// authenticate finds the API key of a request and checks it may call the
// route pattern, which needs role.
func (s *Server) authenticate(r *http.Request, pattern, role string) (caller, error) {
	token, ok := BearerToken(r)
	if !ok {
		return caller{}, muster.Errorf(muster.EUNAUTHORIZED, "an API key is required: send Authorization: Bearer <key> (the CLI reads MUSTER_TOKEN or --token)")
	}
	k, err := s.DB.AuthenticateAPIKey(r.Context(), pki.HashSecret(token))
	if err != nil {
		return caller{}, err
	}
	if err := allow(k, pattern, role); err != nil {
		return caller{}, err
	}
	return caller{key: k, source: Source(r)}, nil
}

// BearerToken returns the token of a request's Authorization header, if it
// has one of the Bearer scheme (named in any case, as RFC 9110 has it).
func BearerToken(r *http.Request) (string, bool) {
	scheme, token, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	token = strings.TrimSpace(token)
	return token, strings.EqualFold(scheme, "Bearer") && token != ""
}

// allow checks that key k may call the route pattern, which needs role.
func allow(k catalog.KeyIdentity, pattern, role string) error {
	if !catalog.RoleAtLeast(k.Role, role) {
		return muster.Errorf(muster.EFORBIDDEN, "%s needs the %s role; API key %q has the %s role: use a key with the %s role (an admin makes one with `muster apikey create NAME --role %s`)",
			pattern, role, k.Name, k.Role, role, role)
	}
	if k.Scope.Limited() && !scopedRoute(pattern) {
		return muster.Errorf(muster.EFORBIDDEN, "API key %q is scoped (%s), and %s is open only to keys without scopes; ask an admin for a key without scopes",
			k.Name, k.Scope, pattern)
	}
	return nil
}

// Authorize checks that key k may do what the API route pattern ("POST
// /api/v1/jobs/{name}/start") does, by the same rules the API applies to
// its own requests. The web console asks it before each change it makes,
// and before it shows a control, so the two never disagree. A pattern the
// API does not register is refused.
func (s *Server) Authorize(k catalog.KeyIdentity, pattern string) error {
	role, ok := s.roles[pattern]
	if !ok {
		return muster.Errorf(muster.EFORBIDDEN, "%s is not an API route, so nobody may call it", pattern)
	}
	return allow(k, pattern, role)
}

// Source is the address a request came from, as the audit log records it.
func Source(r *http.Request) string {
	source, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return source
}

// Actor is key k, acting from the address of r, as the catalog records it.
func Actor(k catalog.KeyIdentity, r *http.Request) muster.Actor {
	return caller{key: k, source: Source(r)}.actor()
}

// checkJob refuses a job outside the caller's scope.
func checkJob(c caller, name string) error {
	if !c.scope().HasJob(name) {
		return muster.OutOfScope(c.key.Name, c.scope(), fmt.Sprintf("job %q", name))
	}
	return nil
}

// scopeTargets returns the targets the caller's scope covers (the members
// of its groups), or nil for a caller without a scope, who sees every
// target.
func (s *Server) scopeTargets(ctx context.Context, c caller) (map[string]bool, error) {
	if !c.scope().Limited() {
		return nil, nil
	}
	return s.DB.ScopeTargets(ctx, c.scope())
}

// checkTarget refuses a target outside the caller's scope. A target that
// does not exist is outside every scope, so a scoped key learns nothing of
// the targets it cannot see.
func (s *Server) checkTarget(ctx context.Context, c caller, name string) error {
	visible, err := s.scopeTargets(ctx, c)
	if err != nil || visible == nil {
		return err
	}
	if !visible[muster.NormalizeTargetName(name)] {
		return muster.OutOfScope(c.key.Name, c.scope(), fmt.Sprintf("target %q", muster.NormalizeTargetName(name)))
	}
	return nil
}
