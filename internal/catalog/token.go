package catalog

import (
	"context"
	"fmt"
	"slices"
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

// token is the row as operators see it at now: never its hash.
func (r EnlistTokenRow) token(now time.Time) muster.EnlistToken {
	return muster.EnlistToken{ID: r.ID, Target: r.TargetName, State: muster.TokenState(now, r.ExpiresAt, r.UsedAt, r.RevokedAt),
		CreatedAt: r.CreatedAt, CreatedBy: r.CreatedBy, ExpiresAt: r.ExpiresAt, UsedAt: r.UsedAt,
		RevokedAt: r.RevokedAt, RevokedBy: r.RevokedBy}
}

// FindEnlistTokens returns the enlistment tokens that could still enlist a
// target, oldest first; with all, also those used, expired or revoked that
// the catalog still keeps (a day past their expiry).
func (c *Catalog) FindEnlistTokens(ctx context.Context, all bool) ([]muster.EnlistToken, error) {
	rows, err := c.store.FindEnlistTokens(ctx)
	if err != nil {
		return nil, err
	}
	now := c.opts.Now()
	toks := []muster.EnlistToken{}
	for _, r := range rows {
		if t := r.token(now); all || t.State == muster.TokenActive {
			toks = append(toks, t)
		}
	}
	return toks, nil
}

// RevokeEnlistToken revokes the enlistment token with the id: from the
// commit on, every master sharing the catalog refuses it, saying it was
// revoked and by whom. A token that was used, revoked or has expired is
// not revoked, with an error saying which.
func (c *Catalog) RevokeEnlistToken(ctx context.Context, id int64, by muster.Actor) (muster.EnlistToken, error) {
	var out muster.EnlistToken
	err := c.update(ctx, func(tx *tx) error {
		rows, err := tx.FindEnlistTokens(ctx)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(rows, func(r EnlistTokenRow) bool { return r.ID == id })
		if i < 0 {
			return muster.Errorf(muster.ENOTFOUND, "no enlistment token %d; `muster token list --all` shows the tokens the master keeps", id)
		}
		r := rows[i]
		if err := revocable(r, tx.now); err != nil {
			return err
		}
		revoked, err := tx.revokeTokens(by, r.TargetName, []EnlistTokenRow{r})
		if err != nil {
			return err
		}
		out = revoked[0]
		return nil
	})
	return out, err
}

// RevokeTargetEnlistTokens revokes every enlistment token for the target
// name that could still enlist it, and returns them. None is an error.
func (c *Catalog) RevokeTargetEnlistTokens(ctx context.Context, name string, by muster.Actor) ([]muster.EnlistToken, error) {
	name = muster.NormalizeTargetName(name)
	if err := muster.ValidateTargetName("target", name); err != nil {
		return nil, err
	}
	var out []muster.EnlistToken
	err := c.update(ctx, func(tx *tx) error {
		rows, err := tx.FindEnlistTokens(ctx)
		if err != nil {
			return err
		}
		rows = slices.DeleteFunc(rows, func(r EnlistTokenRow) bool {
			return r.TargetName != name || r.token(tx.now).State != muster.TokenActive
		})
		if len(rows) == 0 {
			return muster.Errorf(muster.ENOTFOUND, "no enlistment token for target %q can still enlist it (none is unused, unrevoked and unexpired); `muster token list --all` shows the tokens the master keeps", name)
		}
		out, err = tx.revokeTokens(by, name, rows)
		return err
	})
	return out, err
}

// revocable says why a token cannot be revoked, if it cannot.
func revocable(r EnlistTokenRow, now time.Time) error {
	switch r.token(now).State {
	case muster.TokenRevoked:
		return muster.Errorf(muster.EPRECONDITION, "enlistment token %d (for target %s) was already revoked at %s by %s",
			r.ID, r.TargetName, r.RevokedAt.UTC().Format(time.RFC3339), dashed(r.RevokedBy))
	case muster.TokenUsed:
		return muster.Errorf(muster.EPRECONDITION, "enlistment token %d (for target %s) was already used at %s, by the target it enlisted; to take that target out of the fleet, delete it (`muster target delete %s`)",
			r.ID, r.TargetName, r.UsedAt.UTC().Format(time.RFC3339), r.TargetName)
	case muster.TokenExpired:
		return muster.Errorf(muster.EPRECONDITION, "enlistment token %d (for target %s) already expired at %s and can no longer enlist anything",
			r.ID, r.TargetName, r.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// revokeTokens revokes tokens for the target name, each of which could
// still enlist, and writes one audit entry for them.
func (tx *tx) revokeTokens(by muster.Actor, name string, rows []EnlistTokenRow) ([]muster.EnlistToken, error) {
	out := make([]muster.EnlistToken, len(rows))
	lines := make([]string, len(rows))
	for i, r := range rows {
		done, err := tx.RevokeEnlistToken(tx.ctx, r.ID, tx.now, by.Name)
		if err != nil {
			return nil, err
		}
		if !done {
			// Used or revoked by another master since it was read.
			return nil, fmt.Errorf("enlistment token %d: %w", r.ID, ErrRetry)
		}
		at := tx.now
		r.RevokedAt, r.RevokedBy = &at, by.Name
		out[i] = r.token(tx.now)
		lines[i] = fmt.Sprintf("enlistment token %d for %s, created at %s by %s, expiring %s, revoked", r.ID, name,
			r.CreatedAt.UTC().Format(time.RFC3339), dashed(r.CreatedBy), r.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return out, tx.audit(by, muster.AuditEntry{Action: muster.AuditTokenRevoke, Targets: []string{name}, Changes: lines})
}
