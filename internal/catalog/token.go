package catalog

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/sqlite"
)

// Operator roles, from most to least privileged.
const (
	RoleAdmin    = "admin"    // everything, including tokens and enlistment
	RoleOperator = "operator" // jobs, starts, instructions
	RoleReader   = "reader"   // read only
)

// MaxEnlistTokenTTL bounds how long an enlistment token may live.
const MaxEnlistTokenTTL = 7 * 24 * time.Hour

// CreateEnlistToken stores the hash of a single-use enlistment token bound to
// target name, valid for ttl.
func (db *DB) CreateEnlistToken(ctx context.Context, hash, name string, ttl time.Duration, by string) (expires time.Time, err error) {
	if err := muster.ValidateTargetName("target", name); err != nil {
		return time.Time{}, err
	}
	if ttl < time.Minute || ttl > MaxEnlistTokenTTL {
		return time.Time{}, muster.Errorf(muster.EINVALID, "ttl: a token lives from 1m to %s, not %s", MaxEnlistTokenTTL, ttl)
	}
	err = db.update(ctx, func(tx *tx) error {
		expires = tx.now.Add(ttl)
		// Spent and expired tokens are of no further use; drop them here
		// rather than in a background job.
		if _, err := tx.Exec(`DELETE FROM enlist_tokens WHERE expires_at < ?`, ms(tx.now.Add(-24*time.Hour))); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO enlist_tokens (hash, target_name, created_at, created_by, expires_at) VALUES (?, ?, ?, ?, ?)`,
			hash, name, ms(tx.now), by, ms(expires))
		return err
	})
	return expires, err
}

// APIToken is an operator's credential as the catalog knows it.
type APIToken struct {
	ID   int64
	Name string
	Role string
}

// CreateAPIToken stores the hash of an operator token.
func (db *DB) CreateAPIToken(ctx context.Context, name, role, hash string) error {
	switch role {
	case RoleAdmin, RoleOperator, RoleReader:
	default:
		return muster.Errorf(muster.EINVALID, "role: %q is not a role; use admin, operator or reader", role)
	}
	return db.update(ctx, func(tx *tx) error {
		_, err := tx.Exec(`INSERT INTO api_tokens (name, role, hash, created_at) VALUES (?, ?, ?, ?)`, name, role, hash, ms(tx.now))
		if sqlite.IsUniqueViolation(err) {
			return muster.Errorf(muster.ECONFLICT, "an API token named %q already exists", name)
		}
		return err
	})
}

// CountAPITokens returns how many operator tokens exist; the master creates
// the first admin token when there are none.
func (db *DB) CountAPITokens(ctx context.Context) (int, error) {
	var n int
	err := db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_tokens`).Scan(&n)
	return n, err
}

// ReplaceAPIToken sets the hash of the named token, creating it if needed.
func (db *DB) ReplaceAPIToken(ctx context.Context, name, role, hash string) error {
	return db.update(ctx, func(tx *tx) error {
		_, err := tx.Exec(`INSERT INTO api_tokens (name, role, hash, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, role = excluded.role`, name, role, hash, ms(tx.now))
		return err
	})
}

// AuthenticateAPIToken returns the token with the given hash.
func (db *DB) AuthenticateAPIToken(ctx context.Context, hash string) (APIToken, error) {
	var t APIToken
	err := db.queryRow(ctx, `SELECT id, name, role FROM api_tokens WHERE hash = ?`, hash).Scan(&t.ID, &t.Name, &t.Role)
	if errors.Is(err, sql.ErrNoRows) {
		return t, muster.Errorf(muster.EUNAUTHORIZED, "the API token is not valid for this master")
	}
	return t, err
}
