package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/musterhq/muster"
)

// EnlistTokens lists the enlistment tokens that can still enlist a target,
// oldest first; with all, also those used, expired or revoked that the
// master still keeps.
func (c *Client) EnlistTokens(ctx context.Context, all bool) ([]muster.EnlistToken, error) {
	var q url.Values
	if all {
		q = url.Values{"all": {"true"}}
	}
	var out []muster.EnlistToken
	return out, c.do(ctx, http.MethodGet, "/api/v1/tokens", q, nil, &out)
}

// RevokeEnlistToken revokes the enlistment token with the id.
func (c *Client) RevokeEnlistToken(ctx context.Context, id int64) (muster.EnlistToken, error) {
	var out muster.EnlistToken
	return out, c.do(ctx, http.MethodPost, "/api/v1/tokens/"+strconv.FormatInt(id, 10)+"/revoke", nil, nil, &out)
}

// RevokeTargetEnlistTokens revokes every enlistment token for the target
// name that could still enlist it, and returns them.
func (c *Client) RevokeTargetEnlistTokens(ctx context.Context, target string) ([]muster.EnlistToken, error) {
	var out []muster.EnlistToken
	return out, c.do(ctx, http.MethodPost, "/api/v1/tokens/revoke", nil, TokenRevokeRequest{Target: target}, &out)
}
