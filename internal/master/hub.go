package master

import (
	"sync"
	"sync/atomic"

	"github.com/musterhq/muster/internal/catalog"
)

// Hub wakes held polls. A poller subscribes before it reads its pending
// instructions, so a post committed between the read and the wait still
// wakes it; the catalog calls Wake only after commit, so a woken poller
// always finds what woke it.
//
// On a catalog several masters share, a post by another master wakes a
// poll here through the catalog's notifications; the hub also remembers how
// far each held poll has seen, so that a periodic check against the
// catalog wakes any poll a lost notification left waiting (WakeBehind).
//
// A parked poll (see heldPoll) has no goroutine waiting on the channels:
// the hub keeps it, and hands it to its answerers when it would have closed
// one of them for it, or the poll's hold ended, or its target went away.
type Hub struct {
	mu      sync.Mutex
	targets signals           // closed by Wake: new instructions
	pokes   map[int64]*pokers // closed by Poke: answer now, with or without any
	seen    map[int64]int64
	parked  map[int64]map[*heldPoll]struct{}
	answer  func(...*heldPoll) // queues parked polls to be answered; it must not block
	runs    chan struct{}
	closed  chan struct{}
	once    sync.Once
	// race, set by tests, runs as a poll subscribes to wake-ups and as it
	// parks, before either: a test posts there, in the gaps where what is
	// posted must still wake the poll.
	race atomic.Pointer[func(gap string, target int64)]
}

// Gaps in a poll's life where the hub runs the test's race.
const (
	gapSubscribe = "subscribe" // before a subscription to wake-ups, made before the read the poll decides on
	gapPark      = "park"      // before the poll parks, after that read
)

// raced runs the test's race, if one is set.
func (h *Hub) raced(gap string, target int64) {
	if f := h.race.Load(); f != nil {
		(*f)(gap, target)
	}
}

// signals holds one channel per target, closed when the target is signalled.
type signals map[int64]chan struct{}

// wait returns the target's channel, making it if needed.
func (s signals) wait(target int64) <-chan struct{} {
	ch, ok := s[target]
	if !ok {
		ch = make(chan struct{})
		s[target] = ch
	}
	return ch
}

// fire closes the channels of the given targets.
func (s signals) fire(targets []int64) {
	for _, id := range targets {
		if ch, ok := s[id]; ok {
			close(ch)
			delete(s, id)
		}
	}
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{targets: signals{}, pokes: map[int64]*pokers{}, seen: map[int64]int64{}, parked: map[int64]map[*heldPoll]struct{}{},
		runs: make(chan struct{}), closed: make(chan struct{})}
}

// park keeps p until something answers it, and reports whether it did:
// it does not when p is due an answer already (it was woken or poked
// since it subscribed, its hold ended, its target went away, the hub is
// closed), and the caller answers it.
func (h *Hub) park(p *heldPoll) bool {
	h.raced(gapPark, p.target)
	h.mu.Lock()
	defer h.mu.Unlock()
	if isClosed(p.woken) || isClosed(p.poked) || isClosed(h.closed) || p.expired.Load() || p.gone.Load() {
		return false
	}
	polls, ok := h.parked[p.target]
	if !ok {
		polls = map[*heldPoll]struct{}{}
		h.parked[p.target] = polls
	}
	polls[p] = struct{}{}
	return true
}

// unpark hands p to be answered if it is parked.
func (h *Hub) unpark(p *heldPoll) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if polls, ok := h.parked[p.target]; ok {
		if _, ok := polls[p]; ok {
			delete(polls, p)
			if len(polls) == 0 {
				delete(h.parked, p.target)
			}
			h.answer(p)
		}
	}
}

// takeParked appends the polls parked for the target to polls, to be
// handed to the answerers together, and forgets them.
func (h *Hub) takeParked(target int64, polls []*heldPoll) []*heldPoll {
	for p := range h.parked[target] {
		polls = append(polls, p)
	}
	delete(h.parked, target)
	return polls
}

// answerParked hands every poll parked for the targets to be answered, at
// once, so that an answerer takes them together.
func (h *Hub) answerParked(targets []int64) {
	var polls []*heldPoll
	for _, id := range targets {
		polls = h.takeParked(id, polls)
	}
	if len(polls) > 0 {
		h.answer(polls...)
	}
}

// answerAllParked hands every parked poll to be answered.
func (h *Hub) answerAllParked() {
	var polls []*heldPoll
	for target := range h.parked {
		polls = h.takeParked(target, polls)
	}
	if len(polls) > 0 {
		h.answer(polls...)
	}
}

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Subscribe returns a channel closed at the next Wake of the target.
func (h *Hub) Subscribe(target int64) <-chan struct{} {
	h.raced(gapSubscribe, target)
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.targets.wait(target)
}

// Wake wakes every poll held for the given targets. posted holds, by
// target, the instructions the commit that wakes them posted (see
// catalog.Commit.Posted), which the polls parked for the target are given
// to answer with, where their cursor leads straight to them.
func (h *Hub) Wake(targets []int64, posted map[int64][]catalog.InstructionRow) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.targets.fire(targets)
	for _, id := range targets {
		if rows := posted[id]; len(rows) > 0 {
			for p := range h.parked[id] {
				p.posted = rows
			}
		}
	}
	h.answerParked(targets)
}

// Hold records that a poll of the target is held having seen every
// instruction up to seq.
func (h *Hub) Hold(target, seq int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen[target] = seq
}

// WakeBehind wakes the held polls whose target has instructions past what
// they have seen (lastSeqs maps targets to their last sequence number), and
// returns how many it woke.
func (h *Hub) WakeBehind(lastSeqs map[int64]int64) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	var behind []int64
	for id, seen := range h.seen {
		if last, ok := lastSeqs[id]; ok && last > seen {
			behind = append(behind, id)
			h.seen[id] = last
		}
	}
	h.targets.fire(behind)
	h.answerParked(behind)
	return len(behind)
}

// WakeAll wakes every held poll, to look again at what it has pending.
func (h *Hub) WakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, ch := range h.targets {
		close(ch)
		delete(h.targets, id)
	}
	h.answerAllParked()
}

// pokers are the polls of one target waiting for a poke: usually one, but
// a target that gave up on a connection the master still holds open polls
// again on another, and both wait until the first is done.
type pokers struct {
	ch    chan struct{}
	polls int
}

// Poked returns a channel closed at the next Poke of the target. The poll
// that calls it calls Done with the channel when it finishes.
func (h *Hub) Poked(target int64) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.pokes[target]
	if !ok {
		p = &pokers{ch: make(chan struct{})}
		h.pokes[target] = p
	}
	p.polls++
	return p.ch
}

// Poke answers the targets' held polls now, with whatever they have (maybe
// nothing): they poll again at once, with a fresh heartbeat and state. It
// reports whether any of them had a poll held.
func (h *Hub) Poke(targets []int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	held := false
	for _, id := range targets {
		if p, ok := h.pokes[id]; ok {
			close(p.ch)
			delete(h.pokes, id)
			held = true
		}
	}
	h.answerParked(targets)
	return held
}

// PokeAll answers every held poll now, as Poke does: for what every
// target must hear at once, such as a change in the group's masters.
func (h *Hub) PokeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, p := range h.pokes {
		close(p.ch)
		delete(h.pokes, id)
	}
	h.answerAllParked()
}

// Done drops a finished poll's subscription to pokes, poked being what
// Poked returned to it. The channel stays while another poll of the target
// waits on it.
func (h *Hub) Done(target int64, poked <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.pokes[target]
	if ok && p.ch == poked {
		if p.polls--; p.polls == 0 {
			delete(h.pokes, target)
		}
	}
	if _, held := h.pokes[target]; !held {
		delete(h.seen, target) // no poll of the target is held
	}
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
func (h *Hub) Close() {
	h.once.Do(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		close(h.closed)
		h.answerAllParked()
	})
}
