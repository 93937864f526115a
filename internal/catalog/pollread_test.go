package catalog_test

import (
	"context"
	"database/sql"
	"errors"
	"maps"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// The polls of several targets, read in one statement, find what each
// target's own poll finds: its last sequence number, whether it is
// paused, what is pending after its own cursor (at most the limit); a
// target with nothing pending still has its state, and one that does not
// exist has no entry.
func TestPollPendingOf(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		web1, web2, web3 := threeWithJobs(t, db)
		if _, err := db.SetPaused(ctx, []string{"web2"}, "", true, admin); err != nil {
			t.Fatal(err)
		}
		nobody := web3.ID + 100
		after := map[int64]int64{web1.ID: 1, web2.ID: 0, web3.ID: 0, nobody: 0}
		got, err := db.Store().PollPendingOf(ctx, after, catalog.MaxPollBatch)
		if err != nil {
			t.Fatal(err)
		}
		if ids := slices.Sorted(maps.Keys(got)); !slices.Equal(ids, []int64{web1.ID, web2.ID, web3.ID}) {
			t.Fatalf("entries for targets %v, want %v", ids, []int64{web1.ID, web2.ID, web3.ID})
		}
		for _, c := range []struct {
			name       string
			id         int64
			wantPaused bool
			wantOps    []string
		}{
			{"web1 after 1", web1.ID, false, []string{"INSERT b", "INSERT c"}},
			{"web2, paused", web2.ID, true, []string{"INSERT a"}},
			{"web3, nothing pending", web3.ID, false, []string{}},
		} {
			t.Run(c.name, func(t *testing.T) {
				last, paused, ins, err := db.Store().PollPending(ctx, c.id, after[c.id], catalog.MaxPollBatch)
				if err != nil {
					t.Fatal(err)
				}
				g := got[c.id]
				if g.LastSeq != last || g.Paused != paused || paused != c.wantPaused {
					t.Errorf("last %d, paused %v; alone %d, %v; want paused %v", g.LastSeq, g.Paused, last, paused, c.wantPaused)
				}
				if g.Instructions == nil || !slices.Equal(ops(g.Instructions), c.wantOps) || !slices.Equal(ops(g.Instructions), ops(ins)) {
					t.Errorf("pending %v; want %v, as read alone (%v)", ops(g.Instructions), c.wantOps, ops(ins))
				}
				for i := range min(len(ins), len(g.Instructions)) {
					if a, w := g.Instructions[i], ins[i]; a.Seq != w.Seq || a.TargetID != c.id || a.Job != w.Job ||
						a.Status != muster.InstructionPending || string(a.Payload) != string(w.Payload) {
						t.Errorf("instruction %d: seq %d of target %d, job %q, %s; alone seq %d, job %q", i, a.Seq, a.TargetID, a.Job, a.Status, w.Seq, w.Job)
					}
				}
			})
		}
		t.Run("at most the limit a target", func(t *testing.T) {
			got, err := db.Store().PollPendingOf(ctx, map[int64]int64{web1.ID: 0, web2.ID: 0}, 2)
			if err != nil {
				t.Fatal(err)
			}
			if g1, g2 := ops(got[web1.ID].Instructions), ops(got[web2.ID].Instructions); !slices.Equal(g1, []string{"INSERT a", "INSERT b"}) ||
				!slices.Equal(g2, []string{"INSERT a"}) {
				t.Errorf("with a limit of 2: web1 %v, web2 %v; want web1's first two, web2's one", g1, g2)
			}
		})
	})
}

// slowPolls holds its first poll read until released, and keeps the
// cursors of each read of several.
type slowPolls struct {
	catalog.Store
	entered, release chan struct{}
	once             sync.Once
	mu               sync.Mutex
	single           int
	several          []map[int64]int64
}

func (s *slowPolls) PollPending(ctx context.Context, targetID, after int64, limit int) (int64, bool, []catalog.InstructionRow, error) {
	s.mu.Lock()
	s.single++
	s.mu.Unlock()
	s.once.Do(func() {
		close(s.entered)
		<-s.release
	})
	return s.Store.PollPending(ctx, targetID, after, limit)
}

func (s *slowPolls) PollPendingOf(ctx context.Context, after map[int64]int64, limit int) (map[int64]catalog.PollRow, error) {
	s.mu.Lock()
	s.several = append(s.several, maps.Clone(after))
	s.mu.Unlock()
	return s.Store.PollPendingOf(ctx, after, limit)
}

func (s *slowPolls) reads() (int, []map[int64]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.single, slices.Clone(s.several)
}

func awaitWaitingPolls(t *testing.T, db *catalog.Catalog, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for db.WaitingPolls() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d polls wait, want %d", db.WaitingPolls(), n)
		}
		runtime.Gosched()
	}
}

func awaitSingleReads(t *testing.T, s *slowPolls, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		single, _ := s.reads()
		if single >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d polls read alone, want %d", single, n)
		}
		runtime.Gosched()
	}
}

// pollAnswer is what PollPending returned to one poll.
type pollAnswer struct {
	last   int64
	paused bool
	ops    []string
	err    error
}

// On a shared catalog (PostgreSQL), a poll that finds no read running
// reads alone; those that come while it runs are read together in one
// statement once it ends, each answered as it would have been alone. What
// is posted while the first read runs is in the answers of the polls that
// waited: their read begins after they came. A second poll of a target
// already waiting reads alone, after its own cursor; a poll of a target
// that does not exist is not found. On SQLite every poll reads alone,
// with the same answers.
func TestPollsReadTogether(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		ctx := context.Background()
		store := &slowPolls{Store: e.Open(t), entered: make(chan struct{}), release: make(chan struct{})}
		db, err := catalog.Open(ctx, store, catalog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		web1, web2, web3 := threeWithJobs(t, db)
		poll := func(id, after int64) <-chan pollAnswer {
			ch := make(chan pollAnswer, 1)
			go func() {
				last, paused, ins, err := db.PollPending(ctx, id, after)
				ch <- pollAnswer{last, paused, ops(ins), err}
			}()
			return ch
		}
		first := poll(web1.ID, 0)
		<-store.entered
		// Posted while the first read runs, before the others come.
		if _, err := db.SetPaused(ctx, []string{"web3"}, "", true, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1", "web2"), job("b", "web1"), job("c", "web1"), job("d", "web3")},
			catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		shared := store.Shared()
		await := func(waiting, single int) {
			if shared {
				awaitWaitingPolls(t, db, waiting)
			} else {
				awaitSingleReads(t, store, single)
			}
		}
		second, third := poll(web2.ID, 0), poll(web3.ID, 0)
		await(2, 3)
		again := poll(web2.ID, 1) // web2 waits already: read alone
		nobody := poll(web3.ID+100, 0)
		await(3, 5)
		close(store.release)

		if a := <-first; a.err != nil || !slices.Equal(a.ops, []string{"INSERT a", "INSERT b", "INSERT c"}) {
			t.Errorf("web1's poll, read alone: %v, %v; want its three INSERTs", a.ops, a.err)
		}
		if a := <-second; a.err != nil || a.paused || !slices.Equal(a.ops, []string{"INSERT a"}) {
			t.Errorf("web2's poll: paused %v, %v, %v; want not paused, INSERT a", a.paused, a.ops, a.err)
		}
		if a := <-third; a.err != nil || !a.paused || a.last != 1 || !slices.Equal(a.ops, []string{"INSERT d"}) {
			t.Errorf("web3's poll: last %d, paused %v, %v, %v; want 1, paused, INSERT d (posted after the first read began)",
				a.last, a.paused, a.ops, a.err)
		}
		if a := <-again; a.err != nil || len(a.ops) != 0 || a.last != 1 {
			t.Errorf("web2's second poll, after 1: last %d, %v, %v; want 1 and nothing pending", a.last, a.ops, a.err)
		}
		if a := <-nobody; !errors.Is(a.err, sql.ErrNoRows) {
			t.Errorf("a poll of no target: %v; want sql.ErrNoRows", a.err)
		}
		single, several := store.reads()
		wantSingle, want := 2, []map[int64]int64{{web2.ID: 0, web3.ID: 0, web3.ID + 100: 0}} // web1's and web2's second alone
		if !shared {
			wantSingle, want = 5, nil
		}
		if single != wantSingle || !slices.EqualFunc(several, want, maps.Equal) {
			t.Errorf("%d single reads and %v together; want %d and %v", single, several, wantSingle, want)
		}
	})
}

// brokenPolls panics in its first poll read.
type brokenPolls struct {
	catalog.Store
	once sync.Once
}

func (s *brokenPolls) PollPending(ctx context.Context, targetID, after int64, limit int) (int64, bool, []catalog.InstructionRow, error) {
	s.once.Do(func() { panic("the store broke") })
	return s.Store.PollPending(ctx, targetID, after, limit)
}

// A read whose store panics lets the next one go: the poll after it reads
// and is answered, instead of waiting for ever behind it.
func TestPollReadThatPanicsLetsTheNextGo(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		ctx := context.Background()
		db, err := catalog.Open(ctx, &brokenPolls{Store: e.Open(t)}, catalog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		web1 := enlist(t, db, "web1")
		func() {
			defer func() {
				if p := recover(); p != "the store broke" {
					t.Fatalf("the first poll: recovered %v, want the store's panic", p)
				}
			}()
			db.PollPending(ctx, web1.ID, 0)
		}()
		done := make(chan error, 1)
		go func() {
			_, _, _, err := db.PollPending(ctx, web1.ID, 0)
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("the poll after the broken read: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the poll after the broken read is still waiting for it")
		}
	})
}

// hungPolls is a store shared by several masters whose first poll read is
// never answered, as when the database's server is cut off without a
// reset: it returns only when its context ends.
type hungPolls struct {
	catalog.Store
	once   sync.Once
	hanged chan struct{}
}

func (s *hungPolls) Shared() bool { return true }

func (s *hungPolls) PollPending(ctx context.Context, targetID, after int64, limit int) (int64, bool, []catalog.InstructionRow, error) {
	hang := false
	s.once.Do(func() { hang = true })
	if hang {
		close(s.hanged)
		<-ctx.Done()
		return 0, false, nil, ctx.Err()
	}
	return s.Store.PollPending(ctx, targetID, after, limit)
}

// A shared read the database never answers fails its poll as unavailable
// once its bound passes, though the poll's own context never ends, and
// the poll that waited behind it then reads and is answered.
func TestHungPollReadEndsAtItsBound(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		ctx := context.Background()
		store := &hungPolls{Store: e.Open(t), hanged: make(chan struct{})}
		db, err := catalog.Open(ctx, store, catalog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		db.SetSharedReadTimeout(100 * time.Millisecond)
		web1, web2 := enlist(t, db, "web1"), enlist(t, db, "web2")
		first := make(chan error, 1)
		go func() {
			_, _, _, err := db.PollPending(ctx, web1.ID, 0)
			first <- err
		}()
		<-store.hanged
		second := make(chan error, 1)
		go func() {
			_, _, _, err := db.PollPending(ctx, web2.ID, 0)
			second <- err
		}()
		answer := func(name string, c chan error) error {
			t.Helper()
			select {
			case err := <-c:
				return err
			case <-time.After(30 * time.Second):
				t.Fatalf("%s is still waiting", name)
				return nil
			}
		}
		if err := answer("the hung poll", first); muster.ErrorCode(err) != muster.EUNAVAILABLE {
			t.Fatalf("the hung poll: %v (code %q), want %s", err, muster.ErrorCode(err), muster.EUNAVAILABLE)
		}
		if err := answer("the poll after the hung read", second); err != nil {
			t.Fatalf("the poll after the hung read: %v", err)
		}
	})
}
