package catalog

import (
	"context"
	"errors"
	"sync"
)

// Group commit. In a fan-out every target acknowledges its START and
// uploads its run at about the same moment, and each of those would be a
// write transaction of its own: a commit each (a WAL flush on PostgreSQL),
// through SQLite's single writer one after another. updateShared lets such
// writes share a transaction by flat combining, with no timer: a write that
// finds no shared transaction running runs at once, alone, as update would;
// writes that arrive while one runs queue, and when it ends the first of
// them leads the next, taking every queued write (up to maxGroupMembers,
// and maxGroupBytes of uploads) into one transaction, in the order they
// came.
//
// In the shared transaction each member runs its own fn, in arrival order,
// on a tx of its own (its context, its wakes, its audits), all reading the
// one clock value; each statement sees what the members before it wrote,
// exactly as if they had committed one after another (the isolation level
// is the store's: SQLite's single writer is serializable, PostgreSQL's
// write transactions run at READ COMMITTED). The audits of the members are
// written, and the other masters notified (Tx.Notify), once, just before
// the commit; OnCommit hears the merged Commit once, after it. No member
// is answered before the commit. A transaction that lost a race
// (ErrRetry) runs the whole group again, as update runs a write again.
//
// A member that fails does not fail the others: the group is rolled back
// and each member is run again alone, in order, with its own context, as
// update would run it, so each gets the result and the error it would
// have had without company. This is chosen over a SAVEPOINT per member:
// the writes shared are acknowledgements and uploads, which fail only when
// the database does (a per-run refusal is a result, not an error), so the
// rerun is rare; a savepoint would cost every member a statement (on
// PostgreSQL a round trip, or a held statement); and on PostgreSQL a held
// write (pipeline.go) fails when it is sent, with a later member's
// statement or with the COMMIT, so its failure could not be laid on its
// own member without the pipeline knowing the members. Rolled back and
// rerun, the group leaves nothing of a failed member and loses nothing of
// the others.
//
// Order: writes are taken from the queue in arrival order, a group's
// members run in that order, a group (or its members run alone) ends
// before the next group begins. Two writes of one target (which sends one
// acknowledgement at a time and one upload at a time) commit in the order
// they came.

// Bounds on a shared transaction: a leader takes at most maxGroupMembers
// writes, and stops before one that would bring the uploads' size past
// maxGroupBytes (but always takes the first).
const (
	maxGroupMembers = 256
	maxGroupBytes   = 8 << 20
)

// writeQueue is the writes waiting to share a transaction.
type writeQueue struct {
	mu    sync.Mutex
	queue []*member
	busy  bool // a leader is running a group; when false, queue is empty
}

// member is one write of a shared transaction.
type member struct {
	ctx  context.Context
	fn   func(*tx) error
	size int // bytes, for maxGroupBytes
	err  error
	// shared is set for a write of updateShared, whose panic is caught.
	shared bool
	// panicked holds what fn panicked with, raised again in the
	// member's own goroutine.
	panicked any
	// lead is set, and done closed, when the member is to lead the next
	// group rather than being answered.
	lead bool
	done chan struct{}
}

// errPanicked is a member's error when its fn panicked; errLeaderPanicked
// when the transaction it shared failed with a panic outside the members'
// fns, committed or not.
var (
	errPanicked       = errors.New("catalog: a write of the shared transaction panicked")
	errLeaderPanicked = errors.New("catalog: the shared transaction panicked; its outcome is unknown")
)

// call runs the member's fn on t. A shared write's panic becomes
// errPanicked, so that a panic in one member rolls the transaction back
// and is raised in its own caller's goroutine, not in the leader's.
func (m *member) call(t *tx) (err error) {
	if !m.shared {
		return m.fn(t)
	}
	defer func() {
		if p := recover(); p != nil {
			m.panicked, err = p, errPanicked
		}
	}()
	m.panicked = nil
	return m.fn(t)
}

// updateShared runs fn in a write transaction, as update does, which it
// may share with other writes that come meanwhile (see above). size is
// what the write carries, in bytes, for the bound on a group.
func (c *Catalog) updateShared(ctx context.Context, size int, fn func(*tx) error) error {
	m := &member{ctx: ctx, fn: fn, size: size, shared: true, done: make(chan struct{})}
	w := &c.writes
	w.mu.Lock()
	w.queue = append(w.queue, m)
	if w.busy {
		w.mu.Unlock()
		<-m.done
		if !m.lead {
			return m.answer()
		}
	} else {
		w.busy = true
		w.mu.Unlock()
	}
	// m leads, and is first in the queue.
	w.mu.Lock()
	n, bytes := 0, 0
	for n < len(w.queue) && n < maxGroupMembers && (n == 0 || bytes+w.queue[n].size <= maxGroupBytes) {
		bytes += w.queue[n].size
		n++
	}
	group := w.queue[:n:n]
	if w.queue = w.queue[n:]; len(w.queue) == 0 {
		w.queue = nil
	}
	w.mu.Unlock()

	// Whatever happens (a panic outside the members' fns, in the store or
	// in OnCommit), the members are answered and the lead passed on, or
	// every later shared write would wait for ever.
	finished := false
	defer func() {
		if !finished {
			for _, o := range group {
				if o.err == nil && o.panicked == nil {
					o.err = errLeaderPanicked
				}
			}
		}
		w.mu.Lock()
		if len(w.queue) > 0 {
			next := w.queue[0]
			next.lead = true
			close(next.done)
		} else {
			w.busy = false
		}
		w.mu.Unlock()
		for _, o := range group[1:] {
			close(o.done)
		}
	}()
	c.commitGroup(ctx, group)
	finished = true
	return m.answer()
}

// answer returns the member's error, or raises its panic.
func (m *member) answer() error {
	if m.panicked != nil {
		panic(m.panicked)
	}
	return m.err
}

// commitGroup runs a group's members in one transaction, or, when that
// fails, each alone; each member's err is set.
func (c *Catalog) commitGroup(ctx context.Context, group []*member) {
	if len(group) > 1 {
		if err := c.transactAll(ctx, group, true); err == nil {
			for _, m := range group {
				m.err = nil
			}
			return
		}
	}
	for _, m := range group {
		m.err = c.transactAll(m.ctx, []*member{m}, true)
	}
}

// merge adds what another transaction changed to c. Targets are merged
// by the caller, which keeps them unique.
func (c *Commit) merge(o Commit) {
	c.Runs = append(c.Runs, o.Runs...)
	c.Ended = append(c.Ended, o.Ended...)
	c.Poke = append(c.Poke, o.Poke...)
	c.Events = c.Events || o.Events
	c.Masters = c.Masters || o.Masters
	c.Credentials = c.Credentials || o.Credentials
	// Members run in order, so a target's rows of a later member follow
	// those of an earlier one.
	for id, rows := range o.Posted {
		if c.Posted == nil {
			c.Posted = map[int64][]InstructionRow{}
		}
		c.Posted[id] = append(c.Posted[id], rows...)
	}
}
