package agent

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/musterhq/muster"
)

// burstRun is a run of a burst, recorded running in m's store, not yet
// spawned.
func burstRun(t *testing.T, m *Main, id string) *activeRun {
	t.Helper()
	run := muster.Run{Job: "job-" + id, Target: "web1", RunID: id, Trigger: "schedule:s", Status: muster.RunRunning,
		StartedAt: m.now(), Steps: []muster.StepAttempt{}}
	if err := m.store.saveRun(context.Background(), run, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	t.Cleanup(func() { cancel(nil) })
	return &activeRun{run: run, ctx: ctx, cancel: cancel, spawned: make(chan struct{})}
}

// returned reports whether done is closed.
func returned(done chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// Until every run of a burst has spawned, the state a spawned run saves
// is not written; it is as soon as the last run spawns, before spawnWait
// has passed.
func TestBurstHoldsSavesUntilSpawned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newTestMain(t)
		a, b := burstRun(t, m, "a"), burstRun(t, m, "b")
		m.exec.startBurst([]*activeRun{a, b})
		a.markSpawned()
		saved := make(chan struct{})
		go func() {
			run := a.run
			run.Steps = []muster.StepAttempt{{Name: "main", Attempt: 1, Status: muster.AttemptRunning, StartedAt: m.now()}}
			m.exec.save(a, &run)
			close(saved)
		}()
		synctest.Wait()
		if returned(saved) {
			t.Fatal("run a's save returned while run b had not spawned: want it waiting")
		}
		if got := localRun(t, m, "a"); len(got.Steps) != 0 {
			t.Fatalf("run a has %d steps in the store while the burst spawns: want its save to wait", len(got.Steps))
		}
		start := time.Now()
		b.markSpawned()
		<-saved
		if waited := time.Since(start); waited != 0 {
			t.Errorf("the save returned %s after the last run spawned: want at once", waited)
		}
		if got := localRun(t, m, "a"); len(got.Steps) != 1 {
			t.Errorf("run a has %d steps in the store: want its running step saved", len(got.Steps))
		}
	})
}

// The uploader does not begin (it has not even read the spool) until every
// run of the burst has spawned.
func TestBurstHoldsTheUploaderUntilSpawned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newTestMain(t)
		ctx, cancel := context.WithCancelCause(context.Background())
		defer cancel(nil)
		// Not in the store: the spool is empty, so the upload, once it
		// begins, finds nothing to send and returns.
		ar := &activeRun{run: muster.Run{RunID: "a"}, ctx: ctx, cancel: cancel, spawned: make(chan struct{})}
		m.exec.startBurst([]*activeRun{ar})
		uploaded := make(chan error, 1)
		go func() { uploaded <- m.uploadOnce(context.Background()) }()
		synctest.Wait()
		select {
		case err := <-uploaded:
			t.Fatalf("the upload returned (%v) while the burst's run had not spawned: want it waiting", err)
		default:
		}
		start := time.Now()
		ar.markSpawned()
		if err := <-uploaded; err != nil {
			t.Errorf("upload: %v", err)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("the upload returned %s after the run spawned: want at once", waited)
		}
	})
}

// A run that never spawns holds nothing back for longer than spawnWait.
func TestBurstWaitEndsAtSpawnWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newTestMain(t)
		m.exec.startBurst([]*activeRun{burstRun(t, m, "a")})
		start := time.Now()
		m.exec.quiet(context.Background())
		if waited := time.Since(start); waited != spawnWait {
			t.Errorf("waited %s for a run that never spawned: want spawnWait, %s", waited, spawnWait)
		}
	})
}

// A run that has not spawned (a queued run saying it no longer waits)
// saves at once: it does not wait for its own spawn.
func TestBurstRunSavesBeforeItsSpawn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newTestMain(t)
		var runs []*activeRun
		for i := range 3 {
			runs = append(runs, burstRun(t, m, fmt.Sprintf("r%d", i)))
		}
		m.exec.startBurst(runs)
		start := time.Now()
		run := runs[0].run
		run.Message = "no longer queued"
		m.exec.save(runs[0], &run)
		if waited := time.Since(start); waited != 0 {
			t.Errorf("the save of a run not yet spawned waited %s: want none", waited)
		}
		if got := localRun(t, m, "r0"); got.Message != run.Message {
			t.Errorf("run r0's message in the store is %q, want %q", got.Message, run.Message)
		}
	})
}

// gcPercents is a stand-in for debug.SetGCPercent that remembers every
// setting, starting from GOGC 100.
type gcPercents struct {
	mu      sync.Mutex
	current int
	set     []int
}

func watchCollector(m *Main) *gcPercents {
	g := &gcPercents{current: 100}
	m.exec.gc.setPercent = func(p int) int {
		g.mu.Lock()
		defer g.mu.Unlock()
		old := g.current
		g.current = p
		g.set = append(g.set, p)
		return old
	}
	return g
}

func (g *gcPercents) settings() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.set)
}

// The collector is off from the hold before a burst until its last run
// has spawned, and then back at the GOGC it had.
func TestBurstHoldsTheCollectorUntilSpawned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newTestMain(t)
		g := watchCollector(m)
		a, b := burstRun(t, m, "a"), burstRun(t, m, "b")
		m.exec.gc.hold()
		m.exec.startBurst([]*activeRun{a, b})
		a.markSpawned()
		if got := g.settings(); !slices.Equal(got, []int{-1}) {
			t.Fatalf("GOGC settings while run b has not spawned: %v, want [-1] (off)", got)
		}
		b.markSpawned()
		if got := g.settings(); !slices.Equal(got, []int{-1, 100}) {
			t.Errorf("GOGC settings once the burst spawned: %v, want [-1 100] (off, then back on)", got)
		}
		// The deadline passing later changes nothing.
		time.Sleep(2 * spawnWait)
		if got := g.settings(); len(got) != 2 {
			t.Errorf("GOGC settings after the deadline: %v, want [-1 100]", got)
		}
	})
}

// A run that never spawns holds the collector off for spawnWait, no
// longer.
func TestBurstCollectorResumesAtSpawnWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newTestMain(t)
		g := watchCollector(m)
		m.exec.gc.hold()
		m.exec.startBurst([]*activeRun{burstRun(t, m, "a")})
		time.Sleep(spawnWait - time.Millisecond)
		synctest.Wait()
		if got := g.settings(); !slices.Equal(got, []int{-1}) {
			t.Fatalf("GOGC settings before spawnWait: %v, want [-1] (off)", got)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if got := g.settings(); !slices.Equal(got, []int{-1, 100}) {
			t.Errorf("GOGC settings at spawnWait: %v, want [-1 100] (off, then back on)", got)
		}
	})
}

// The fires of the next instant held the collector before the burst
// before theirs spawned: the earlier burst's end leaves it off, and their
// own turns it on, once.
func TestBurstCollectorHeldByTheNextBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newTestMain(t)
		g := watchCollector(m)
		a, b := burstRun(t, m, "a"), burstRun(t, m, "b")
		m.exec.gc.hold()
		m.exec.startBurst([]*activeRun{a})
		m.exec.gc.hold()
		a.markSpawned()
		if got := g.settings(); !slices.Equal(got, []int{-1}) {
			t.Fatalf("GOGC settings after the first burst, the next one held: %v, want [-1] (off)", got)
		}
		m.exec.startBurst([]*activeRun{b})
		b.markSpawned()
		time.Sleep(2 * spawnWait)
		if got := g.settings(); !slices.Equal(got, []int{-1, 100}) {
			t.Errorf("GOGC settings after both bursts: %v, want [-1 100]", got)
		}
	})
}

// Without a hold (a burst of a START, or of fires the store refused),
// a burst leaves the collector alone.
func TestBurstWithoutHoldLeavesTheCollector(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newTestMain(t)
		g := watchCollector(m)
		a := burstRun(t, m, "a")
		m.exec.startBurst([]*activeRun{a})
		a.markSpawned()
		time.Sleep(2 * spawnWait)
		if got := g.settings(); len(got) != 0 {
			t.Errorf("GOGC settings: %v, want none", got)
		}
	})
}
