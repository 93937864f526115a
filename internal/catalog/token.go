package catalog

import (
	"context"
	"errors"
	"time"

	"github.com/musterhq/muster"
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
func (c *Catalog) CreateEnlistToken(ctx context.Context, hash, name string, ttl time.Duration, by string) (expires time.Time, err error) {
	if err := muster.ValidateTargetName("target", name); err != nil {
		return time.Time{}, err
	}
	if ttl < time.Minute || ttl > MaxEnlistTokenTTL {
		return time.Time{}, muster.Errorf(muster.EINVALID, "ttl: a token lives from 1m to %s, not %s", MaxEnlistTokenTTL, ttl)
	}
	err = c.update(ctx, func(tx *tx) error {
		expires = tx.now.Add(ttl)
		// Spent and expired tokens are of no further use; drop them here
		// rather than in a background job.
		if err := tx.DeleteEnlistTokens(ctx, tx.now.Add(-24*time.Hour)); err != nil {
			return err
		}
		return tx.InsertEnlistToken(ctx, EnlistTokenRow{Hash: hash, TargetName: name, CreatedAt: tx.now, CreatedBy: by, ExpiresAt: expires})
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
func (c *Catalog) CreateAPIToken(ctx context.Context, name, role, hash string) error {
	switch role {
	case RoleAdmin, RoleOperator, RoleReader:
	default:
		return muster.Errorf(muster.EINVALID, "role: %q is not a role; use admin, operator or reader", role)
	}
	return c.update(ctx, func(tx *tx) error {
		err := tx.InsertAPIToken(ctx, APIToken{Name: name, Role: role}, hash, tx.now)
		if errors.Is(err, ErrDuplicate) {
			return muster.Errorf(muster.ECONFLICT, "an API token named %q already exists", name)
		}
		return err
	})
}

// CountAPITokens returns how many operator tokens exist; the master creates
// the first admin token when there are none.
func (c *Catalog) CountAPITokens(ctx context.Context) (int, error) {
	return c.store.CountAPITokens(ctx)
}

// ReplaceAPIToken sets the hash of the named token, creating it if needed.
func (c *Catalog) ReplaceAPIToken(ctx context.Context, name, role, hash string) error {
	return c.update(ctx, func(tx *tx) error { return tx.UpsertAPIToken(ctx, APIToken{Name: name, Role: role}, hash, tx.now) })
}

// AuthenticateAPIToken returns the token with the given hash.
func (c *Catalog) AuthenticateAPIToken(ctx context.Context, hash string) (APIToken, error) {
	t, err := c.store.FindAPIToken(ctx, hash)
	if noRows(err) {
		return t, muster.Errorf(muster.EUNAUTHORIZED, "the API token is not valid for this master")
	}
	return t, err
}
