package master_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
	"github.com/musterhq/muster/internal/master"
	"github.com/musterhq/muster/internal/testenv"
)

// wakeFleet is a fleet of targets that poll as real ones do, each on its
// own connection, every poll held for the longest hold, and that check
// every reply: nothing here pokes them or lets a hold end, so each reply
// must bring the target's next instructions. An empty reply is a poll that
// missed its wake-up and was answered only when its hold ended.
type wakeFleet struct {
	mu      sync.Mutex
	changed chan struct{} // closed at every reply
	cursor  map[int64]int64
	empty   map[int64]int   // empty replies, by target
	wrong   []string        // replies that were not the target's next instructions
	failed  []error         // polls that failed
	replies int             // replies with instructions
	several int             // replies with more than one
	posted  map[int64]int64 // instructions posted, by target
}

func newWakeFleet() *wakeFleet {
	return &wakeFleet{changed: make(chan struct{}), cursor: map[int64]int64{}, empty: map[int64]int{}, posted: map[int64]int64{}}
}

// run polls as target id until ctx ends.
func (f *wakeFleet) run(ctx context.Context, p *poller, id int64) {
	after := int64(0)
	for {
		reply, _, err := p.poll(ctx, fmt.Sprintf("after=%d&wait=55&poll_interval=60", after))
		if ctx.Err() != nil {
			return
		}
		f.mu.Lock()
		switch {
		case err != nil:
			f.failed = append(f.failed, fmt.Errorf("target %d, after %d: %w", id, after, err))
		case len(reply.Instructions) == 0:
			f.empty[id]++
		default:
			f.replies++
			if len(reply.Instructions) > 1 {
				f.several++
			}
			for _, in := range reply.Instructions {
				if in.Seq != after+1 {
					f.wrong = append(f.wrong, fmt.Sprintf("target %d polled after %d and was sent seq %d", id, after, in.Seq))
				}
				after = in.Seq
			}
		}
		f.cursor[id] = after
		close(f.changed)
		f.changed = make(chan struct{})
		f.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// caughtUp waits until every target has had every instruction posted to
// it, or ctx ends, and returns those still behind.
func (f *wakeFleet) caughtUp(ctx context.Context) []string {
	for {
		f.mu.Lock()
		var behind []string
		for id, last := range f.posted {
			if f.cursor[id] < last {
				behind = append(behind, fmt.Sprintf("target %d at %d of %d", id, f.cursor[id], last))
			}
		}
		stop := len(behind) == 0 || len(f.failed) > 0
		changed := f.changed
		f.mu.Unlock()
		if stop {
			return behind
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return behind
		}
	}
}

// wakePost posts one instruction to each of the targets, either as this
// master's own post (which wakes their polls with what it posted) or as
// another master's, committed behind this one's back and heard of by
// notification (which names the targets only: the polls read what is
// pending).
type wakePost func(ctx context.Context, names []string, ids []int64) error

// ownPost posts SYNC-TIME through the catalog of m, as an operator does.
func ownPost(m *master.Main) wakePost {
	return func(ctx context.Context, names []string, _ []int64) error {
		_, err := m.Catalog.Post(ctx, catalog.PostRequest{Operation: muster.OpSyncTime, Targets: names}, m.Self())
		return err
	}
}

// heardPost commits SYNC-TIME to the catalog of m as another master
// would, and has m hear of it.
func heardPost(m *master.Main) wakePost {
	return func(ctx context.Context, _ []string, ids []int64) error {
		counts := map[int64]int{}
		for _, id := range ids {
			counts[id] = 1
		}
		err := m.Catalog.Store().Update(ctx, func(tx catalog.Tx) error {
			seqs, err := tx.NextSeqs(ctx, counts)
			if err != nil {
				return err
			}
			rows := make([]catalog.InstructionRow, 0, len(ids))
			for _, id := range ids {
				rows = append(rows, catalog.InstructionRow{TargetID: id, Seq: seqs[id], Operation: muster.OpSyncTime, PostedAt: time.Now()})
			}
			return tx.InsertInstructions(ctx, rows)
		})
		if err == nil {
			master.Heard(m, catalog.Commit{Targets: ids})
		}
		return err
	}
}

// No poll misses its wake-up: targets, more than an answerer takes at once,
// poll while instructions are posted to all of them or to some, some posts
// racing their polls (being read, being parked, being answered, parked
// again), some made while every poll is parked, some this master's own
// (answered with what was posted) and some another master's (read back,
// several targets in one read). Every reply brings the target's next
// instructions, none is empty (the end of a hold, which is what a missed
// wake-up comes to), and every target gets all that was posted to it.
func TestNoParkedPollMissesItsWakeUp(t *testing.T) {
	for _, c := range []struct {
		name  string
		store func(t *testing.T) func(*master.Config)
	}{
		{"SQLite", func(*testing.T) func(*master.Config) { return nil }},
		{"PostgreSQL", func(t *testing.T) func(*master.Config) {
			url, secret := catalogtest.PostgresURL(t), catalogtest.SecretFile(t)
			return func(c *master.Config) { c.Store, c.SecretFile = url, secret }
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := testenv.New(t, testenv.Options{Master: c.store(t)})
			testNoPollMissesItsWakeUp(t, env, env)
		})
	}
}

// Polls held by one master are woken by the other's posts, heard of by
// the catalog's notifications.
func TestNoPollHeldByAnotherMasterMissesItsWakeUp(t *testing.T) {
	url, secret := catalogtest.PostgresURL(t), catalogtest.SecretFile(t)
	store := func(c *master.Config) { c.Store, c.SecretFile = url, secret }
	first := testenv.New(t, testenv.Options{Master: store})
	second := testenv.Join(t, first, store)
	testNoPollMissesItsWakeUp(t, first, second)
}

// testNoPollMissesItsWakeUp enlists the fleet with held, which holds its
// polls, and posts to it through posting, and checks that no poll missed
// its wake-up.
func testNoPollMissesItsWakeUp(t *testing.T, held, posting *testenv.Env) {
	// More targets than an answerer takes at once: a post to all of them
	// is answered in several batches, each read together.
	const targets = 160
	const rounds = 24
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f, names, ids := startWakeFleet(t, ctx, held, targets)

	posts := []wakePost{ownPost(posting.Master), heardPost(posting.Master)}
	if posting != held {
		// Another master's own post reaches the polls held here only by
		// its notification.
		posts = []wakePost{ownPost(posting.Master)}
	}
	// post posts to the targets picked, and counts what it posted.
	post := func(round int, rng *rand.Rand, pick func(*rand.Rand) bool) {
		var toNames []string
		var toIDs []int64
		for i := range targets {
			if pick(rng) {
				toNames, toIDs = append(toNames, names[i]), append(toIDs, ids[i])
			}
		}
		if len(toIDs) == 0 {
			return
		}
		if round%2 == 1 {
			// A wake-up that brings nothing new (a notification of a
			// commit already read, or one sent after notifications were
			// missed): the polls it hands over find nothing and park
			// again, as the post that follows comes.
			master.Heard(held.Master, catalog.Commit{Targets: toIDs})
		}
		if err := posts[round%len(posts)](ctx, toNames, toIDs); err != nil {
			t.Errorf("round %d: %v", round, err)
			return
		}
		f.mu.Lock()
		for _, id := range toIDs {
			f.posted[id]++
		}
		f.mu.Unlock()
		if n := master.StrandedPolls(held.Master); n > 0 {
			t.Errorf("round %d: %d polls parked though woken: each waits for its hold to end", round, n)
		}
	}
	everyOne := func(*rand.Rand) bool { return true }
	someOf := func(rng *rand.Rand) bool { return rng.IntN(3) == 0 }
	oneOf := func(rng *rand.Rand) bool { return rng.IntN(targets) == 0 }

	// Posts while every poll is parked: to all, and to some.
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 8 {
		waitParked(t, held.Master, targets)
		post(round, rng, []func(*rand.Rand) bool{everyOne, someOf}[round%2])
	}
	// Posts racing the polls: several posters at once, without waiting,
	// to all, to some, and to one target at a time, so that posts come
	// while polls read their state, park, are answered and park again.
	var posters sync.WaitGroup
	for poster := range 4 {
		posters.Add(1)
		go func() {
			defer posters.Done()
			rng := rand.New(rand.NewPCG(uint64(poster), 3))
			for round := range rounds {
				post(round, rng, []func(*rand.Rand) bool{everyOne, someOf, oneOf, oneOf}[(round+poster)%4])
			}
		}()
	}
	posters.Wait()
	f.check(t, ctx, held.Master, targets, posting == held)
}

// startWakeFleet enlists n targets with env's master and has them poll
// until the test ends, and waits until every one's poll is parked.
func startWakeFleet(t *testing.T, ctx context.Context, env *testenv.Env, n int) (f *wakeFleet, names []string, ids []int64) {
	t.Helper()
	f = newWakeFleet()
	names, ids = make([]string, n), make([]int64, n)
	var wg sync.WaitGroup
	pollCtx, stopPolls := context.WithCancel(ctx)
	t.Cleanup(func() { stopPolls(); wg.Wait() })
	for i := range n {
		names[i] = fmt.Sprintf("t%03d", i)
		p := newPoller(env, enlistRaw(t, env, names[i]))
		t.Cleanup(p.hc.CloseIdleConnections)
		id, err := env.Master.Catalog.TargetID(ctx, names[i])
		if err != nil {
			t.Fatal(err)
		}
		ids[i], f.posted[id] = id, 0
		wg.Add(1)
		go func() { defer wg.Done(); f.run(pollCtx, p, id) }()
	}
	waitParked(t, env.Master, n)
	return f, names, ids
}

// check checks, once everything is posted, that every target got all that
// was posted to it, every reply being its next instructions and none
// empty. When every post was this master's, the wake-ups are all
// delivered once the posts return: then it also checks that once every
// poll is parked again, none is behind (waiting for its hold to end).
func (f *wakeFleet) check(t *testing.T, ctx context.Context, m *master.Main, targets int, delivered bool) {
	t.Helper()
	if delivered {
		waitParked(t, m, targets)
		f.mu.Lock()
		var behind []string
		for id, last := range f.posted {
			if f.cursor[id] < last {
				behind = append(behind, fmt.Sprintf("target %d at %d of %d", id, f.cursor[id], last))
			}
		}
		f.mu.Unlock()
		if len(behind) > 0 {
			slices.Sort(behind)
			t.Fatalf("every poll is parked, and %d targets are behind: their polls missed their wake-up: %v", len(behind), behind)
		}
	}
	behind := f.caughtUp(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.failed) > 0 {
		t.Fatalf("%d polls failed; the first: %v", len(f.failed), f.failed[0])
	}
	if len(behind) > 0 {
		slices.Sort(behind)
		t.Fatalf("%d targets did not get all that was posted to them: %v", len(behind), behind)
	}
	if len(f.empty) > 0 {
		t.Errorf("%d targets had a poll answered empty, as when its hold ended: a missed wake-up (by target: %v)", len(f.empty), f.empty)
	}
	if len(f.wrong) > 0 {
		t.Errorf("%d replies were not the target's next instructions; the first: %s", len(f.wrong), f.wrong[0])
	}
	posted := int64(0)
	for _, n := range f.posted {
		posted += n
	}
	t.Logf("%d instructions posted to %d targets, in %d replies (%d with several)", posted, targets, f.replies, f.several)
}

// A post made in each gap of a poll's life wakes it: as the poll
// subscribes to wake-ups (before the read it decides on), or as it parks
// (after that read), whether in its handler or in an answerer that woke
// it and found nothing new. Each post made there is one the poll either
// reads or is woken by; none leaves it parked behind, for its hold to end.
func TestAPostInEveryGapWakesThePoll(t *testing.T) {
	for _, gap := range []string{master.GapSubscribe, master.GapPark} {
		t.Run(gap, func(t *testing.T) { testAPostInTheGapWakesThePoll(t, gap) })
	}
}

func testAPostInTheGapWakesThePoll(t *testing.T, gap string) {
	env := testenv.New(t, testenv.Options{})
	const targets = 4
	const budget = 300 // posts made in the gap
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f, names, ids := startWakeFleet(t, ctx, env, targets)
	name := map[int64]string{}
	for i, id := range ids {
		name[id] = names[i]
	}
	var left atomic.Int64
	left.Store(budget)
	var racing sync.Mutex // one post at a time, each in the gap it was made in
	master.RaceWakeUps(env.Master, func(at string, target int64) {
		racing.Lock()
		defer racing.Unlock()
		if at != gap || left.Add(-1) < 0 {
			return
		}
		if _, err := env.Master.Catalog.Post(ctx, catalog.PostRequest{Operation: muster.OpSyncTime, Targets: []string{name[target]}}, env.Master.Self()); err != nil {
			t.Errorf("post in the gap: %v", err)
			return
		}
		f.mu.Lock()
		f.posted[target]++
		f.mu.Unlock()
	})
	// A wake-up that brings nothing: every poll is handed over, finds
	// nothing, and subscribes and parks again, with a post made in the
	// gap; each reply has its target poll again, which subscribes and
	// parks with one too, until the posts are spent. Every poll parked
	// before then is one that missed its wake-up.
	master.Heard(env.Master, catalog.Commit{Targets: ids})
	testenv.Eventually(t, time.Minute, "the posts in the gap spent, or every poll parked", func() bool {
		return left.Load() <= 0 || master.ParkedPolls(env.Master) == targets
	})
	if n := left.Load(); n > 0 {
		racing.Lock() // no post in flight
		n = left.Load()
		racing.Unlock()
		if n > 0 && master.ParkedPolls(env.Master) == targets {
			t.Errorf("every poll parked with %d of %d posts in the gap to make: a post in the gap left its poll parked", n, budget)
		}
	}
	master.RaceWakeUps(env.Master, func(string, int64) {})
	f.check(t, ctx, env.Master, targets, true)
}
