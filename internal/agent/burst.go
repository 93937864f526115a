package agent

import (
	"context"
	"sync"
	"time"
)

// The runs of the fires due in one second are launched together, and on a
// small machine every millisecond of CPU spent beside their spawns delays
// one. Until the runs of such a burst have all started their first step
// (or ended), or spawnWait has passed, what can wait does: the uploader,
// and so the master's ingest of the uploads, and the saves of run states
// (a step running, a step ended), which the spawns do not need. A run is
// recorded running when it is fired, before the burst, so a target killed
// before a save that waited finds it running at its next start and
// records it abandoned, once, as it would a moment later.

// burst is the runs of one firing, launched together.
type burst struct {
	deadline time.Time     // when nothing waits for it any longer
	done     chan struct{} // closed once every run spawned
	mu       sync.Mutex
	pending  int
}

// startBurst makes the burst of runs about to be launched the one whatever
// can wait waits for, and returns it. Each run leaves it when it spawns
// (markSpawned).
func (e *executor) startBurst(runs []*activeRun) *burst {
	b := &burst{deadline: time.Now().Add(spawnWait), done: make(chan struct{}), pending: len(runs)}
	for _, ar := range runs {
		ar.burst = b
	}
	if b.pending == 0 {
		close(b.done)
	}
	e.burst.Store(b)
	return b
}

// spawnedOne notes that one run of the burst spawned.
func (b *burst) spawnedOne() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending--; b.pending == 0 {
		close(b.done)
	}
}

// quiet waits until the latest burst has spawned, at most until its
// deadline.
func (e *executor) quiet(ctx context.Context) {
	b := e.burst.Load()
	if b == nil {
		return
	}
	select {
	case <-b.done:
		return
	default:
	}
	t := time.NewTimer(time.Until(b.deadline))
	defer t.Stop()
	select {
	case <-b.done:
	case <-t.C:
	case <-ctx.Done():
	}
}
