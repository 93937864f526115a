package agent

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/musterhq/muster"
)

// backlog holds what the store refused to record of runs (its data
// directory full, most likely): the latest state of each such run, with
// the output that came meanwhile, in memory, and writes it again until the
// store takes it. A run's known outcome is never lost while the daemon
// runs: a run that ended while the disk was full is recorded with its
// true outcome once space returns, not found running and called abandoned
// at the next start.
type backlog struct {
	mu    sync.Mutex
	runs  map[string]*pendingRun // by run id
	order []string               // run ids, oldest first
	full  bool                   // the last write failed for want of space
	wake  chan struct{}
	// next gathers the states recorded while a commit is under way; commit
	// is held by the caller committing a batch (see record).
	next   *recordBatch
	commit sync.Mutex
}

// pendingRun is a run's latest state and the output not yet recorded.
type pendingRun struct {
	run    muster.Run
	output []outputChunk
}

func newBacklog() *backlog {
	return &backlog{runs: map[string]*pendingRun{}, wake: make(chan struct{}, 1)}
}

// record writes a run's state with the output that came since its last
// one. A run already waiting in the backlog waits on, its new state after
// the old (their order is kept); a write the store refuses puts the run in
// the backlog. It returns the store's error, if it refused the write.
//
// Runs recorded at once share a commit: while one commit is under way,
// the states that come are queued, and the first of their callers to have
// the store commits them all in one transaction (group commit), so that
// the steps of a schedule's tick, all spawned together, cost the single
// writer one synced commit, not one each. Each caller returns once its
// state is committed, as before.
func (m *Main) record(ctx context.Context, run muster.Run, output []outputChunk) error {
	b := m.backlog
	b.mu.Lock()
	// The executor goes on writing its run's steps in place: what waits
	// here, to be written later by another goroutine, is a copy.
	run.Steps = slices.Clone(run.Steps)
	if p, waiting := b.runs[run.RunID]; waiting {
		p.run, p.output = run, append(p.output, output...)
		b.mu.Unlock()
		return nil
	}
	if b.next == nil {
		b.next = &recordBatch{done: make(chan struct{})}
	}
	batch := b.next
	batch.runs = append(batch.runs, pendingRun{run: run, output: output})
	b.mu.Unlock()

	b.commit.Lock()
	defer b.commit.Unlock()
	select {
	case <-batch.done: // committed by another caller of the batch
		return batch.err
	default:
	}
	b.mu.Lock()
	if b.next == batch {
		b.next = nil // later states make the next batch
	}
	b.mu.Unlock()
	batch.err = m.store.saveRuns(ctx, batch.runs)
	if batch.err != nil {
		b.mu.Lock()
		for _, p := range batch.runs {
			if q, waiting := b.runs[p.run.RunID]; waiting {
				q.run, q.output = p.run, append(q.output, p.output...)
				continue
			}
			b.runs[p.run.RunID] = &pendingRun{run: p.run, output: p.output}
			b.order = append(b.order, p.run.RunID)
		}
		b.full = isFull(batch.err)
		b.mu.Unlock()
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
	close(batch.done)
	return batch.err
}

// recordBatch is the run states recorded while a commit was under way,
// committed together.
type recordBatch struct {
	runs []pendingRun
	err  error         // the commit's; read after done
	done chan struct{} // closed once committed, or refused
}

// flushBacklog writes the runs of the backlog, oldest first, each in its
// own transaction, and stops at the first the store refuses.
func (m *Main) flushBacklog(ctx context.Context) error {
	b := m.backlog
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.order) > 0 {
		id := b.order[0]
		p := b.runs[id]
		if err := m.store.saveRun(ctx, p.run, p.output); err != nil {
			b.full = isFull(err)
			return fmt.Errorf("%d run(s) wait in memory to be recorded: %w", len(b.order), err)
		}
		m.log.Info("a run the store had refused is recorded", muster.LogJob, p.run.Job, muster.LogRunID, id, "status", p.run.Status)
		delete(b.runs, id)
		b.order = b.order[1:]
	}
	b.full = false
	return nil
}

// backlogLoop writes the backlog again, with backoff, until the store
// takes it, whenever runs wait in it.
func (m *Main) backlogLoop(ctx context.Context) {
	m.retryLoop(ctx, m.backlog.wake, "runs could not be recorded; their state waits in memory", "runs are recorded again", func(ctx context.Context) error {
		if err := m.flushBacklog(ctx); err != nil {
			return err
		}
		m.wakeUploader()
		return nil
	})
}

// waiting is how many runs wait in the backlog, and whether the last
// write of one failed for want of space.
func (b *backlog) waiting() (runs int, full bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.order), b.full
}

// diskFull reports whether the data directory is full: the store's last
// write, or the backlog's, failed for want of space.
func (m *Main) diskFull() bool {
	_, full := m.backlog.waiting()
	return full || m.store.full.Load()
}
