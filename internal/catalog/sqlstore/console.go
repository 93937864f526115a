package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/musterhq/muster/internal/catalog"
)

// scanConsoleToken reads a login link or a session joined with its key.
func scanConsoleToken(r Row) (catalog.ConsoleTokenRow, error) {
	var t catalog.ConsoleTokenRow
	var created, expires int64
	var used sql.NullInt64
	var scopes string
	var keyCreated int64
	var keyExpires, keyUsed, keyRevoked sql.NullInt64
	err := r.Scan(&t.ID, &t.KeyID, &t.Role, &created, &expires, &used,
		&t.Key.ID, &t.Key.Name, &t.Key.Role, &scopes, &keyCreated, &t.Key.CreatedBy, &keyExpires, &keyUsed, &keyRevoked, &t.Key.RevokedBy)
	t.CreatedAt, t.ExpiresAt, t.UsedAt = fromMS(created), fromMS(expires), fromNullMS(used)
	if scopes != "" {
		t.Key.Scopes = strings.Split(scopes, ",")
	}
	t.Key.CreatedAt, t.Key.ExpiresAt, t.Key.LastUsedAt, t.Key.RevokedAt = fromMS(keyCreated), fromNullMS(keyExpires), fromNullMS(keyUsed), fromNullMS(keyRevoked)
	return t, err
}

const consoleKeyColumns = `k.id, k.name, k.role, k.scopes, k.created_at, k.created_by, k.expires_at, k.last_used_at, k.revoked_at, k.revoked_by`

// FindConsoleLink returns a login link by the hash of its secret, with its
// key; a link whose key was deleted is not found.
func (s *Queries) FindConsoleLink(ctx context.Context, hash string) (catalog.ConsoleTokenRow, error) {
	return scanConsoleToken(s.Q.QueryRow(ctx, `SELECT l.id, l.key_id, l.role, l.created_at, l.expires_at, l.used_at, `+consoleKeyColumns+`
		FROM console_links l JOIN api_tokens k ON k.id = l.key_id WHERE l.hash = $1`, hash))
}

// FindConsoleSession returns a session by the hash of its secret, with its
// key; a session whose key was deleted is not found.
func (s *Queries) FindConsoleSession(ctx context.Context, hash string) (catalog.ConsoleTokenRow, error) {
	return scanConsoleToken(s.Q.QueryRow(ctx, `SELECT c.id, c.key_id, c.role, c.created_at, c.expires_at, CAST(NULL AS BIGINT), `+consoleKeyColumns+`
		FROM console_sessions c JOIN api_tokens k ON k.id = c.key_id WHERE c.hash = $1`, hash))
}

// InsertConsoleLink records a login link's hash.
func (s *Queries) InsertConsoleLink(ctx context.Context, t catalog.ConsoleTokenRow, hash string) error {
	_, err := s.Q.Exec(ctx, `INSERT INTO console_links (hash, key_id, role, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		hash, t.KeyID, t.Role, ms(t.CreatedAt), ms(t.ExpiresAt))
	return err
}

// UseConsoleLink marks an unused link used.
func (s *Queries) UseConsoleLink(ctx context.Context, id int64, at time.Time) (bool, error) {
	n, err := s.Q.Exec(ctx, `UPDATE console_links SET used_at = $1 WHERE id = $2 AND used_at IS NULL`, ms(at), id)
	return n > 0, err
}

// InsertConsoleSession records a session's hash.
func (s *Queries) InsertConsoleSession(ctx context.Context, t catalog.ConsoleTokenRow, hash, source string) error {
	_, err := s.Q.Exec(ctx, `INSERT INTO console_sessions (hash, key_id, role, source, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		hash, t.KeyID, t.Role, source, ms(t.CreatedAt), ms(t.ExpiresAt))
	return err
}

// DeleteConsoleSession ends a session.
func (s *Queries) DeleteConsoleSession(ctx context.Context, hash string) error {
	_, err := s.Q.Exec(ctx, `DELETE FROM console_sessions WHERE hash = $1`, hash)
	return err
}

// DeleteConsoleTokens deletes the links and sessions that expired before a
// time.
func (s *Queries) DeleteConsoleTokens(ctx context.Context, expiredBefore time.Time) error {
	if _, err := s.Q.Exec(ctx, `DELETE FROM console_links WHERE expires_at < $1`, ms(expiredBefore)); err != nil {
		return err
	}
	_, err := s.Q.Exec(ctx, `DELETE FROM console_sessions WHERE expires_at < $1`, ms(expiredBefore))
	return err
}
