package master

import (
	"testing"

	"github.com/musterhq/muster/internal/catalog"
)

// The hub's side of every interleaving of a wake-up with a poll that reads
// its state and parks, or is answered and parks again: a wake-up either
// finds the poll parked and hands it over, or finds it subscribed and
// has it refused its park (its caller answers it); none is dropped.
func TestHubHandsOverEveryWokenPoll(t *testing.T) {
	const target = 7
	var handed []*heldPoll
	h := NewHub()
	h.answer = func(polls ...*heldPoll) { handed = append(handed, polls...) }
	newPoll := func() *heldPoll {
		return &heldPoll{target: target, poked: h.Poked(target), woken: h.Subscribe(target)}
	}
	posted := map[int64][]catalog.InstructionRow{target: {{TargetID: target, Seq: 1}}}

	// Woken between its read and its park: the park is refused.
	p := newPoll()
	h.Wake([]int64{target}, posted)
	if h.park(p) {
		t.Fatal("a poll woken after it subscribed was parked")
	}

	// Parked, then woken: handed over with what was posted.
	handed = nil
	p = newPoll()
	if !h.park(p) {
		t.Fatal("a poll not woken was not parked")
	}
	h.Wake([]int64{target + 1}, nil)
	if len(handed) != 0 {
		t.Fatal("another target's wake-up handed the poll over")
	}
	h.Wake([]int64{target}, posted)
	if len(handed) != 1 || handed[0] != p || len(p.posted) != 1 {
		t.Fatalf("the wake-up handed over %d polls (posted %v), want the parked one with what was posted", len(handed), p.posted)
	}

	// Being answered, its wake-up spent: a post before it subscribes
	// again finds nothing to close or hand over (the read after the new
	// subscription finds the post); one after refuses its park again.
	p.posted = nil
	h.Wake([]int64{target}, posted)
	p.woken = h.Subscribe(target)
	if !h.park(p) {
		t.Fatal("a poll subscribed again after the wake-up was not parked again")
	}
	handed = nil
	h.Wake([]int64{target}, posted)
	if len(handed) != 1 || handed[0] != p {
		t.Fatal("a poll parked again was not handed over at the next wake-up")
	}
	p.woken = h.Subscribe(target)
	h.Wake([]int64{target}, posted)
	if h.park(p) {
		t.Fatal("a poll woken while it was being answered was parked again")
	}

	// Every other reason hands over what is parked, and refuses a park
	// that comes after it.
	for _, c := range []struct {
		name string
		fire func()
	}{
		{"WakeAll", h.WakeAll},
		{"WakeBehind", func() { h.WakeBehind(map[int64]int64{target: 2}) }},
		{"Poke", func() { h.Poke([]int64{target}) }},
		{"PokeAll", h.PokeAll},
	} {
		t.Run(c.name, func(t *testing.T) {
			h.Hold(target, 1)
			parked := newPoll()
			if !h.park(parked) {
				t.Fatal("a fresh poll was not parked")
			}
			late := newPoll()
			handed = nil
			c.fire()
			if len(handed) != 1 || handed[0] != parked {
				t.Fatalf("%d polls handed over, want the parked one", len(handed))
			}
			if h.park(late) {
				t.Error("a poll subscribed before it was parked")
			}
			h.Done(target, parked.poked)
			h.Done(target, late.poked)
		})
	}
}
