package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
)

// targetNames names n targets.
func targetNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("t%05d", i+1)
	}
	return names
}

// parallel calls fn(i) for i in [0, n) on workers goroutines and returns
// the first error; after one, the rest are not started.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
				}
			}
		}()
	}
	wg.Wait()
	return context.Cause(ctx)
}

// enlistWorkers is how many enlistments run at once.
const enlistWorkers = 8

// startProcessTargets enlists n targets and starts each as its own
// `muster target` process, and waits until the master holds a poll from
// every one.
func (e *env) startProcessTargets(ctx context.Context, m *Master, n int) ([]*TargetProcess, error) {
	e.progress("enlisting %d target processes", n)
	names := targetNames(n)
	targets := make([]*TargetProcess, n)
	err := parallel(ctx, n, enlistWorkers, func(ctx context.Context, i int) error {
		t, err := EnlistTarget(ctx, e.o.Exe, m.Client, m.URL, names[i], filepath.Join(e.dir, names[i]))
		targets[i] = t
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, t := range targets {
		t.TraceFile = filepath.Join(t.Dir, traceFile)
		if err := t.Start(); err != nil {
			return nil, err
		}
		e.onClose(func() { t.Stop() })
	}
	_, err = e.waitPollsHeld(ctx, n, m)
	return targets, err
}

// startSimTargets enlists n simulated targets with m in this process,
// starts their polling, and waits until the master holds a poll from every
// one. (Scenarios that measure a fleet rather than drive a few targets
// use startSimFleet, which runs them in sim processes.)
func (e *env) startSimTargets(ctx context.Context, m *Master, n int, rec *recorder) ([]*simTarget, error) {
	if err := ensureOpenFiles(n); err != nil {
		return nil, err
	}
	e.progress("enlisting %d simulated targets", n)
	names := targetNames(n)
	sims := make([]*simTarget, n)
	err := parallel(ctx, n, enlistWorkers, func(ctx context.Context, i int) error {
		s, err := enlistSim(ctx, m, m.URL, names[i], rec)
		sims[i] = s
		return err
	})
	if err != nil {
		return nil, err
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, s := range sims {
		wg.Add(1)
		go func() { defer wg.Done(); s.run(runCtx) }()
	}
	e.onClose(func() { stop(); wg.Wait() })
	_, err = e.waitPollsHeld(ctx, n, m)
	return sims, err
}

// waitPollsHeld waits until the masters hold at least n polls between
// them, saying every half minute how many they hold, and returns how many
// they held then.
func (e *env) waitPollsHeld(ctx context.Context, n int, ms ...*Master) (int, error) {
	held, said := 0, time.Now()
	err := waitUntil(ctx, fmt.Sprintf("the masters to hold %d polls", n), 5*time.Minute, 100*time.Millisecond, func() (bool, error) {
		h, err := pollsHeld(ctx, ms)
		if err == nil {
			held = h
		}
		if time.Since(said) >= 30*time.Second {
			e.progress("the masters hold %d of %d polls", held, n)
			said = time.Now()
		}
		return err == nil && held >= n, nil
	})
	if errors.Is(err, errTimeout) {
		return held, fmt.Errorf("%w (they held %d)", err, held)
	}
	return held, err
}

// pollsHeld sums the polls the masters hold.
func pollsHeld(ctx context.Context, ms []*Master) (int, error) {
	total := 0
	for _, m := range ms {
		held, err := m.Metric(ctx, "muster_polls_held")
		if err != nil {
			return 0, err
		}
		total += int(held)
	}
	return total, nil
}

// applyJobs applies jobs and waits until every target of every job has
// acknowledged what that posted.
func applyJobs(ctx context.Context, m *Master, jobs ...muster.Job) error {
	if _, err := m.Client.Apply(ctx, httpapi.ApplyRequest{Jobs: jobs}); err != nil {
		return err
	}
	return settled(ctx, m)
}

// settled waits until no target has a pending instruction.
func settled(ctx context.Context, m *Master) error {
	return waitUntil(ctx, "every target to acknowledge its instructions", 5*time.Minute, 50*time.Millisecond, func() (bool, error) {
		pending, err := m.Client.DownloadList(ctx, httpapi.DownloadListFilter{Pending: true, Limit: 1})
		return err == nil && len(pending) == 0, err
	})
}

// shellJob is a job of one shell step on targets.
func shellJob(name, script string, targets []string) muster.Job {
	j := muster.NewJob()
	j.Name, j.Targets = name, targets
	j.Steps = []muster.Step{{Name: "main", Shell: script}}
	return j
}

// WaitRuns waits until the master has every run named finished, and
// returns them with the moment it knew. Each request asks the master to
// hold its answer until they are all finished.
func WaitRuns(ctx context.Context, c *httpapi.Client, ids []muster.RunRef, timeout time.Duration) ([]muster.Run, time.Time, error) {
	deadline := time.Now().Add(timeout)
	const chunk = 1000 // run ids per request, to keep the query short
	var out []muster.Run
	for i := 0; i < len(ids); i += chunk {
		part := ids[i:min(i+chunk, len(ids))]
		for {
			runs, err := c.Runs(ctx, part, httpapi.MaxRunWait)
			if err != nil {
				return nil, time.Time{}, err
			}
			if httpapi.AllFinished(runs, len(part)) {
				out = append(out, runs...)
				break
			}
			if time.Now().After(deadline) {
				return nil, time.Time{}, fmt.Errorf("%w after %s waiting for %d runs to be recorded finished", errTimeout, timeout, len(ids))
			}
		}
	}
	return out, time.Now(), nil
}
