package catalog

import (
	"context"
	"fmt"
	"time"

	"github.com/musterhq/muster"
)

// The web console signs people in with sessions: a session is a secret in a
// cookie that stands for an API key. It starts from the key itself (typed
// into the sign-in form) or from a login link an admin printed. Links and
// sessions are stored by the hash of their secret, expire, and hold only
// while their key does: each check reads the key's row with the session's,
// so revoking the key ends its sessions at once.

// Bounds of login links and console sessions.
const (
	MaxLoginLinkTTL   = 24 * time.Hour
	DefaultLinkTTL    = 5 * time.Minute
	SessionTTL        = 12 * time.Hour
	consoleTokenGrace = 24 * time.Hour
)

// ConsoleTokenRow is a login link or a session as stored, with the API key
// it belongs to.
type ConsoleTokenRow struct {
	ID        int64
	KeyID     int64
	Role      string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time // links only
	Key       APIKeyRow
}

// CreateLoginLink stores the hash of a single-use login link for the
// console, valid for ttl, that signs in as key by in role. The role may not
// be above the key's own: a link is never a way to more rights.
func (c *Catalog) CreateLoginLink(ctx context.Context, hash string, by KeyIdentity, role string, ttl time.Duration, actor muster.Actor) (time.Time, error) {
	if role == "" {
		role = by.Role
	}
	if roleRank(role) == 0 {
		return time.Time{}, muster.Errorf(muster.EINVALID, "role: %q is not a role; use admin, operator or reader", role)
	}
	if roleRank(role) > roleRank(by.Role) {
		return time.Time{}, muster.Errorf(muster.EFORBIDDEN, "role: API key %q has the %s role and cannot sign anyone in as %s", by.Name, by.Role, role)
	}
	if ttl < time.Minute || ttl > MaxLoginLinkTTL {
		return time.Time{}, muster.Errorf(muster.EINVALID, "ttl: a login link lives from 1m to %s, not %s", MaxLoginLinkTTL, ttl)
	}
	var expires time.Time
	err := c.update(ctx, func(tx *tx) error {
		expires = tx.now.Add(ttl)
		if err := tx.DeleteConsoleTokens(ctx, tx.now.Add(-consoleTokenGrace)); err != nil {
			return err
		}
		row := ConsoleTokenRow{KeyID: by.ID, Role: role, CreatedAt: tx.now, ExpiresAt: expires}
		if err := tx.InsertConsoleLink(ctx, row, hash); err != nil {
			return err
		}
		return tx.audit(actor, muster.AuditEntry{Action: muster.AuditLoginLinkCreate, Object: "apikey " + by.Name,
			Changes: []string{"single-use console login link, role " + role + ", expires " + expires.UTC().Format(time.RFC3339)}})
	})
	return expires, err
}

// roleRank orders the roles, least first; it is 0 for a word that is not
// a role. A switch, not a map, so that no process builds it at startup.
func roleRank(role string) int {
	switch role {
	case RoleReader:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// RoleAtLeast reports whether role have is need or above it. A role that
// is not one is below every role.
func RoleAtLeast(have, need string) bool {
	return roleRank(have) > 0 && roleRank(have) >= roleRank(need)
}

// keyRefusal says why a stored key no longer signs anyone in, or nil.
func keyRefusal(k APIKeyRow, now time.Time) error {
	switch muster.KeyState(now, k.ExpiresAt, k.RevokedAt) {
	case muster.KeyRevoked:
		return muster.Errorf(muster.EUNAUTHORIZED, "API key %q was revoked at %s by %s; sign in again with an active key",
			k.Name, k.RevokedAt.UTC().Format(time.RFC3339), dashed(k.RevokedBy))
	case muster.KeyExpired:
		return muster.Errorf(muster.EUNAUTHORIZED, "API key %q expired at %s; sign in again with an active key",
			k.Name, k.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// identity is the key of a console token, in the token's role.
func (t ConsoleTokenRow) identity() (KeyIdentity, error) {
	scope, err := muster.ParseScopes("scopes", t.Key.Scopes)
	if err != nil {
		return KeyIdentity{}, fmt.Errorf("api key %q: stored scopes: %w", t.Key.Name, err)
	}
	role := t.Role
	if roleRank(t.Key.Role) < roleRank(role) {
		role = t.Key.Role // the key was never above; keep to the lower
	}
	return KeyIdentity{ID: t.Key.ID, Name: t.Key.Name, Role: role, Scope: scope}, nil
}

// OpenLoginLink spends a login link and starts a session for its key in
// its role, stored by sessionHash. A link works once, before it expires,
// while its key is active.
func (c *Catalog) OpenLoginLink(ctx context.Context, linkHash, sessionHash, source string) (KeyIdentity, time.Time, error) {
	var id KeyIdentity
	var expires time.Time
	err := c.update(ctx, func(tx *tx) error {
		l, err := tx.FindConsoleLink(ctx, linkHash)
		if id, err = l.linkIdentity(err, tx.now); err != nil {
			return err
		}
		used, err := tx.UseConsoleLink(ctx, l.ID, tx.now)
		if err != nil {
			return err
		}
		if !used {
			return fmt.Errorf("login link: %w", ErrRetry)
		}
		expires = sessionEnd(tx.now, l.Key)
		return tx.InsertConsoleSession(ctx, ConsoleTokenRow{KeyID: l.KeyID, Role: id.Role, CreatedAt: tx.now, ExpiresAt: expires}, sessionHash, source)
	})
	return id, expires, err
}

// LoginLink returns the key and role a login link would sign in as, and
// when it expires, without spending it: what the page the link opens
// shows above its button. It refuses a link that OpenLoginLink would.
func (c *Catalog) LoginLink(ctx context.Context, linkHash string) (KeyIdentity, time.Time, error) {
	l, err := c.store.FindConsoleLink(ctx, linkHash)
	id, err := l.linkIdentity(err, c.opts.Now())
	return id, l.ExpiresAt, err
}

// linkIdentity is the key a login link signs in as at now, or why it does
// not; err is the error of reading the link.
func (l ConsoleTokenRow) linkIdentity(err error, now time.Time) (KeyIdentity, error) {
	if noRows(err) {
		return KeyIdentity{}, muster.Errorf(muster.EUNAUTHORIZED, "the login link is not valid for this master; ask an admin for a new one (`muster login-link`)")
	}
	if err != nil {
		return KeyIdentity{}, err
	}
	switch {
	case l.UsedAt != nil:
		return KeyIdentity{}, muster.Errorf(muster.EUNAUTHORIZED, "the login link was used at %s and works once; ask an admin for a new one (`muster login-link`)", l.UsedAt.UTC().Format(time.RFC3339))
	case !now.Before(l.ExpiresAt):
		return KeyIdentity{}, muster.Errorf(muster.EUNAUTHORIZED, "the login link expired at %s; ask an admin for a new one (`muster login-link`)", l.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if err := keyRefusal(l.Key, now); err != nil {
		return KeyIdentity{}, err
	}
	return l.identity()
}

// sessionEnd is when a session started at now ends: after SessionTTL, or
// when its key expires if that is sooner.
func sessionEnd(now time.Time, k APIKeyRow) time.Time {
	end := now.Add(SessionTTL)
	if k.ExpiresAt != nil && k.ExpiresAt.Before(end) {
		end = *k.ExpiresAt
	}
	return end
}

// StartSession starts a session for the active API key whose secret has
// keyHash, in the key's role, stored by sessionHash.
func (c *Catalog) StartSession(ctx context.Context, keyHash, sessionHash, source string) (KeyIdentity, time.Time, error) {
	id, err := c.AuthenticateAPIKey(ctx, keyHash)
	if err != nil {
		return KeyIdentity{}, time.Time{}, err
	}
	var expires time.Time
	err = c.update(ctx, func(tx *tx) error {
		if err := tx.DeleteConsoleTokens(ctx, tx.now.Add(-consoleTokenGrace)); err != nil {
			return err
		}
		keys, err := tx.FindAPIKeys(ctx, id.Name)
		if err != nil {
			return err
		}
		if len(keys) != 1 || keys[0].ID != id.ID {
			return muster.Errorf(muster.EUNAUTHORIZED, "API key %q changed while signing in; sign in again", id.Name)
		}
		expires = sessionEnd(tx.now, keys[0])
		return tx.InsertConsoleSession(ctx, ConsoleTokenRow{KeyID: id.ID, Role: id.Role, CreatedAt: tx.now, ExpiresAt: expires}, sessionHash, source)
	})
	return id, expires, err
}

// AuthenticateSession returns the key a session stands for, in its role.
// An expired session, or one whose key was revoked, expired or deleted, is
// refused.
func (c *Catalog) AuthenticateSession(ctx context.Context, hash string) (KeyIdentity, error) {
	s, err := c.store.FindConsoleSession(ctx, hash)
	if noRows(err) {
		return KeyIdentity{}, muster.Errorf(muster.EUNAUTHORIZED, "you are signed out; sign in with an API key or a login link")
	}
	if err != nil {
		return KeyIdentity{}, err
	}
	now := c.opts.Now()
	if !now.Before(s.ExpiresAt) {
		return KeyIdentity{}, muster.Errorf(muster.EUNAUTHORIZED, "your session expired at %s; sign in again", s.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if err := keyRefusal(s.Key, now); err != nil {
		return KeyIdentity{}, err
	}
	id, err := s.identity()
	if err != nil {
		return KeyIdentity{}, err
	}
	c.keyUse.note(s.Key, now)
	return id, nil
}

// EndSession signs a session out.
func (c *Catalog) EndSession(ctx context.Context, hash string) error {
	return c.update(ctx, func(tx *tx) error { return tx.DeleteConsoleSession(ctx, hash) })
}

// FindTargetJobs returns the jobs that run on a target, each with where it
// runs and how it last went there: what the console's target page shows,
// without reading every other job's outcomes.
func (c *Catalog) FindTargetJobs(ctx context.Context, target string) ([]muster.JobStatus, error) {
	id, err := c.TargetID(ctx, target)
	if err != nil {
		return nil, err
	}
	return c.findJobs(ctx, JobQuery{TargetID: id})
}

// FindJobList returns every job's definition, without where it runs: the
// list beside the matrix, which FindOutcomes fills.
func (c *Catalog) FindJobList(ctx context.Context) ([]muster.JobStatus, error) {
	return c.findJobs(ctx, JobQuery{WithoutTargets: true})
}

// FindOutcomes returns the last outcome of every job on each of its
// targets, in no order.
func (c *Catalog) FindOutcomes(ctx context.Context) ([]OutcomeRow, error) {
	return c.store.FindOutcomes(ctx)
}
