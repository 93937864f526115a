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
func (m *Main) record(ctx context.Context, run muster.Run, output []outputChunk) error {
	b := m.backlog
	b.mu.Lock()
	defer b.mu.Unlock()
	// The executor goes on writing its run's steps in place: what waits
	// here, to be written later by another goroutine, is a copy.
	run.Steps = slices.Clone(run.Steps)
	if p, waiting := b.runs[run.RunID]; waiting {
		p.run, p.output = run, append(p.output, output...)
		return nil
	}
	err := m.store.saveRun(ctx, run, output)
	if err != nil {
		b.runs[run.RunID] = &pendingRun{run: run, output: output}
		b.order = append(b.order, run.RunID)
		b.full = isFull(err)
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
	return err
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
