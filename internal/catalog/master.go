package catalog

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/musterhq/muster"
)

// InitCA records a new catalog's CA (its certificate and its sealed key),
// unless the catalog has one, and reports whether it did: of masters
// starting at once on an empty catalog, one creates the CA and the others
// use it.
func (c *Catalog) InitCA(ctx context.Context, certKey, cert, keyKey, sealedKey string) (bool, error) {
	var created bool
	err := c.update(ctx, func(tx *tx) error {
		var err error
		if created, err = tx.InsertMeta(ctx, certKey, cert); err != nil || !created {
			return err
		}
		if ok, err := tx.InsertMeta(ctx, keyKey, sealedKey); err != nil || !ok {
			return errors.Join(err, errors.New("the catalog has a CA key but no CA certificate"))
		}
		return nil
	})
	return created, err
}

// KeepMeta stores value under key unless the catalog has a value there
// already, and returns the value the catalog has.
func (c *Catalog) KeepMeta(ctx context.Context, key, value string) (string, error) {
	var created bool
	err := c.update(ctx, func(tx *tx) error {
		var err error
		created, err = tx.InsertMeta(ctx, key, value)
		return err
	})
	if err != nil || created {
		return value, err
	}
	kept, ok, err := c.store.Meta(ctx, key)
	if err == nil && !ok {
		err = fmt.Errorf("the catalog's %s was deleted meanwhile", key)
	}
	return kept, err
}

// UpsertMaster records that a master serves the catalog, and where.
// started is true the first time a master records itself after it
// started: the other masters hear of it at once (Commit.Masters).
//
// A URL that another master, of another name, recorded and was seen at
// since liveSince is that master's: UpsertMaster records nothing and
// returns that master. Two masters at one URL would each take the
// catalog's list of masters, one URL long, for itself alone: neither
// would tell the other of its commits, and their targets would have no
// other master to move to.
func (c *Catalog) UpsertMaster(ctx context.Context, m MasterRow, started bool, liveSince time.Time) (holder *MasterRow, err error) {
	err = c.update(ctx, func(tx *tx) error {
		holder = nil
		ok, err := tx.UpsertMaster(ctx, m, liveSince)
		if err != nil || ok {
			tx.c.Masters = started && ok
			return err
		}
		live, err := tx.FindMasters(ctx, liveSince)
		if err != nil {
			return err
		}
		for _, l := range live {
			if l.URL == m.URL {
				holder = &l
			}
		}
		if holder == nil {
			return fmt.Errorf("%w: master at %s neither recorded nor found", ErrRetry, m.URL)
		}
		return nil
	})
	return holder, err
}

// FindMasters returns the masters seen since a time.
func (c *Catalog) FindMasters(ctx context.Context, seenSince time.Time) ([]MasterRow, error) {
	return c.store.FindMasters(ctx, seenSince)
}

// unavailable remembers the last write the store could not take because it
// was unavailable (its disk full, its server gone), until one succeeds.
type unavailable struct{ err atomic.Pointer[error] }

func (u *unavailable) note(err error) {
	switch {
	case err == nil:
		u.err.Store(nil)
	case muster.ErrorCode(err) == muster.EUNAVAILABLE:
		u.err.Store(&err)
	}
}

// Ready reports why the catalog cannot serve, or nil: the database does
// not answer, or the last write failed for want of it (a full disk).
func (c *Catalog) Ready(ctx context.Context) error {
	if err := c.store.Ping(ctx); err != nil {
		if muster.ErrorCode(err) != muster.EUNAVAILABLE {
			err = muster.Wrap(muster.EUNAVAILABLE, err, "the catalog database does not answer")
		}
		return err
	}
	if err := c.down.err.Load(); err != nil {
		return *err
	}
	return nil
}
