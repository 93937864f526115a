package catalog

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"time"

	"github.com/musterhq/muster"
)

// pollReads reads what polls read of the catalog (PollPending), together
// when they come together. After a fan-out every target polls again as
// soon as it has acknowledged and uploaded its run: on PostgreSQL
// thousands of single reads, each a statement and a turn at the catalog's
// connections, queued with the acknowledgements and uploads of the
// targets answered first while the later replies are still being sent.
//
// The reads are combined as certificate lookups are (certread.go), with
// no timer: a poll that finds no read running reads alone, at once;
// polls that come while one runs wait and are read in one statement
// (Store.PollPendingOf) when it ends, led by the first of them. Unlike a
// certificate, a poll never shares a read that began before it: the
// poll has subscribed to wake-ups before it joins a read, so every read
// that answers it begins after that, and what was posted before is in
// it. A second poll of a target already waiting reads alone, after its
// own cursor.
//
// Only on a store that several masters share (PostgreSQL), where each
// statement is a round trip to the database server and a turn at the
// pool's connections: there, 16 polls at once took 53–86 µs a poll read
// alone and 28–37 µs read together (BenchmarkPolls, three runs). On
// SQLite a read is a call into a local file, 9.4–19 µs a poll alone
// against 9.9–25 µs together: waiting for the running read costs more
// than the statements it saves, and every poll reads alone.
type pollReads struct {
	mu      sync.Mutex
	running bool
	next    *pollRead // the polls waiting for the running read
}

// errPollReadUnfinished answers the polls of a read that did not end (its
// store panicked).
var errPollReadUnfinished = errors.New("the poll read did not finish")

// pollRead is one statement's worth of polls.
type pollRead struct {
	after map[int64]int64 // each target's cursor
	lead  chan struct{}   // closed when the read may begin (for a waiting read)
	done  chan struct{}   // closed when polls and err are set
	polls map[int64]PollRow
	err   error
}

// pollPending returns what a poll of the target after its cursor reads,
// read alone or with the polls that come meanwhile.
func (c *Catalog) pollPending(ctx context.Context, targetID, after int64) (PollRow, error) {
	var r *pollRead
	var lead bool
	if c.store.Shared() {
		r, lead = c.pollReads.join(targetID, after)
	}
	if r == nil {
		return c.readPoll(ctx, targetID, after)
	}
	if lead {
		c.readPolls(ctx, r)
	}
	<-r.done
	if r.err != nil {
		return PollRow{}, r.err
	}
	p, ok := r.polls[targetID]
	if !ok {
		return PollRow{}, sql.ErrNoRows
	}
	return p, nil
}

// readPoll reads what a poll of the target after its cursor finds, in a
// read of its own.
func (c *Catalog) readPoll(ctx context.Context, targetID, after int64) (PollRow, error) {
	last, paused, ins, err := c.store.PollPending(ctx, targetID, after, MaxPollBatch)
	return PollRow{LastSeq: last, Paused: paused, Instructions: ins}, err
}

// join adds a poll to a read: a new one, which the caller leads at once,
// when none is running; else the next, which its first member leads once
// the running read ends (the caller when lead is set). It returns nil
// when the next read holds a poll of the target already: the caller
// reads alone.
func (q *pollReads) join(targetID, after int64) (r *pollRead, lead bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case !q.running:
		q.running = true
		r, lead = &pollRead{after: map[int64]int64{}, done: make(chan struct{})}, true
	case q.next == nil:
		q.next = &pollRead{after: map[int64]int64{}, lead: make(chan struct{}), done: make(chan struct{})}
		r, lead = q.next, true
	default:
		r = q.next
		if _, twice := r.after[targetID]; twice {
			return nil, false
		}
	}
	r.after[targetID] = after
	return r, lead
}

// readPolls runs the read r its caller leads: once the running read has
// ended, for a read that waited; then the next read, if any, may begin.
func (c *Catalog) readPolls(ctx context.Context, r *pollRead) {
	if r.lead != nil {
		<-r.lead
	}
	ctx, cancel := c.sharedReadContext(ctx)
	defer cancel()
	q := &c.pollReads
	// Whatever happens in the read (a panic in the store), its members
	// are answered and the next read let go, or every later poll would
	// wait for ever.
	r.err = errPollReadUnfinished
	defer func() {
		q.mu.Lock()
		next := q.next
		q.next = nil
		q.running = next != nil
		q.mu.Unlock()
		close(r.done)
		if next != nil {
			close(next.lead)
		}
	}()
	if len(r.after) == 1 {
		for id, after := range r.after {
			p, err := c.readPoll(ctx, id, after)
			r.polls = map[int64]PollRow{}
			if err == nil {
				r.polls[id] = p
			} else if noRows(err) {
				err = nil
			}
			r.err = c.sharedReadErr(ctx, err)
		}
		return
	}
	var err error
	r.polls, err = c.store.PollPendingOf(ctx, r.after, MaxPollBatch)
	r.err = c.sharedReadErr(ctx, err)
}

// sharedReadTimeout bounds a read that several requests share.
const sharedReadTimeout = 10 * time.Second

// sharedReadContext is the context of a read that several requests share
// (certificate lookups, polls): not cancelled with the request of the one
// that leads it, which would fail the others', but bounded. A read that
// the database never answers (its server cut off without a reset) then
// fails its members, and lets the requests after them read again, within
// sharedReadTimeout rather than when TCP gives up on the connection.
func (c *Catalog) sharedReadContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), c.sharedRead)
}

// sharedReadErr is the error a shared read's members get: when its bound
// passed, the catalog's database is unavailable.
func (c *Catalog) sharedReadErr(ctx context.Context, err error) error {
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && muster.ErrorCode(err) != muster.EUNAVAILABLE {
		return muster.Wrap(muster.EUNAVAILABLE, err, "the catalog database did not answer a read within %s", c.sharedRead)
	}
	return err
}
