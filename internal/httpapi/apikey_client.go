package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/musterhq/muster"
)

// APIKeys lists every API key, revoked and expired ones included.
func (c *Client) APIKeys(ctx context.Context) ([]muster.APIKey, error) {
	var out []muster.APIKey
	return out, c.do(ctx, http.MethodGet, "/api/v1/apikeys", nil, nil, &out)
}

// CreateAPIKey creates an API key. The reply carries its secret, which is
// not shown again.
func (c *Client) CreateAPIKey(ctx context.Context, req KeyRequest) (KeyResponse, error) {
	var out KeyResponse
	return out, c.do(ctx, http.MethodPost, "/api/v1/apikeys", nil, req, &out)
}

// RevokeAPIKey revokes an API key.
func (c *Client) RevokeAPIKey(ctx context.Context, name string) (muster.APIKey, error) {
	var out muster.APIKey
	return out, c.do(ctx, http.MethodPost, "/api/v1/apikeys/"+segment(name)+"/revoke", nil, nil, &out)
}

// AuditFilter selects entries of the audit log.
type AuditFilter struct {
	Since  time.Time
	Actor  string
	Job    string
	Target string
	Limit  int
	// Cursor reads on after the page that named it as its next.
	Cursor string
}

// Audit reads a page of the audit log, newest first.
func (c *Client) Audit(ctx context.Context, f AuditFilter) ([]muster.AuditEntry, error) {
	out, _, err := c.AuditPage(ctx, f)
	return out, err
}

// AuditPage reads a page of the audit log, newest first, and returns the
// cursor of the next page: empty on the last.
func (c *Client) AuditPage(ctx context.Context, f AuditFilter) ([]muster.AuditEntry, string, error) {
	q := filterQuery(map[string]string{"actor": f.Actor, "job": f.Job, "target": f.Target, "cursor": f.Cursor}, f.Limit)
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339))
	}
	var out []muster.AuditEntry
	next, err := c.page(ctx, "/api/v1/audit", q, &out)
	return out, next, err
}

// CreateLoginLink asks for a single-use login link to the web console.
func (c *Client) CreateLoginLink(ctx context.Context, req LoginLinkRequest) (LoginLinkResponse, error) {
	var out LoginLinkResponse
	err := c.do(ctx, "POST", "/api/v1/loginlinks", nil, req, &out)
	return out, err
}
