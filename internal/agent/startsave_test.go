package agent

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/testdb"
)

// revisionOf is the revision of a run in the spool: how many times its
// state was written.
func revisionOf(t testing.TB, m *Main, runID string) int64 {
	t.Helper()
	var rev int64
	if err := m.store.read.QueryRowContext(context.Background(), `SELECT revision FROM runs WHERE run_id = ?`, runID).Scan(&rev); err != nil {
		t.Fatal(err)
	}
	return rev
}

// A step that ends before its start would be saved is written once, ended:
// the run is recorded (revision 1) and then its outcome (revision 2),
// with no write of the step's start between them, whatever kind of step.
func TestStepEndingBeforeTheDelayIsSavedOnce(t *testing.T) {
	lite := filepath.Join(t.TempDir(), "lite.db")
	m := newTestMain(t, func(c *Config) {
		c.Settings.Connections = map[string]Connection{"lite": {Driver: "sqlite", DSN: lite}}
	})
	m.exec.startSaveDelay = time.Hour
	for _, job := range []muster.Job{
		flowJob("shell", muster.Step{Name: "one", Shell: "true"}),
		flowJob("sql", muster.Step{Name: "one", SQL: "SELECT 1", Connection: "lite"}),
	} {
		run := runJob(t, m, job)
		if run.Status != muster.RunSucceeded || len(run.Steps) != 1 {
			t.Fatalf("%s: run %s with %d attempts, want succeeded with 1 (%q)", job.Name, run.Status, len(run.Steps), run.Message)
		}
		if rev := revisionOf(t, m, run.RunID); rev != 2 {
			t.Errorf("%s: the run was written %d times, want 2: recorded, then ended", job.Name, rev)
		}
	}
}

// startSavedWhileRunning runs job, whose first step runs until release
// lets it end, and checks that the step's start was saved while it ran,
// and its end after.
func startSavedWhileRunning(t *testing.T, m *Main, job muster.Job, release func()) {
	t.Helper()
	startRun(t, m, job, "run-wait")
	waitFor(t, time.Minute, "the step's start saved while it runs", func() bool {
		run := localRun(t, m, "run-wait")
		return len(run.Steps) == 1 && run.Steps[0].Status == muster.AttemptRunning
	})
	if rev := revisionOf(t, m, "run-wait"); rev != 2 {
		t.Errorf("the running run was written %d times, want 2: recorded, then its step's start", rev)
	}
	release()
	m.exec.wait()
	run := localRun(t, m, "run-wait")
	if run.Status != muster.RunSucceeded {
		t.Fatalf("run %s (%q), want succeeded", run.Status, run.Message)
	}
	if rev := revisionOf(t, m, "run-wait"); rev != 3 {
		t.Errorf("the run was written %d times, want 3: recorded, its step's start, its end", rev)
	}
}

// A step still running after the delay has its start saved, and so
// uploaded, while it runs: the master can show it running.
func TestStepStillRunningHasItsStartSaved(t *testing.T) {
	m := newTestMain(t)
	m.exec.startSaveDelay = 0
	gate := filepath.Join(t.TempDir(), "go")
	job := flowJob("wait", muster.Step{Name: "one", Shell: `while [ ! -e "` + gate + `" ]; do sleep 0.01; done`})
	startSavedWhileRunning(t, m, job, func() {
		if err := os.WriteFile(gate, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	})
}

// So does a SQL statement still running after the delay.
func TestSQLStepStillRunningHasItsStartSaved(t *testing.T) {
	dsn := testdb.Postgres(t)
	m := newTestMain(t, func(c *Config) {
		c.Settings.Connections = map[string]Connection{"pg": {Driver: "postgres", DSN: dsn}}
	})
	m.exec.startSaveDelay = 0
	const lock = 7_345_001 // an advisory lock the test holds until the step may end
	held, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	ctx := context.Background()
	conn, err := held.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, lock); err != nil {
		t.Fatal(err)
	}
	job := flowJob("wait", muster.Step{Name: "one", SQL: "SELECT pg_advisory_lock(7345001), pg_advisory_unlock(7345001)", Connection: "pg"})
	startSavedWhileRunning(t, m, job, func() {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, lock); err != nil {
			t.Fatal(err)
		}
	})
}

// A step stopped before its start was saved, that takes its kill grace
// to end, has its start saved as it is stopped: the run does not show
// it as not begun for as long as the grace lasts, nor lose it to a crash
// meanwhile.
func TestStepStoppedBeforeTheDelayHasItsStartSaved(t *testing.T) {
	m := newTestMain(t, func(c *Config) { c.KillGrace = time.Hour })
	m.exec.startSaveDelay = time.Hour
	dir := t.TempDir()
	ready, gate := filepath.Join(dir, "ready"), filepath.Join(dir, "go")
	job := flowJob("stubborn", muster.Step{Name: "one",
		Shell: `trap '' TERM; touch "` + ready + `"; while [ ! -e "` + gate + `" ]; do sleep 0.01; done`})
	startRun(t, m, job, "run-stubborn")
	waitFor(t, time.Minute, "the step to run", func() bool {
		_, err := os.Stat(ready)
		return err == nil
	})
	if rev := revisionOf(t, m, "run-stubborn"); rev != 1 {
		t.Fatalf("the run was written %d times before the stop, want 1: recorded", rev)
	}
	if err := m.exec.stop("stubborn", "stopped by the operator"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the step's start saved while it takes its grace", func() bool {
		run := localRun(t, m, "run-stubborn")
		return len(run.Steps) == 1 && run.Steps[0].Status == muster.AttemptRunning
	})
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	m.exec.wait()
	if run := localRun(t, m, "run-stubborn"); run.Status != muster.RunCanceled || len(run.Steps) != 1 {
		t.Errorf("run %s with %d attempts (%q), want canceled with 1", run.Status, len(run.Steps), run.Message)
	}
}
