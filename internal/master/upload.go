package master

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/musterhq/muster"
)

// maxRequestsPerTarget caps one target's requests in progress. A target
// has a poll held, and at times an acknowledgement, an upload, a forward
// of events and a renewal besides; the cap leaves room for a second poll
// while the master still holds one the target gave up on, and keeps a
// stolen target key from holding connections by the thousand.
const maxRequestsPerTarget = 16

// Kinds of upload, each one at a time per target.
const (
	uploadRuns   = "runs"
	uploadEvents = "events"
)

// uploads bounds the memory that run and event uploads take: a target has
// at most one upload of each kind in progress, and the uploads in progress
// are estimated to hold at most UploadMemory between them (uploadCost).
// An upload that finds either taken waits its turn, for a while.
type uploads struct {
	mu        sync.Mutex
	perTarget map[uploadKey]*turn
	mem       *semaphore.Weighted
	size      int64
	wait      time.Duration
}

// turn is whose turn it is to upload, of one kind, for one target: the
// channel holds a token while an upload is in progress; waiting counts the
// uploads in progress or waiting, so that the turn is dropped when none is.
type turn struct {
	busy    chan struct{}
	waiting int
}

// uploadCost estimates the most memory an upload of size bytes holds live,
// its items being at most item bytes each as sent. It is decoded a list
// item at a time and written in parts of chunk bytes as sent
// (jsonhttp.StreamList), so it holds: a part decoded (chunk, or an item
// larger than that); the decoder's buffer, up to twice an item as it grows
// by doubling; and, while it writes an item, the catalog's encoding of it
// (a buffer grown the same way, and a copy) and the string it binds.
// What the process takes from the system is about twice what is live: the
// garbage collector lets the heap grow that far between collections.
func uploadCost(size, item, chunk int64) int64 {
	return max(min(size, chunk), min(size, item)) + 6*min(size, item)
}

type uploadKey struct {
	target int64
	kind   string
}

func newUploads(limits LimitConfig) *uploads {
	return &uploads{perTarget: map[uploadKey]*turn{}, mem: semaphore.NewWeighted(limits.UploadMemory),
		size: limits.UploadMemory, wait: limits.UploadWait}
}

// takeTurn waits until no other upload of key is in progress, or until ctx
// is done.
func (u *uploads) takeTurn(ctx context.Context, key uploadKey) error {
	u.mu.Lock()
	t, ok := u.perTarget[key]
	if !ok {
		t = &turn{busy: make(chan struct{}, 1)}
		u.perTarget[key] = t
	}
	t.waiting++
	u.mu.Unlock()
	select {
	case t.busy <- struct{}{}:
		return nil
	case <-ctx.Done():
		u.leave(key, t)
		return ctx.Err()
	}
}

// endTurn ends the upload of key in progress.
func (u *uploads) endTurn(key uploadKey) {
	u.mu.Lock()
	t := u.perTarget[key]
	u.mu.Unlock()
	<-t.busy
	u.leave(key, t)
}

// leave counts an upload of key out, and drops the turn when none is left.
func (u *uploads) leave(key uploadKey, t *turn) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if t.waiting--; t.waiting == 0 {
		delete(u.perTarget, key)
	}
}

// admit takes room for an upload of kind from target, of declared bytes
// (-1: not declared, so the most the kind takes, limit), each of its items
// at most item bytes, written in parts of chunk bytes. It waits for the
// target's previous upload of the kind to end (a target that gave one up
// sends it again at once, before the master has noticed), and then for its
// share of the memory, in turn; both together at most the configured wait,
// after which the upload is refused with ERATELIMIT and the target sends it
// again after a backoff. The upload calls release (more than once is
// harmless) when done with its body and all it decoded from it, before it
// replies: a target sends its next upload as soon as it has read the
// reply, and must find the room free.
func (u *uploads) admit(ctx context.Context, target int64, name, kind string, declared, limit, item, chunk int64) (release func(), err error) {
	wctx, cancel := context.WithTimeout(ctx, u.wait)
	defer cancel()
	refused := func(format string, args ...any) error {
		if ctx.Err() != nil {
			return muster.Wrap(muster.ECANCELED, ctx.Err(), "the request was canceled")
		}
		return muster.Errorf(muster.ERATELIMIT, format, args...)
	}
	key := uploadKey{target, kind}
	if err := u.takeTurn(wctx, key); err != nil {
		return nil, refused("target %s had an upload of %s in progress for %s; send one at a time", name, kind, u.wait)
	}
	if declared < 0 || declared > limit {
		declared = limit // a body over the limit is refused as it is read
	}
	weight := min(uploadCost(declared, item, chunk), u.size)
	if err := u.mem.Acquire(wctx, weight); err != nil {
		u.endTurn(key)
		return nil, refused("the master is taking in as many uploads as its memory for them allows (%d MiB); send this one again later", u.size>>20)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			u.mem.Release(weight)
			u.endTurn(key)
		})
	}, nil
}
