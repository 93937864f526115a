// Package catalog is the master's logic over its catalog: targets, jobs,
// each target's download list, and the runs targets report. Every change
// that affects a target posts its instructions in the same transaction,
// with sequence numbers taken from a counter on the target's own row, so
// that commit order is sequence order. After a commit, the OnCommit hook
// learns which targets have new instructions, so their held polls wake
// after the commit and never before it; on a store shared by several
// masters, the others learn it too (Store.Listen).
//
// The logic is written once; the SQL is the Store's (see store.go).
package catalog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
)

// Commit tells the OnCommit hook what a committed transaction changed.
type Commit struct {
	// Targets whose download list gained instructions.
	Targets []int64
	// Runs whose recorded state changed.
	Runs []string
	// Ended holds the runs the transaction recorded finished for the
	// first time, whoever recorded the end (a target's upload, or the
	// master for a START never run or a departed target's run): each run
	// is here once, in the commit that ended it. Other masters do not
	// hear of them: the master whose transaction ended a run counts it.
	Ended []RunEnd
	// Poke lists targets whose held poll should be answered now, though
	// nothing was posted to them (their state changed, e.g. paused).
	Poke []int64
	// Events is set when events were raised, for the dispatcher.
	Events bool
	// Masters is set when a master started serving the catalog: the
	// others read the group's masters again, for their targets.
	Masters bool
	// Credentials is set when the transaction may have changed an API
	// key, a certificate or a target's identity: the other masters forget
	// the ones they remember (Catalog.ForgetCredentials).
	Credentials bool
	// Posted holds, by target, the instructions the transaction posted,
	// in sequence order, as they were committed: a poll woken by the
	// commit whose cursor they follow is answered with them, without
	// reading them back. A target whose instructions the transaction
	// also superseded or closed has no entry. Other masters do not hear
	// of them (see Tx.Notify): theirs read what they were woken for.
	Posted map[int64][]InstructionRow
}

// RunEnd is a run recorded finished: its job, outcome and duration.
type RunEnd struct {
	Job      string
	Status   muster.RunStatus
	Duration time.Duration
}

// Empty reports whether the commit changed nothing anyone waits for here.
// A change of credentials alone is not heard here (the catalog forgot what
// it remembered already), only by the other masters.
func (c Commit) Empty() bool {
	return len(c.Targets) == 0 && len(c.Runs) == 0 && len(c.Poke) == 0 && !c.Events && !c.Masters
}

// Options configure a Catalog.
type Options struct {
	// Now is the clock; time.Now when nil. A transaction reads it once.
	Now func() time.Time
	// OnCommit is called after every committed change, outside any
	// transaction. It must not block.
	OnCommit func(Commit)
	// HeartbeatFlush is how often coalesced poll heartbeats are written;
	// one second when zero.
	HeartbeatFlush time.Duration
	// Logger receives what the catalog's own goroutine has to say;
	// slog.Default() when nil.
	Logger *slog.Logger
}

// Catalog is the master's catalog: its logic, on a Store.
type Catalog struct {
	store Store
	opts  Options
	log   *slog.Logger
	epoch atomic.Pointer[string]

	beats     heartbeats
	keyUse    keyUse
	creds     credentials
	certReads certReads
	pollReads pollReads
	// sharedRead bounds a read that several requests share
	// (sharedReadContext).
	sharedRead time.Duration
	// maxPollBytes bounds the payloads of one poll reply's instructions
	// (agentproto.MaxPollBytes; lower in tests).
	maxPollBytes int
	writes       writeQueue
	down         unavailable
	stopOnce     sync.Once
	stop         chan struct{}
	done         chan struct{}
}

// Open opens a catalog on a store (already migrated), giving a new catalog
// its epoch.
func Open(ctx context.Context, store Store, opts Options) (*Catalog, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HeartbeatFlush <= 0 {
		opts.HeartbeatFlush = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Catalog{store: store, opts: opts, log: opts.Logger, sharedRead: sharedReadTimeout, maxPollBytes: agentproto.MaxPollBytes, stop: make(chan struct{}), done: make(chan struct{})}
	c.beats.pending = map[int64]Heartbeat{}
	if store.Shared() {
		c.creds.ttl = credentialsTTL
	}
	err := c.update(ctx, func(tx *tx) error {
		if _, err := tx.InsertMeta(ctx, "epoch", newEpoch()); err != nil {
			return err
		}
		_, err := tx.InsertMeta(ctx, "created_at", tx.now.UTC().Format(time.RFC3339))
		return err
	})
	if err == nil {
		err = c.endRunsOfDeparted(ctx)
	}
	if err == nil {
		err = c.RefreshEpoch(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("open catalog: %w", err)
	}
	go c.flushLoop()
	return c, nil
}

// Close flushes pending heartbeats and closes the store.
func (c *Catalog) Close() error {
	c.stopOnce.Do(func() { close(c.stop) })
	<-c.done
	return c.store.Close()
}

// Store returns the store the catalog runs on.
func (c *Catalog) Store() Store { return c.store }

// Describe names the catalog's database for a person.
func (c *Catalog) Describe() string { return c.store.Describe() }

// Now returns the catalog's clock.
func (c *Catalog) Now() time.Time { return c.opts.Now() }

// Epoch identifies this catalog. It is made when the catalog is created and
// sent in every poll reply; a target that sees a different epoch asks for a
// resync instead of trusting its cursor.
func (c *Catalog) Epoch() string { return *c.epoch.Load() }

// RefreshEpoch reads the epoch again: another master may have rotated it.
func (c *Catalog) RefreshEpoch(ctx context.Context) error {
	epoch, ok, err := c.store.Meta(ctx, "epoch")
	if err == nil && !ok {
		err = errors.New("the catalog has no epoch")
	}
	if err == nil {
		c.epoch.Store(&epoch)
	}
	return err
}

// RotateEpoch gives the catalog a new epoch, so every target resyncs at its
// next poll. It is for a catalog restored from a backup, which may have
// forgotten instructions that targets already applied.
func (c *Catalog) RotateEpoch(ctx context.Context) (string, error) {
	epoch := newEpoch()
	err := c.update(ctx, func(tx *tx) error { return tx.SetMeta(ctx, "epoch", epoch) })
	if err == nil {
		c.epoch.Store(&epoch)
	}
	return epoch, err
}

func newEpoch() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// tx is a write transaction of the logic. It reads the clock once and
// collects what the OnCommit hook (and other masters) must hear about.
type tx struct {
	Tx
	ctx  context.Context
	now  time.Time
	wake map[int64]struct{}
	c    Commit
	// audits are the audit entries of the changes made, written just
	// before commit.
	audits []muster.AuditEntry
	// keepsCredentials: the transaction changes no API key, certificate
	// or target identity, so what authentications remember stays.
	keepsCredentials bool
	// unposted are the targets left out of c.Posted (see unpost).
	unposted map[int64]struct{}
	// seqs are sequence numbers taken with a read (ClaimStart), by
	// target, for postAll to use first.
	seqs map[int64]int64
}

// keepCredentials says the transaction changes no API key, certificate
// or target identity (see credentials).
func (t *tx) keepCredentials() { t.keepsCredentials = true }

// maxAttempts bounds how often a transaction that lost a race is run again.
const maxAttempts = 20

// update runs fn in a write transaction and commits it if fn returns nil.
// A transaction that lost a race (ErrRetry) is run again from the start, so
// fn must compute everything it returns afresh each time.
func (c *Catalog) update(ctx context.Context, fn func(*tx) error) error {
	return c.transact(ctx, fn, true)
}

// duty runs fn, an act of one of the singleton duties, in a write
// transaction, and commits it only if this master still holds the duties
// when fn is done (Store.HoldsDuties), ErrNotLeader otherwise: a master
// deposed while it was frozen, that has not heard so yet, acts on what it
// read before, or on what it held in memory, and another master does the
// duty now.
func (c *Catalog) duty(ctx context.Context, fn func(*tx) error) error {
	return c.update(ctx, func(tx *tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return c.store.HoldsDuties(ctx)
	})
}

// dryRun runs fn in a write transaction and rolls it back whatever happens,
// so a preview computes exactly what the change would do.
func (c *Catalog) dryRun(ctx context.Context, fn func(*tx) error) error {
	return c.transact(ctx, fn, false)
}

func (c *Catalog) transact(ctx context.Context, fn func(*tx) error, commit bool) error {
	return c.transactAll(ctx, []*member{{ctx: ctx, fn: fn}}, commit)
}

// transactAll runs the members' fns, in order, in one write transaction
// on ctx, each on a tx of its own, and commits it (when commit is set) if
// every one returns nil. Their audits are written, and the other masters
// notified, once for all; OnCommit hears their merged Commit once.
func (c *Catalog) transactAll(ctx context.Context, members []*member, commit bool) error {
	for attempt := 1; ; attempt++ {
		var merged Commit
		mayChangeCredentials := false
		run := func(stx Tx) error {
			now := c.opts.Now()
			wake := map[int64]struct{}{}
			var audits []muster.AuditEntry
			merged = Commit{}
			for _, m := range members {
				t := &tx{Tx: stx, ctx: m.ctx, now: now, wake: map[int64]struct{}{}}
				err := m.call(t)
				if !t.keepsCredentials {
					mayChangeCredentials = true
					t.c.Credentials = true
				}
				if err != nil {
					return err
				}
				audits = append(audits, t.audits...)
				for id := range t.wake {
					wake[id] = struct{}{}
				}
				// A member that changed a target's instructions may have
				// changed those an earlier member posted: its polls read
				// them.
				for id := range t.unposted {
					delete(merged.Posted, id)
				}
				merged.merge(t.c)
			}
			if commit && len(audits) > 0 {
				if err := stx.InsertAudit(ctx, audits); err != nil {
					return fmt.Errorf("audit log: %w", err)
				}
			}
			for id := range wake {
				merged.Targets = append(merged.Targets, id)
			}
			if commit && (!merged.Empty() || merged.Credentials) {
				return stx.Notify(ctx, merged)
			}
			return nil
		}
		var err error
		if commit {
			err = c.store.Update(ctx, run)
		} else {
			err = c.store.DryRun(ctx, run)
		}
		if commit {
			c.down.note(err)
			// Forgotten whether or not the commit went through: one that
			// failed in flight may still have been applied.
			if mayChangeCredentials {
				c.creds.forget()
			}
		}
		if errors.Is(err, ErrRetry) && attempt < maxAttempts && ctx.Err() == nil {
			// Lost a race with another master: wait a little, longer each
			// time, so the two do not collide again.
			time.Sleep(time.Duration(mrand.Int64N(int64(attempt) * int64(2*time.Millisecond))))
			continue
		}
		if err != nil {
			return err
		}
		if commit && c.opts.OnCommit != nil && !merged.Empty() {
			c.opts.OnCommit(merged)
		}
		return nil
	}
}
