package agent

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"strings"
	"testing"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/schedule"
)

// errSQLiteFull is the error SQLite gives a write when the disk is full.
type errSQLiteFull struct{}

func (errSQLiteFull) Error() string { return "database or disk is full (13)" }
func (errSQLiteFull) Code() int     { return sqlite3.SQLITE_FULL }

// fillDisk makes every write of m's store fail as on a full disk, until
// the returned function frees it.
func fillDisk(m *Main) (free func()) {
	var err error = errSQLiteFull{}
	m.store.fault.Store(&err)
	return func() { m.store.fault.Store(nil) }
}

// A run that ends while the disk is full keeps its outcome, and its
// output, in memory; once space returns it is recorded as it ended, not
// left running (and called abandoned at the next start).
func TestRunEndingOnAFullDiskKeepsItsOutcome(t *testing.T) {
	m := newTestMain(t)
	ctx := context.Background()
	job := flowJob("work", muster.Step{Name: "main", Shell: "echo side effect done"})
	free := fillDisk(m)
	defer free()
	// Recorded before its process starts: a full disk means no run.
	var ar *activeRun
	err := m.store.update(ctx, func(tx *sql.Tx) error {
		var err error
		ar, err = m.exec.begin(ctx, tx, job, muster.Run{Job: "work", Target: "web1", RunID: "r1", Trigger: "operator", StartedAt: m.now()})
		return err
	})
	if !isFull(err) || ar != nil {
		t.Fatalf("a run begun on a full disk: %v %v, want refused for a full disk", ar, err)
	}
	free()
	startRun(t, m, job, "r1")
	fillDisk(m)
	m.exec.wait() // the step ran; its end could not be written
	if got := localRun(t, m, "r1"); got.Status != muster.RunRunning {
		t.Fatalf("the spool holds the run %s, want still running (its end was refused)", got.Status)
	}
	if runs, full := m.backlog.waiting(); runs != 1 || !full || !m.diskFull() {
		t.Fatalf("backlog %d run(s), full %v, disk full %v: want the run waiting, the disk said full", runs, full, m.diskFull())
	}
	if hb := m.heartbeat(ctx); !hb.DiskFull || hb.SpoolDepth < 1 {
		t.Errorf("heartbeat %+v: want disk_full and the waiting run in the spool depth", hb)
	}
	if err := m.flushBacklog(ctx); !isFull(err) {
		t.Fatalf("flush on a full disk: %v", err)
	}
	free()
	if err := m.flushBacklog(ctx); err != nil {
		t.Fatalf("flush once space is back: %v", err)
	}
	got := localRun(t, m, "r1")
	if got.Status != muster.RunSucceeded || got.Steps[0].Output != "side effect done\n" {
		t.Errorf("recorded %s with output %q, want succeeded with its output", got.Status, got.Steps[0].Output)
	}
	if m.diskFull() {
		t.Error("the disk is still said full once everything is recorded")
	}
	if hb := m.heartbeat(ctx); hb.DiskFull {
		t.Errorf("heartbeat %+v still says the disk is full", hb)
	}
}

// States of a run that came while an earlier one waited in the backlog
// wait behind it: they are recorded in order, the latest last.
func TestBacklogKeepsARunsStatesInOrder(t *testing.T) {
	m := newTestMain(t)
	ctx := context.Background()
	r := spoolRun("r1", 1)
	if err := m.record(ctx, r, nil); err != nil {
		t.Fatal(err)
	}
	free := fillDisk(m)
	if err := m.record(ctx, r, []outputChunk{{0, 0, "one "}}); !isFull(err) {
		t.Fatalf("a record on a full disk: %v", err)
	}
	free()
	// The store takes writes again, but this state waits for the earlier.
	r.Status = muster.RunSucceeded
	if err := m.record(ctx, r, []outputChunk{{0, 4, "two"}}); err != nil {
		t.Fatal(err)
	}
	if got := localRun(t, m, "r1"); got.Status != muster.RunRunning || got.Steps[0].Output != "" {
		t.Fatalf("the spool holds %s %q before the backlog is written", got.Status, got.Steps[0].Output)
	}
	if err := m.flushBacklog(ctx); err != nil {
		t.Fatal(err)
	}
	if got := localRun(t, m, "r1"); got.Status != muster.RunSucceeded || got.Steps[0].Output != "one two" {
		t.Errorf("the spool holds %s %q, want succeeded \"one two\"", got.Status, got.Steps[0].Output)
	}
}

// Fires due while the disk is full do not start; once space returns they
// are recorded as one skipped run per schedule, saying why, and the
// schedule's mark moves past them.
func TestFiresOnAFullDiskAreRecordedSkipped(t *testing.T) {
	m := newTestMain(t)
	ctx := context.Background()
	job := flowJob("tick", muster.Step{Name: "main", Shell: "true"})
	job.Schedules = []muster.Schedule{{Name: "every-second", Cron: "* * * * * *"}}
	plan, err := schedule.Compile(job.Schedules[0], time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	e := &entry{job: job, sched: job.Schedules[0], plan: plan}
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	free := fillDisk(m)
	for i := range 46 {
		m.sched.fireAll(ctx, []firing{{e: e, at: t0.Add(time.Duration(i) * time.Second)}})
	}
	if runs, _ := m.store.localRuns(ctx); len(runs) != 0 {
		t.Fatalf("%d runs recorded on a full disk", len(runs))
	}
	m.sched.recordUnrecorded(ctx)
	if m.sched.failures != 1 || len(m.sched.unrecorded) != 1 {
		t.Fatalf("a record on a full disk: %d failures, %d schedules waiting", m.sched.failures, len(m.sched.unrecorded))
	}
	free()
	m.sched.recordUnrecorded(ctx)
	runs, err := m.store.localRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 {
		t.Fatalf("%d runs, want one skipped run standing for the 46 fires", len(runs))
	}
	r := runs[0].Run
	if want := muster.ScheduledRunID("uid-web1", "tick", "every-second", t0); r.RunID != want {
		t.Errorf("run id %s, want the first fire's %s", r.RunID, want)
	}
	if r.Status != muster.RunSkipped || !strings.Contains(r.Message, "46 scheduled fire(s) from 2026-12-05T12:00:00Z to 2026-12-05T12:00:45Z could not start") ||
		!strings.Contains(r.Message, "data directory is full") {
		t.Errorf("run %s %q", r.Status, r.Message)
	}
	var last int64
	if err := m.store.read.QueryRowContext(ctx, `SELECT last_fire FROM schedule_state WHERE job = 'tick'`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	if got := time.Unix(0, last).UTC(); !got.Equal(t0.Add(45 * time.Second)) {
		t.Errorf("the schedule's mark is at %s, want the last refused fire", got)
	}
	if len(m.sched.unrecorded) != 0 || m.sched.failures != 0 {
		t.Error("the refused fires are still waiting after they were recorded")
	}
}

// A STOP is carried out while the disk is full, even behind an instruction
// that waits for space to be committed: killing a step needs no disk, and
// the step may be what fills it. It is committed, in order, once space
// returns, as is the START before it, which then runs once. A STOP of a
// job whose START waits before it waits with it: carried out ahead, it
// would stop the run the START skips instead of the one it launches.
func TestStopBehindAnInstructionAFullDiskHoldsIsCarriedOut(t *testing.T) {
	tm := startTestMaster(t)
	log := &lockedBuffer{}
	m := tm.enlist(t, "web1", func(c *Config) {
		c.PollWait = time.Second
		c.Logger = slog.New(slog.NewTextHandler(log, nil))
	})
	runTarget(t, m)
	tm.apply(t, shellJob("hang", []string{"web1"}, "sleep 600"), shellJob("hello", []string{"web1"}, "echo hello"),
		shellJob("later", []string{"web1"}, "sleep 600"))
	tm.settled(t)
	hang := tm.start(t, "hang")[0]
	waitFor(t, time.Minute, "hang to run", func() bool { return m.exec.isRunning("hang") })

	free := fillDisk(m)
	defer free()
	hello := tm.start(t, "hello")[0] // cannot be committed: the STOPs wait behind it
	later := tm.start(t, "later")[0]
	ctx := context.Background()
	for _, job := range []string{"hang", "later"} {
		if _, err := tm.api.StopJob(ctx, job, []string{"web1"}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, time.Minute, "hang stopped on the full disk", func() bool {
		r, ok := backlogged(m, hang)
		return ok && r.Status == muster.RunCanceled
	})
	if !m.diskFull() {
		t.Error("the target does not say its disk is full")
	}

	free()
	runs := tm.finished(t, hang, hello, later)
	// The log says what held the instructions, and not, once they are
	// applied, that the master was unreachable: it answered throughout.
	text := string(bytes.Join(log.lines(), []byte("\n")))
	if !strings.Contains(text, "data directory is full") || !strings.Contains(text, "carrying out a STOP ahead") {
		t.Errorf("the log does not say the disk held the instructions, and the STOP was carried out:\n%s", text)
	}
	if strings.Contains(text, "the master is reachable again") {
		t.Errorf("the log says the master is reachable again, when it answered every poll:\n%s", text)
	}
	for i, want := range []muster.RunStatus{muster.RunCanceled, muster.RunSucceeded, muster.RunCanceled} {
		if runs[i].Status != want {
			t.Errorf("run %s of %s: %s, want %s", runs[i].RunID, runs[i].Job, runs[i].Status, want)
		}
	}
	for _, job := range []string{"hang", "hello", "later"} {
		history, err := tm.api.History(ctx, job, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(history) != 1 {
			t.Errorf("%s has %d runs on the master, want 1: %+v", job, len(history), history)
		}
	}
}

// A START that expires while a full disk keeps the target from recording
// it is recorded skipped saying so, not that it never reached the target:
// whoever reads the run looks at the disk, not at the network.
func TestStartExpiredWhileTheDiskWasFullSaysSo(t *testing.T) {
	m := newTestMain(t)
	ctx := context.Background()
	now := time.Now()
	job := flowJob("work", muster.Step{Name: "main", Shell: "true"})
	if _, err := m.apply(ctx, insert(t, 1, job), now); err != nil {
		t.Fatal(err)
	}
	free := fillDisk(m)
	defer free()
	if _, err := m.apply(ctx, start(t, 2, "work", "r1", now.Add(time.Minute)), now); !isFull(err) {
		t.Fatalf("a START on a full disk: %v, want refused for a full disk", err)
	}
	free()
	if ar, err := m.apply(ctx, start(t, 2, "work", "r1", now.Add(time.Minute)), now.Add(time.Hour)); err != nil || ar != nil {
		t.Fatalf("the START again, expired: %v %v, want a skipped run", ar, err)
	}
	got := localRun(t, m, "r1")
	const want = "while this target could not record it: the data directory is full"
	if got.Status != muster.RunSkipped || !strings.Contains(got.Message, want) {
		t.Errorf("run %s %q, want skipped saying %q", got.Status, got.Message, want)
	}
	// One the target never held says, as before, that it came too late.
	if _, err := m.apply(ctx, start(t, 3, "work", "r2", now.Add(time.Minute)), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := localRun(t, m, "r2"); got.Status != muster.RunSkipped || !strings.Contains(got.Message, "before it reached the target") {
		t.Errorf("run %s %q, want skipped, expired before it reached the target", got.Status, got.Message)
	}
}
