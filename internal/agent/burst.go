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
//
// The garbage collector waits too. A target allocates a few megabytes a
// second while fifty fires a second run, so its small heap is collected
// about twice a second, and most collections began during a burst, where
// their marking (from 2 ms to tens of milliseconds on a busy machine)
// took one of two cores while the steps forked. The collector is switched
// off from the commit that records the fires until their burst has
// spawned, or its deadline passed, and then back on (at the GOGC it had);
// what the burst allocated meanwhile is collected after it.

// burst is the runs of one firing, launched together.
type burst struct {
	deadline time.Time     // when nothing waits for it any longer
	done     chan struct{} // closed once every run spawned
	mu       sync.Mutex
	pending  int
	gc       *collector // resumed once the burst has spawned
	timer    *time.Timer
}

// collector holds the garbage collector off while a burst spawns.
type collector struct {
	setPercent func(int) int // debug.SetGCPercent; tests watch it
	mu         sync.Mutex
	held       bool
	holder     *burst // the burst that resumes it; nil before it starts
	percent    int    // the GOGC to resume with
}

// hold switches the collector off until the burst started next has
// spawned. A collection under way finishes first, so hold is called
// ahead of the burst, while its fires wait for their instant.
func (c *collector) hold() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holder = nil
	if c.held {
		return
	}
	c.held, c.percent = true, c.setPercent(-1)
}

// take makes b the burst whose end resumes the collector, if it is held.
func (c *collector) take(b *burst) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.held {
		return false
	}
	c.holder = b
	return true
}

// resume switches the collector back on, unless a later burst holds it.
func (c *collector) resume(b *burst) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.held || c.holder != b {
		return
	}
	c.held, c.holder = false, nil
	c.setPercent(c.percent)
}

// startBurst makes the burst of runs about to be launched the one whatever
// can wait waits for, and returns it. Each run leaves it when it spawns
// (markSpawned).
func (e *executor) startBurst(runs []*activeRun) *burst {
	b := &burst{deadline: time.Now().Add(spawnWait), done: make(chan struct{}), pending: len(runs)}
	for _, ar := range runs {
		ar.burst = b
	}
	if e.gc.take(b) {
		b.gc = &e.gc
		if b.pending > 0 {
			b.mu.Lock()
			b.timer = time.AfterFunc(spawnWait, func() { e.gc.resume(b) })
			b.mu.Unlock()
		}
	}
	if b.pending == 0 {
		b.finish()
	}
	e.burst.Store(b)
	return b
}

// finish ends the burst: every run spawned. Called with b.mu held, or
// before b is shared.
func (b *burst) finish() {
	close(b.done)
	if b.gc != nil {
		if b.timer != nil {
			b.timer.Stop()
		}
		b.gc.resume(b)
	}
}

// spawnedOne notes that one run of the burst spawned.
func (b *burst) spawnedOne() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending--; b.pending == 0 {
		b.finish()
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
