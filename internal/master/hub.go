package master

import (
	"sync"
)

// Hub wakes held polls. A poller subscribes before it reads its pending
// instructions, so a post committed between the read and the wait still
// wakes it; the catalog calls Wake only after commit, so a woken poller
// always finds what woke it.
type Hub struct {
	mu      sync.Mutex
	targets map[int64]chan struct{}
	pokes   map[int64]chan struct{}
	runs    chan struct{}
	closed  chan struct{}
	once    sync.Once
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{targets: map[int64]chan struct{}{}, pokes: map[int64]chan struct{}{}, runs: make(chan struct{}), closed: make(chan struct{})}
}

// Subscribe returns a channel closed at the next Wake of the target.
func (h *Hub) Subscribe(target int64) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, ok := h.targets[target]
	if !ok {
		ch = make(chan struct{})
		h.targets[target] = ch
	}
	return ch
}

// Wake wakes every poll held for the given targets.
func (h *Hub) Wake(targets []int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range targets {
		if ch, ok := h.targets[id]; ok {
			close(ch)
			delete(h.targets, id)
		}
	}
}

// Poked returns a channel closed at the next Poke of the target.
func (h *Hub) Poked(target int64) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, ok := h.pokes[target]
	if !ok {
		ch = make(chan struct{})
		h.pokes[target] = ch
	}
	return ch
}

// Poke answers the targets' held polls now, with whatever they have (maybe
// nothing): they poll again at once, with a fresh heartbeat and state. It
// reports whether any of them had a poll held.
func (h *Hub) Poke(targets []int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	held := false
	for _, id := range targets {
		if ch, ok := h.pokes[id]; ok {
			close(ch)
			delete(h.pokes, id)
			held = true
		}
	}
	return held
}

// Done drops a finished poll's subscriptions.
func (h *Hub) Done(target int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.pokes, target)
}

// RunsChanged returns a channel closed at the next recorded run change.
func (h *Hub) RunsChanged() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.runs
}

// WakeRuns wakes everyone waiting for run changes.
func (h *Hub) WakeRuns() {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.runs)
	h.runs = make(chan struct{})
}

// Closed is closed when the master shuts down: held polls answer at once.
func (h *Hub) Closed() <-chan struct{} { return h.closed }

// Close answers every held poll and wait.
func (h *Hub) Close() { h.once.Do(func() { close(h.closed) }) }
