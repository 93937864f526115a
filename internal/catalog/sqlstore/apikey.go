package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/musterhq/muster/internal/catalog"
)

// apiKeyColumns are the columns scanAPIKey reads.
const apiKeyColumns = `id, name, role, scopes, created_at, created_by, expires_at, last_used_at, revoked_at, revoked_by`

func scanAPIKey(r Row) (catalog.APIKeyRow, error) {
	var k catalog.APIKeyRow
	var scopes string
	var created int64
	var expires, used, revoked sql.NullInt64
	err := r.Scan(&k.ID, &k.Name, &k.Role, &scopes, &created, &k.CreatedBy, &expires, &used, &revoked, &k.RevokedBy)
	if scopes != "" {
		k.Scopes = strings.Split(scopes, ",")
	}
	k.CreatedAt, k.ExpiresAt, k.LastUsedAt, k.RevokedAt = fromMS(created), fromNullMS(expires), fromNullMS(used), fromNullMS(revoked)
	return k, err
}

// CountAPITokens counts API keys, in any state.
func (s *Queries) CountAPITokens(ctx context.Context) (int, error) {
	var n int
	err := s.Q.QueryRow(ctx, `SELECT COUNT(*) FROM api_tokens`).Scan(&n)
	return n, err
}

// FindAPIKey returns an API key by the hash of its secret.
func (s *Queries) FindAPIKey(ctx context.Context, hash string) (catalog.APIKeyRow, error) {
	return scanAPIKey(s.Q.QueryRow(ctx, `SELECT `+apiKeyColumns+` FROM api_tokens WHERE hash = $1`, hash))
}

// FindAPIKeys returns API keys by name, or the one named.
func (s *Queries) FindAPIKeys(ctx context.Context, name string) ([]catalog.APIKeyRow, error) {
	q, params := `SELECT `+apiKeyColumns+` FROM api_tokens`, []any{}
	if name != "" {
		q, params = q+` WHERE name = $1`, append(params, name)
	}
	return collect(ctx, s.Q, func(r Rows) (catalog.APIKeyRow, error) { return scanAPIKey(r) }, q+` ORDER BY name`, params...)
}

// LockAPIKeys returns every API key; a transaction of a store that is not
// shared is alone, so nothing needs taking.
func (s *Queries) LockAPIKeys(ctx context.Context) ([]catalog.APIKeyRow, error) {
	return s.FindAPIKeys(ctx, "")
}

// InsertAPIKey records a new API key; a name or hash taken is ErrDuplicate.
func (s *Queries) InsertAPIKey(ctx context.Context, k catalog.APIKeyRow, hash string) error {
	_, err := s.Q.Exec(ctx, `INSERT INTO api_tokens (name, role, hash, scopes, created_at, created_by, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		k.Name, k.Role, hash, strings.Join(k.Scopes, ","), ms(k.CreatedAt), k.CreatedBy, nullMS(k.ExpiresAt))
	return err
}

// ResetAPIKey sets the named key's secret, role and scopes, with no expiry
// and not revoked, creating it if needed. The console sessions and login
// links of its old secret end: a new secret is how a leaked key is taken
// back.
func (s *Queries) ResetAPIKey(ctx context.Context, k catalog.APIKeyRow, hash string) error {
	for _, q := range []string{
		`DELETE FROM console_sessions WHERE key_id IN (SELECT id FROM api_tokens WHERE name = $1)`,
		`DELETE FROM console_links WHERE key_id IN (SELECT id FROM api_tokens WHERE name = $1)`,
	} {
		if _, err := s.Q.Exec(ctx, q, k.Name); err != nil {
			return err
		}
	}
	_, err := s.Q.Exec(ctx, `INSERT INTO api_tokens (name, role, hash, scopes, created_at, created_by, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (name) DO UPDATE SET role = excluded.role, hash = excluded.hash, scopes = excluded.scopes,
			created_at = excluded.created_at, created_by = excluded.created_by, expires_at = excluded.expires_at,
			revoked_at = NULL, revoked_by = ''`,
		k.Name, k.Role, hash, strings.Join(k.Scopes, ","), ms(k.CreatedAt), k.CreatedBy, nullMS(k.ExpiresAt))
	return err
}

// DeleteAPIKey deletes a key, to give its name to a new one, with its
// console sessions and login links: the new key may be given the same id
// (SQLite reuses the largest), and must not inherit them.
func (s *Queries) DeleteAPIKey(ctx context.Context, id int64) error {
	for _, q := range []string{
		`DELETE FROM console_sessions WHERE key_id = $1`,
		`DELETE FROM console_links WHERE key_id = $1`,
		`DELETE FROM api_tokens WHERE id = $1`,
	} {
		if _, err := s.Q.Exec(ctx, q, id); err != nil {
			return err
		}
	}
	return nil
}

// RevokeAPIKey marks a key revoked unless it is.
func (s *Queries) RevokeAPIKey(ctx context.Context, id int64, at time.Time, by string) (bool, error) {
	n, err := s.Q.Exec(ctx, `UPDATE api_tokens SET revoked_at = $1, revoked_by = $2 WHERE id = $3 AND revoked_at IS NULL`, ms(at), by, id)
	return n > 0, err
}

// SetAPIKeyScopes replaces a key's scopes.
func (s *Queries) SetAPIKeyScopes(ctx context.Context, id int64, scopes []string) error {
	_, err := s.Q.Exec(ctx, `UPDATE api_tokens SET scopes = $1 WHERE id = $2`, strings.Join(scopes, ","), id)
	return err
}

// SetKeysUsed moves keys' last use forward.
func (s *Queries) SetKeysUsed(ctx context.Context, used map[int64]time.Time) error {
	for id, at := range used {
		if _, err := s.Q.Exec(ctx, `UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)`,
			ms(at), id); err != nil {
			return err
		}
	}
	return nil
}
