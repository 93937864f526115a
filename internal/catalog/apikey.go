package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/musterhq/muster"
)

// Operator roles, from most to least privileged.
const (
	RoleAdmin    = "admin"    // everything, including keys, groups and enlistment
	RoleOperator = "operator" // jobs, starts, instructions
	RoleReader   = "reader"   // read only
)

// AdminKey is the name of the admin key a master makes when it starts on a
// new catalog.
const AdminKey = "admin"

// MaxKeyTTL bounds how long an API key may live when it expires at all.
const MaxKeyTTL = 10 * 365 * 24 * time.Hour

// KeyUseGranularity is how precisely an API key's last use is recorded: a
// key is written at most once per this much time (per master), not on
// every request.
const KeyUseGranularity = time.Minute

// APIKeyRow is an API key as stored.
type APIKeyRow struct {
	ID         int64
	Name       string
	Role       string
	Scopes     []string // as muster.Scope.Strings writes them
	CreatedAt  time.Time
	CreatedBy  string
	ExpiresAt  *time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
	RevokedBy  string
}

// key is the row as operators see it at now.
func (r APIKeyRow) key(now time.Time) muster.APIKey {
	scopes := r.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return muster.APIKey{Name: r.Name, Role: r.Role, Scopes: scopes, State: muster.KeyState(now, r.ExpiresAt, r.RevokedAt),
		CreatedAt: r.CreatedAt, CreatedBy: r.CreatedBy, ExpiresAt: r.ExpiresAt, LastUsedAt: r.LastUsedAt,
		RevokedAt: r.RevokedAt, RevokedBy: r.RevokedBy}
}

// NewAPIKey describes a key to create.
type NewAPIKey struct {
	Name  string
	Role  string
	Scope muster.Scope
	// TTL is how long the key lives; 0 for a key that does not expire.
	TTL time.Duration
}

// validate checks a new key against the rules of keys.
func (k NewAPIKey) validate() error {
	if err := muster.ValidateName("name", k.Name); err != nil {
		return err
	}
	switch k.Role {
	case RoleAdmin, RoleOperator, RoleReader:
	default:
		return muster.Errorf(muster.EINVALID, "role: %q is not a role; use admin, operator or reader", k.Role)
	}
	if k.Role == RoleAdmin && k.Scope.Limited() {
		return muster.Errorf(muster.EINVALID, "scope: an admin key is never scoped, since it manages keys, groups and targets for the whole fleet; give a team an operator or reader key with scopes")
	}
	if k.TTL < 0 || k.TTL > MaxKeyTTL || (k.TTL > 0 && k.TTL < time.Minute) {
		return muster.Errorf(muster.EINVALID, "ttl: a key lives from 1m to %s (or, with no ttl, until it is revoked), not %s", MaxKeyTTL, k.TTL)
	}
	return nil
}

// CreateAPIKey stores a new key by the hash of its secret. A key that was
// revoked or has expired gives up its name to the new one; an active key
// of the same name is a conflict.
func (c *Catalog) CreateAPIKey(ctx context.Context, k NewAPIKey, hash string, by muster.Actor) (muster.APIKey, error) {
	if err := k.validate(); err != nil {
		return muster.APIKey{}, err
	}
	var out muster.APIKey
	err := c.update(ctx, func(tx *tx) error {
		if err := tx.scopedGroupsExist(k.Scope.Groups); err != nil {
			return err
		}
		keys, err := tx.LockAPIKeys(ctx)
		if err != nil {
			return err
		}
		for _, old := range keys {
			if old.Name != k.Name {
				continue
			}
			if state := old.key(tx.now).State; state == muster.KeyActive {
				return muster.Errorf(muster.ECONFLICT, "an API key named %q already exists; revoke it first (`muster apikey revoke %s`) or choose another name", k.Name, k.Name)
			}
			if err := tx.DeleteAPIKey(ctx, old.ID); err != nil {
				return err
			}
		}
		row := APIKeyRow{Name: k.Name, Role: k.Role, Scopes: k.Scope.Strings(), CreatedAt: tx.now, CreatedBy: by.Name}
		if k.TTL > 0 {
			expires := tx.now.Add(k.TTL)
			row.ExpiresAt = &expires
		}
		err = tx.InsertAPIKey(ctx, row, hash)
		if errors.Is(err, ErrDuplicate) {
			// Another master created it since the keys were read.
			return fmt.Errorf("api key %q: %w", k.Name, ErrRetry)
		}
		if err != nil {
			return err
		}
		out = row.key(tx.now)
		return tx.audit(by, muster.AuditEntry{Action: muster.AuditKeyCreate, Object: "apikey " + k.Name, Changes: keyLines(row)})
	})
	return out, err
}

// scopedGroupsExist refuses a scope naming a group that does not exist:
// the key would cover whatever group is later given the name, which a
// group's rename and deletion keep from happening (see DeleteGroup), and a
// misspelt group would leave its team a key that sees nothing. The groups'
// rows are taken, shared, before they are read and before the keys are
// (as a group's deletion or rename takes its row, then the keys): one
// deleting or renaming a group at once on another master either commits
// first, and the group is not found here, or waits, and then sees this
// key.
func (tx *tx) scopedGroupsExist(groups []string) error {
	if len(groups) == 0 {
		return nil
	}
	if err := tx.ShareGroups(tx.ctx); err != nil {
		return err
	}
	ids, err := tx.GroupIDs(tx.ctx, groups)
	if err != nil {
		return err
	}
	for _, g := range groups {
		if _, ok := ids[g]; !ok {
			return muster.Errorf(muster.EINVALID, "scope: group %q does not exist; create it first (`muster group create %s`), or scope the key to a group that does", g, g)
		}
	}
	return nil
}

// keyLines describes a new key for the audit log.
func keyLines(r APIKeyRow) []string {
	lines := []string{"role: " + r.Role}
	if len(r.Scopes) > 0 {
		lines = append(lines, "scopes: "+strings.Join(r.Scopes, ", "))
	}
	if r.ExpiresAt != nil {
		lines = append(lines, "expires: "+r.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return lines
}

// ResetAdminKey gives the admin key a new secret: unscoped, with no expiry,
// not revoked, created if it was deleted. It is how an operator who lost
// every admin key gets one back (`muster master --reset-admin-token`,
// which needs the master's data directory).
func (c *Catalog) ResetAdminKey(ctx context.Context, hash string, by muster.Actor) error {
	return c.update(ctx, func(tx *tx) error {
		row := APIKeyRow{Name: AdminKey, Role: RoleAdmin, CreatedAt: tx.now, CreatedBy: by.Name}
		if err := tx.ResetAPIKey(ctx, row, hash); err != nil {
			return err
		}
		return tx.audit(by, muster.AuditEntry{Action: muster.AuditKeyCreate, Object: "apikey " + AdminKey,
			Changes: append(keyLines(row), "a new secret for the admin key (--reset-admin-token)")})
	})
}

// FindAPIKeys returns every key, revoked and expired ones included, by
// name.
func (c *Catalog) FindAPIKeys(ctx context.Context) ([]muster.APIKey, error) {
	rows, err := c.store.FindAPIKeys(ctx, "")
	if err != nil {
		return nil, err
	}
	now := c.opts.Now()
	keys := make([]muster.APIKey, len(rows))
	for i, r := range rows {
		keys[i] = c.keyUse.overlay(r).key(now)
	}
	return keys, nil
}

// RevokeAPIKey revokes a key: it is refused from then on, saying it was
// revoked. The last admin key that has not expired cannot be revoked, so
// that the master always has an admin.
func (c *Catalog) RevokeAPIKey(ctx context.Context, name string, by muster.Actor) (muster.APIKey, error) {
	var out muster.APIKey
	err := c.update(ctx, func(tx *tx) error {
		keys, err := tx.LockAPIKeys(ctx)
		if err != nil {
			return err
		}
		var target *APIKeyRow
		admins := 0
		for i, k := range keys {
			if k.Name == name {
				target = &keys[i]
			} else if k.Role == RoleAdmin && k.key(tx.now).State == muster.KeyActive {
				admins++
			}
		}
		switch {
		case target == nil:
			return muster.Errorf(muster.ENOTFOUND, "no API key named %q; `muster apikey list` shows them", name)
		case target.RevokedAt != nil:
			return muster.Errorf(muster.EPRECONDITION, "API key %q was already revoked at %s by %s", name, target.RevokedAt.UTC().Format(time.RFC3339), dashed(target.RevokedBy))
		case target.Role == RoleAdmin && admins == 0 && target.key(tx.now).State == muster.KeyActive:
			return muster.Errorf(muster.EPRECONDITION, "API key %q is the last admin key that has not expired: without it nobody could manage keys, groups or targets; create another first (`muster apikey create NAME --role admin`), then revoke this one", name)
		}
		done, err := tx.RevokeAPIKey(ctx, target.ID, tx.now, by.Name)
		if err != nil {
			return err
		}
		if !done {
			return fmt.Errorf("api key %q: %w", name, ErrRetry)
		}
		at := tx.now
		target.RevokedAt, target.RevokedBy = &at, by.Name
		out = target.key(tx.now)
		return tx.audit(by, muster.AuditEntry{Action: muster.AuditKeyRevoke, Object: "apikey " + name,
			Changes: []string{"role: " + target.Role}})
	})
	return out, err
}

func dashed(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// CountAPITokens returns how many API keys exist, in any state; the master
// creates the first admin key when there are none.
func (c *Catalog) CountAPITokens(ctx context.Context) (int, error) {
	return c.store.CountAPITokens(ctx)
}

// KeyIdentity is the API key behind a request: who is acting, in which
// role, limited to which scope.
type KeyIdentity struct {
	ID    int64
	Name  string
	Role  string
	Scope muster.Scope
}

// AuthenticateAPIKey returns the active key whose secret has the hash. An
// expired or revoked key is refused, saying which. The use is noted, and
// written within KeyUseGranularity. The row read is remembered for the next
// requests until a change that may touch it commits (see credentials).
func (c *Catalog) AuthenticateAPIKey(ctx context.Context, hash string) (KeyIdentity, error) {
	now := c.opts.Now()
	r, err := recall(&c.creds, (*credentials).keyRows, hash, now, func() (APIKeyRow, error) { return c.store.FindAPIKey(ctx, hash) })
	if noRows(err) {
		return KeyIdentity{}, muster.Errorf(muster.EUNAUTHORIZED, "the API key is not valid for this master")
	}
	if err != nil {
		return KeyIdentity{}, err
	}
	switch muster.KeyState(now, r.ExpiresAt, r.RevokedAt) {
	case muster.KeyRevoked:
		return KeyIdentity{}, muster.Errorf(muster.EUNAUTHORIZED, "API key %q was revoked at %s by %s; ask an admin for a new key (`muster apikey create`)",
			r.Name, r.RevokedAt.UTC().Format(time.RFC3339), dashed(r.RevokedBy))
	case muster.KeyExpired:
		return KeyIdentity{}, muster.Errorf(muster.EUNAUTHORIZED, "API key %q expired at %s; ask an admin for a new key (`muster apikey create`)",
			r.Name, r.ExpiresAt.UTC().Format(time.RFC3339))
	}
	scope, err := muster.ParseScopes("scopes", r.Scopes)
	if err != nil {
		// A stored scope that no longer reads must not widen the key.
		return KeyIdentity{}, fmt.Errorf("api key %q: stored scopes: %w", r.Name, err)
	}
	c.keyUse.note(r, now)
	return KeyIdentity{ID: r.ID, Name: r.Name, Role: r.Role, Scope: scope}, nil
}

// keyUse coalesces the last use of API keys in memory: a key is written
// when its stored last use is KeyUseGranularity old or more, by the next
// flush, so a busy key costs one write a minute, not one per request. Each
// master flushes what it saw; the write only moves the time forward.
type keyUse struct {
	mu      sync.Mutex
	pending map[int64]time.Time
}

// note records a use of key r at now, if its stored last use is stale.
func (u *keyUse) note(r APIKeyRow, now time.Time) {
	if r.LastUsedAt != nil && now.Sub(*r.LastUsedAt) < KeyUseGranularity {
		return
	}
	u.mu.Lock()
	if u.pending == nil {
		u.pending = map[int64]time.Time{}
	}
	if now.After(u.pending[r.ID]) {
		u.pending[r.ID] = now
	}
	u.mu.Unlock()
}

// overlay shows a use not yet written.
func (u *keyUse) overlay(r APIKeyRow) APIKeyRow {
	u.mu.Lock()
	defer u.mu.Unlock()
	if at, ok := u.pending[r.ID]; ok && (r.LastUsedAt == nil || at.After(*r.LastUsedAt)) {
		r.LastUsedAt = &at
	}
	return r
}

// take empties the pending uses.
func (u *keyUse) take() map[int64]time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	batch := u.pending
	u.pending = nil
	return batch
}

// putBack returns uses a failed flush did not write, unless newer ones
// came meanwhile.
func (u *keyUse) putBack(batch map[int64]time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.pending == nil {
		u.pending = map[int64]time.Time{}
	}
	for id, at := range batch {
		if at.After(u.pending[id]) {
			u.pending[id] = at
		}
	}
}

// FlushKeyUses writes the noted uses of API keys now.
func (c *Catalog) FlushKeyUses(ctx context.Context) error {
	batch := c.keyUse.take()
	if len(batch) == 0 {
		return nil
	}
	err := c.update(ctx, func(tx *tx) error { return tx.SetKeysUsed(ctx, batch) })
	if err != nil {
		c.keyUse.putBack(batch)
	}
	return err
}
