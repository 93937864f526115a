package agent

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster"
)

// recordAll records n runs at once while a commit is under way (the test
// holds the writer's turn), and returns their errors once all returned.
func recordAll(t *testing.T, m *Main, n int) []error {
	t.Helper()
	b := m.backlog
	b.commit.Lock()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run := muster.Run{Job: "work", Target: "web1", RunID: fmt.Sprintf("r%d", i), Trigger: "operator",
				Status: muster.RunRunning, StartedAt: m.now(), Steps: []muster.StepAttempt{}}
			errs[i] = m.record(context.Background(), run, []outputChunk{{attempt: 1, data: fmt.Sprintf("out %d\n", i)}})
		}()
	}
	waitFor(t, time.Minute, "every state queued", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.next != nil && len(b.next.runs) == n
	})
	b.commit.Unlock()
	wg.Wait()
	return errs
}

// Runs recorded while a commit is under way are committed together, each
// with its output, and each caller has its state committed when it
// returns.
func TestRecordsShareACommit(t *testing.T) {
	m := newTestMain(t)
	for i, err := range recordAll(t, m, 10) {
		if err != nil {
			t.Errorf("run r%d: %v", i, err)
		}
	}
	for i := range 10 {
		got := localRun(t, m, fmt.Sprintf("r%d", i))
		if got.Status != muster.RunRunning {
			t.Errorf("run r%d is %s in the store, want running", i, got.Status)
		}
	}
	if n, _ := m.backlog.waiting(); n != 0 || m.backlog.next != nil {
		t.Errorf("%d runs in the backlog, next batch %v: want none left", n, m.backlog.next)
	}
}

// A batch the store refuses puts each of its runs in the backlog, which
// writes them once the store takes them again.
func TestRefusedBatchWaitsInTheBacklog(t *testing.T) {
	m := newTestMain(t)
	free := fillDisk(m)
	defer free()
	for i, err := range recordAll(t, m, 5) {
		if !isFull(err) {
			t.Errorf("run r%d on a full disk: %v, want refused for a full disk", i, err)
		}
	}
	if n, full := m.backlog.waiting(); n != 5 || !full {
		t.Fatalf("backlog %d run(s), full %v: want the 5 runs waiting, the disk said full", n, full)
	}
	free()
	if err := m.flushBacklog(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if got := localRun(t, m, fmt.Sprintf("r%d", i)); got.Status != muster.RunRunning {
			t.Errorf("run r%d is %s in the store, want running", i, got.Status)
		}
	}
}
