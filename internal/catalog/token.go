package catalog

import (
	"context"
	"time"

	"github.com/musterhq/muster"
)

// MaxEnlistTokenTTL bounds how long an enlistment token may live.
const MaxEnlistTokenTTL = 7 * 24 * time.Hour

// CreateEnlistToken stores the hash of a single-use enlistment token bound to
// target name, valid for ttl.
func (c *Catalog) CreateEnlistToken(ctx context.Context, hash, name string, ttl time.Duration, by muster.Actor) (expires time.Time, err error) {
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
		if err := tx.InsertEnlistToken(ctx, EnlistTokenRow{Hash: hash, TargetName: name, CreatedAt: tx.now, CreatedBy: by.Name, ExpiresAt: expires}); err != nil {
			return err
		}
		return tx.audit(by, muster.AuditEntry{Action: muster.AuditTokenCreate, Targets: []string{name},
			Changes: []string{"single-use enlistment token for " + name + ", expires " + expires.UTC().Format(time.RFC3339)}})
	})
	return expires, err
}
