package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/musterhq/muster/internal/catalog"
)

// certColumns are what FindCert and FindCerts read of a certificate and
// its target, in scanCert's order.
const certColumns = `c.serial, c.target_id, c.issued_at, c.not_after, c.key_hash, c.replaced_at,
	t.uid, t.name, t.state, t.paused, t.poll_interval, t.clock_skew_ms
	FROM certs c JOIN targets t ON t.id = c.target_id`

// scanCert scans a row of certColumns.
func scanCert(r Row) (catalog.CertRow, error) {
	var c catalog.CertRow
	var issued, notAfter int64
	var replaced sql.NullInt64
	err := r.Scan(&c.Serial, &c.TargetID, &issued, &notAfter, &c.KeyHash, &replaced,
		&c.Target.UID, &c.Target.Name, &c.Target.State, &c.Target.Paused, &c.Target.PollInterval, &c.Target.ClockSkewMS)
	c.Target.ID = c.TargetID
	c.IssuedAt, c.NotAfter, c.ReplacedAt = fromMS(issued), fromMS(notAfter), fromNullMS(replaced)
	return c, err
}

// FindCert returns a certificate with its target.
func (s *Queries) FindCert(ctx context.Context, serial string) (catalog.CertRow, error) {
	return scanCert(s.Q.QueryRow(ctx, `SELECT `+certColumns+` WHERE c.serial = $1`, serial))
}

// FindCerts returns the certificates of the serials that exist, with their
// targets, in no particular order.
func (s *Queries) FindCerts(ctx context.Context, serials []string) ([]catalog.CertRow, error) {
	if len(serials) == 0 {
		return nil, nil
	}
	a := &args{d: s.D}
	where, err := inJSON(a, "c.serial", serials)
	if err != nil {
		return nil, err
	}
	return collect(ctx, s.Q, func(r Rows) (catalog.CertRow, error) { return scanCert(r) }, `SELECT `+certColumns+` WHERE `+where, a.vals...)
}

// NewestCert returns the target's certificate that has not been replaced.
func (s *Queries) NewestCert(ctx context.Context, targetID int64) (catalog.CertRow, error) {
	var c catalog.CertRow
	var issued, notAfter int64
	err := s.Q.QueryRow(ctx, `SELECT serial, target_id, issued_at, not_after, key_hash FROM certs
		WHERE target_id = $1 AND replaced_at IS NULL`, targetID).Scan(&c.Serial, &c.TargetID, &issued, &notAfter, &c.KeyHash)
	c.IssuedAt, c.NotAfter = fromMS(issued), fromMS(notAfter)
	return c, err
}

// InsertCert records a certificate issued to a target.
func (s *Queries) InsertCert(ctx context.Context, c catalog.CertRow) error {
	_, err := s.Q.Exec(ctx, `INSERT INTO certs (serial, target_id, issued_at, not_after, key_hash) VALUES ($1, $2, $3, $4, $5)`,
		c.Serial, c.TargetID, ms(c.IssuedAt), ms(c.NotAfter), c.KeyHash)
	return err
}

// ReplaceCert marks a certificate replaced by a newer one.
func (s *Queries) ReplaceCert(ctx context.Context, serial string, at time.Time) error {
	_, err := s.Q.Exec(ctx, `UPDATE certs SET replaced_at = $1 WHERE serial = $2`, ms(at), serial)
	return err
}

// DeleteReplacedCerts deletes a target's replaced certificates that expired
// before a time.
func (s *Queries) DeleteReplacedCerts(ctx context.Context, targetID int64, expiredBefore time.Time) error {
	_, err := s.Q.Exec(ctx, `DELETE FROM certs WHERE target_id = $1 AND replaced_at IS NOT NULL AND not_after < $2`,
		targetID, ms(expiredBefore))
	return err
}

// enlistTokenColumns are the columns scanEnlistToken reads.
const enlistTokenColumns = `id, hash, target_name, created_at, created_by, expires_at, used_at, revoked_at, revoked_by`

func scanEnlistToken(r Row) (catalog.EnlistTokenRow, error) {
	var t catalog.EnlistTokenRow
	var created, expires int64
	var used, revoked sql.NullInt64
	err := r.Scan(&t.ID, &t.Hash, &t.TargetName, &created, &t.CreatedBy, &expires, &used, &revoked, &t.RevokedBy)
	t.CreatedAt, t.ExpiresAt, t.UsedAt, t.RevokedAt = fromMS(created), fromMS(expires), fromNullMS(used), fromNullMS(revoked)
	return t, err
}

// FindEnlistToken returns an enlistment token by its hash.
func (s *Queries) FindEnlistToken(ctx context.Context, hash string) (catalog.EnlistTokenRow, error) {
	return scanEnlistToken(s.Q.QueryRow(ctx, `SELECT `+enlistTokenColumns+` FROM enlist_tokens WHERE hash = $1`, hash))
}

// FindEnlistTokens returns every enlistment token kept, oldest first.
func (s *Queries) FindEnlistTokens(ctx context.Context) ([]catalog.EnlistTokenRow, error) {
	return collect(ctx, s.Q, func(r Rows) (catalog.EnlistTokenRow, error) { return scanEnlistToken(r) },
		`SELECT `+enlistTokenColumns+` FROM enlist_tokens ORDER BY created_at, id`)
}

// InsertEnlistToken records an enlistment token's hash.
func (s *Queries) InsertEnlistToken(ctx context.Context, t catalog.EnlistTokenRow) error {
	_, err := s.Q.Exec(ctx, `INSERT INTO enlist_tokens (hash, target_name, created_at, created_by, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		t.Hash, t.TargetName, ms(t.CreatedAt), t.CreatedBy, ms(t.ExpiresAt))
	return err
}

// DeleteEnlistTokens deletes tokens that expired before a time.
func (s *Queries) DeleteEnlistTokens(ctx context.Context, expiredBefore time.Time) error {
	_, err := s.Q.Exec(ctx, `DELETE FROM enlist_tokens WHERE expires_at < $1`, ms(expiredBefore))
	return err
}

// UseEnlistToken marks a token used unless it was used or revoked.
func (s *Queries) UseEnlistToken(ctx context.Context, id int64, at time.Time) (bool, error) {
	n, err := s.Q.Exec(ctx, `UPDATE enlist_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL`, ms(at), id)
	return n > 0, err
}

// RevokeEnlistToken marks a token revoked unless it was used or revoked.
func (s *Queries) RevokeEnlistToken(ctx context.Context, id int64, at time.Time, by string) (bool, error) {
	n, err := s.Q.Exec(ctx, `UPDATE enlist_tokens SET revoked_at = $1, revoked_by = $2
		WHERE id = $3 AND used_at IS NULL AND revoked_at IS NULL`, ms(at), by, id)
	return n > 0, err
}
