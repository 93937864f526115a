package agent

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/musterhq/muster"
)

// A run a previous process left running is recorded abandoned, saying
// whether it was under way or, as it last recorded, still waited in the
// queue (max_concurrent_runs).
func TestRecoverSaysWhetherTheRunHadStarted(t *testing.T) {
	m := newTestMain(t)
	ctx := context.Background()
	began := muster.StepAttempt{Name: "main", Attempt: 1, Status: muster.AttemptRunning, StartedAt: m.now()}
	for _, r := range []muster.Run{
		{Job: "a", Target: "web1", RunID: "in-step", Status: muster.RunRunning, StartedAt: m.now(), Steps: []muster.StepAttempt{began}},
		{Job: "b", Target: "web1", RunID: "queued", Status: muster.RunRunning, StartedAt: m.now(), Steps: []muster.StepAttempt{},
			Message: "queued: max_concurrent_runs (1) runs are running"},
	} {
		if err := m.store.update(ctx, func(tx *sql.Tx) error { _, err := insertRun(ctx, tx, r); return err }); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.exec.recover(ctx); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{
		"in-step": "the target stopped while the run was in progress",
		"queued":  "the target stopped while the run waited in the queue (max_concurrent_runs)",
	} {
		if r := localRun(t, m, id); r.Status != muster.RunAbandoned || r.Message != want {
			t.Errorf("run %s: %s %q, want %s %q", id, r.Status, r.Message, muster.RunAbandoned, want)
		}
	}
}

// A run that a previous process left running, and that the clock now
// shows as started later than now (the clock was set back across the
// restart), is recorded abandoned with a duration of 0, not a negative
// one, which the master refuses: its end would never reach the master,
// and the run would show running there for ever.
func TestRecoverAfterTheClockWentBack(t *testing.T) {
	m := newTestMain(t)
	ctx := context.Background()
	later := m.now().Add(time.Hour)
	r := muster.Run{Job: "a", Target: "web1", RunID: "ahead", Status: muster.RunRunning, StartedAt: later,
		Steps: []muster.StepAttempt{{Name: "main", Attempt: 1, Status: muster.AttemptRunning, StartedAt: later}}}
	if err := m.store.update(ctx, func(tx *sql.Tx) error { _, err := insertRun(ctx, tx, r); return err }); err != nil {
		t.Fatal(err)
	}
	if err := m.exec.recover(ctx); err != nil {
		t.Fatal(err)
	}
	got := localRun(t, m, "ahead")
	if got.Status != muster.RunAbandoned || got.DurationMS != 0 || got.FinishedAt == nil || got.FinishedAt.Before(got.StartedAt) {
		t.Errorf("run: %s, finished %v after %d ms (started %s); want abandoned, after 0 ms, finished no earlier than it started",
			got.Status, got.FinishedAt, got.DurationMS, got.StartedAt)
	}
}
