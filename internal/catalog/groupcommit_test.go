package catalog_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// countingStore counts the write transactions a store runs.
type countingStore struct {
	catalog.Store
	updates atomic.Int64
}

func (s *countingStore) Update(ctx context.Context, fn func(catalog.Tx) error) error {
	s.updates.Add(1)
	return s.Store.Update(ctx, fn)
}

// commitLog records what OnCommit hears.
type commitLog struct {
	mu      sync.Mutex
	commits []catalog.Commit
}

func (l *commitLog) add(c catalog.Commit) {
	l.mu.Lock()
	l.commits = append(l.commits, c)
	l.mu.Unlock()
}

func (l *commitLog) since(n int) []catalog.Commit {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.commits[n:])
}

func (l *commitLog) len() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.commits) }

// fanOut opens a catalog on a counting store, enlists n targets and starts
// a job on them all: the targets, and the START each was sent.
func fanOut(t *testing.T, eng catalogtest.Engine, n int) (*catalog.Catalog, *countingStore, *commitLog, *clock, []catalog.TargetIdentity, []muster.StartedRun) {
	t.Helper()
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	store := &countingStore{Store: eng.Open(t)}
	log := &commitLog{}
	db, err := catalog.Open(ctx, store, catalog.Options{Now: clk.Now, OnCommit: log.add})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var ids []catalog.TargetIdentity
	var names []string
	for i := range n {
		name := fmt.Sprintf("t%03d", i)
		ids, names = append(ids, enlist(t, db, name)), append(names, name)
	}
	if _, err := db.ApplyJobs(ctx, []muster.Job{job("fan", names...)}, catalog.ApplyOptions{}, admin); err != nil {
		t.Fatal(err)
	}
	res, err := db.StartJob(ctx, catalog.StartRequest{Job: "fan"}, admin)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != n {
		t.Fatalf("started %d runs, want %d", len(res.Runs), n)
	}
	return db, store, log, clk, ids, res.Runs
}

// holdWrites starts a shared write that holds the transaction until
// release is called, so that the writes that come meanwhile queue.
func holdWrites(t *testing.T, db *catalog.Catalog) (release func()) {
	t.Helper()
	started, held, finished := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		finished <- db.UpdateShared(context.Background(), func(catalog.Tx) error {
			close(started)
			<-held
			return nil
		})
	}()
	<-started
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(held)
			if err := <-finished; err != nil {
				t.Errorf("the holding write: %v", err)
			}
		})
	}
	t.Cleanup(release) // when the test stops early
	return release
}

// awaitQueued waits until n writes wait for a shared transaction.
func awaitQueued(t *testing.T, db *catalog.Catalog, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for db.QueuedWrites() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", db.QueuedWrites(), n)
		}
		runtime.Gosched()
	}
}

// Acknowledgements and uploads that come while a write transaction runs
// share the next one: one transaction, one OnCommit, and each request
// answered for itself.
func TestAcksAndUploadsShareATransaction(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		const n = 20
		db, store, log, clk, ids, runs := fanOut(t, eng, n)

		release := holdWrites(t, db)
		updates, commits := store.updates.Load(), log.len()
		acked := make([][]catalog.Acked, n)
		results := make([][]catalog.RunResult, n)
		errs := make([]error, 2*n)
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Add(2)
			go func() {
				defer wg.Done()
				// The INSERT and the START.
				acked[i], errs[2*i] = db.Ack(ctx, id.ID, []catalog.AckRow{{Seq: runs[i].Seq - 1, Status: muster.InstructionDownloaded},
					{Seq: runs[i].Seq, Status: muster.InstructionDownloaded}})
			}()
			go func() {
				defer wg.Done()
				results[i], errs[2*i+1] = db.UpsertRuns(ctx, id, []catalog.RunUpload{report(runs[i].RunID, "fan", muster.RunSucceeded, 1, clk.Now())})
			}()
		}
		awaitQueued(t, db, 2*n)
		release()
		wg.Wait()

		if got := store.updates.Load() - updates; got != 1 {
			t.Errorf("%d write transactions for %d acknowledgements and uploads, want 1", got, 2*n)
		}
		got := log.since(commits)
		if len(got) != 1 {
			t.Fatalf("OnCommit heard %d commits, want 1", len(got))
		}
		slices.Sort(got[0].Runs)
		var want []string
		for _, r := range runs {
			want = append(want, r.RunID)
		}
		slices.Sort(want)
		if !slices.Equal(got[0].Runs, want) {
			t.Errorf("the commit names runs %v, want %v", got[0].Runs, want)
		}
		checked := 0
		for i, id := range ids {
			if errs[2*i] != nil || errs[2*i+1] != nil {
				t.Fatalf("%s: ack: %v, upload: %v", id.Name, errs[2*i], errs[2*i+1])
			}
			if len(acked[i]) != 2 || acked[i][0].Status != muster.InstructionDownloaded {
				t.Errorf("%s: acked %+v, want its INSERT and START downloaded", id.Name, acked[i])
			}
			if r := results[i]; len(r) != 1 || !r[0].OK || !r[0].Ended || r[0].RunID != runs[i].RunID {
				t.Errorf("%s: upload results %+v, want run %s stored and ended", id.Name, r, runs[i].RunID)
			}
			pending, err := db.PendingInstructions(ctx, id.ID, 0)
			if err != nil || len(pending) != 0 {
				t.Errorf("%s: pending %v (%v), want none", id.Name, ops(pending), err)
			}
			checked++
		}
		if checked != n {
			t.Errorf("checked %d targets, want %d", checked, n)
		}
		stored, err := db.FindRuns(ctx, catalog.RunFilter{Job: "fan"})
		if err != nil {
			t.Fatal(err)
		}
		if len(stored) != n {
			t.Errorf("%d runs stored, want %d", len(stored), n)
		}
		for _, r := range stored {
			if r.Status != muster.RunSucceeded {
				t.Errorf("run %s on %s: %s, want succeeded", r.RunID, r.Target, r.Status)
			}
		}
	})
}

// A write of a shared transaction that fails fails alone: the others of
// its group are committed, and it leaves nothing.
func TestFailedWriteOfASharedTransaction(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		const n = 6
		db, _, log, clk, ids, runs := fanOut(t, eng, n)

		release := holdWrites(t, db)
		commits := log.len()
		results := make([][]catalog.RunResult, n)
		errs := make([]error, n)
		var failed error
		var wg sync.WaitGroup
		for i, id := range ids[:n-1] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errs[i] = db.UpsertRuns(ctx, id, []catalog.RunUpload{report(runs[i].RunID, "fan", muster.RunSucceeded, 1, clk.Now())})
			}()
		}
		awaitQueued(t, db, n-1)
		// The last target's upload is refused after it wrote its run.
		bad := ids[n-1]
		wg.Add(1)
		go func() {
			defer wg.Done()
			failed = db.UpdateShared(ctx, func(tx catalog.Tx) error {
				r := report(runs[n-1].RunID, "fan", muster.RunSucceeded, 1, clk.Now())
				if _, err := tx.UpsertRuns(ctx, bad.ID, []catalog.RunRow{{Run: r.Run, Revision: r.Revision}}, clk.Now()); err != nil {
					return err
				}
				return muster.Errorf(muster.EINVALID, "run %s: refused", r.Run.RunID)
			})
		}()
		awaitQueued(t, db, n)
		release()
		wg.Wait()

		if got := muster.ErrorCode(failed); got != muster.EINVALID {
			t.Errorf("the refused write: %q (%v), want %s", got, failed, muster.EINVALID)
		}
		for i, id := range ids[:n-1] {
			if errs[i] != nil || len(results[i]) != 1 || !results[i][0].OK || !results[i][0].Ended {
				t.Errorf("%s: upload %+v (%v), want its run stored and ended", id.Name, results[i], errs[i])
			}
		}
		stored, err := db.FindRuns(ctx, catalog.RunFilter{Job: "fan"})
		if err != nil {
			t.Fatal(err)
		}
		var got, want []string
		for _, r := range stored {
			got = append(got, r.RunID)
		}
		for _, r := range runs[:n-1] {
			want = append(want, r.RunID)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("runs stored %v, want %v (all but the refused one's)", got, want)
		}
		// Each stored run was heard once, the refused one never.
		heard := map[string]int{}
		for _, c := range log.since(commits) {
			for _, id := range c.Runs {
				heard[id]++
			}
		}
		for _, id := range want {
			if heard[id] != 1 {
				t.Errorf("OnCommit heard run %s %d times, want once", id, heard[id])
			}
		}
		if heard[runs[n-1].RunID] != 0 {
			t.Errorf("OnCommit heard the refused run %s", runs[n-1].RunID)
		}
	})
}

// Writes of one target keep their order in a shared transaction: of two
// acknowledgements of one instruction, the first to come is recorded.
func TestSharedWritesKeepTheirOrder(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, store, _, _, ids, runs := fanOut(t, eng, 1)
		release := holdWrites(t, db)
		updates := store.updates.Load()
		var wg sync.WaitGroup
		acked := make([][]catalog.Acked, 2)
		for i, status := range []muster.InstructionStatus{muster.InstructionFailed, muster.InstructionDownloaded} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				acked[i], err = db.Ack(ctx, ids[0].ID, []catalog.AckRow{{Seq: runs[0].Seq, Status: status, Error: "no such shell"}})
				if err != nil {
					t.Error(err)
				}
			}()
			awaitQueued(t, db, i+1)
		}
		release()
		wg.Wait()
		if got := store.updates.Load() - updates; got != 1 {
			t.Errorf("%d write transactions, want 1", got)
		}
		if len(acked[0]) != 1 || acked[0][0].Status != muster.InstructionFailed || len(acked[1]) != 0 {
			t.Errorf("acked %+v, want the first acknowledgement (failed) recorded, the second changing nothing", acked)
		}
		ins, err := db.FindInstructions(ctx, catalog.InstructionFilter{Target: ids[0].Name, Seq: runs[0].Seq})
		if err != nil || len(ins) != 1 || ins[0].Status != muster.InstructionFailed {
			t.Errorf("instruction %+v (%v), want it failed", ins, err)
		}
	})
}

// A write that panics in a shared transaction panics in its own caller;
// the others of its group are committed.
func TestPanicInASharedTransaction(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _, clk, ids, runs := fanOut(t, eng, 1)
		release := holdWrites(t, db)
		var wg sync.WaitGroup
		var res []catalog.RunResult
		var err error
		var recovered any
		wg.Add(2)
		go func() {
			defer wg.Done()
			res, err = db.UpsertRuns(ctx, ids[0], []catalog.RunUpload{report(runs[0].RunID, "fan", muster.RunSucceeded, 1, clk.Now())})
		}()
		awaitQueued(t, db, 1)
		go func() {
			defer wg.Done()
			defer func() { recovered = recover() }()
			db.UpdateShared(ctx, func(catalog.Tx) error { panic("a bug in a transaction") })
		}()
		awaitQueued(t, db, 2)
		release()
		wg.Wait()
		if recovered != "a bug in a transaction" {
			t.Errorf("the panicking write's caller recovered %v, want its panic", recovered)
		}
		if err != nil || len(res) != 1 || !res[0].OK {
			t.Errorf("the upload beside it: %+v (%v), want it stored", res, err)
		}
	})
}

// A shared transaction takes at most 256 writes: the rest wait for the
// next one.
func TestSharedTransactionIsBounded(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		const n = 300
		db, store, _, _, ids, runs := fanOut(t, eng, n)
		release := holdWrites(t, db)
		updates := store.updates.Load()
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = db.Ack(ctx, id.ID, []catalog.AckRow{{Seq: runs[i].Seq, Status: muster.InstructionDownloaded}})
			}()
		}
		awaitQueued(t, db, n)
		release()
		wg.Wait()
		if got := store.updates.Load() - updates; got != 2 {
			t.Errorf("%d write transactions for %d acknowledgements, want 2 (256 and 44)", got, n)
		}
		for i, err := range errs {
			if err != nil {
				t.Errorf("%s: %v", ids[i].Name, err)
			}
		}
		pending, err := db.FindInstructions(ctx, catalog.InstructionFilter{Job: "fan", Operation: muster.OpStart, Pending: true})
		if err != nil || len(pending) != 0 {
			t.Errorf("%d STARTs pending (%v), want none", len(pending), err)
		}
	})
}
