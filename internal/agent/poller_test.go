package agent

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
)

// insert is an INSERT of job at version v, as the master sends it.
func insert(t *testing.T, seq int64, j muster.Job) agentproto.Instruction {
	t.Helper()
	p, err := json.Marshal(agentproto.JobFromDomain(j))
	if err != nil {
		t.Fatal(err)
	}
	return agentproto.Instruction{Seq: seq, Operation: muster.OpInsert, Job: j.Name, Payload: p}
}

// start is a START of job for run id, expiring at expires.
func start(t *testing.T, seq int64, job, runID string, expires time.Time) agentproto.Instruction {
	t.Helper()
	p, err := json.Marshal(agentproto.StartPayload{RunID: runID, ExpiresAt: expires})
	if err != nil {
		t.Fatal(err)
	}
	return agentproto.Instruction{Seq: seq, Operation: muster.OpStart, Job: job, Payload: p}
}

// acks returns the acks the store owes the master, as "seq ok|error".
func acks(t *testing.T, m *Main) []string {
	t.Helper()
	pending, err := m.store.pendingAcks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range pending {
		if a.OK {
			out = append(out, "ok")
		} else {
			out = append(out, a.Error)
		}
	}
	return out
}

// Each instruction is applied with its cursor and its ack in one
// transaction; one that cannot be applied is acknowledged with its error,
// changes nothing, raises instruction_failed, and does not hold up the
// next.
func TestApplyAcknowledgesEachInstruction(t *testing.T) {
	m := newTestMain(t)
	ctx := context.Background()
	now := time.Now()
	v1 := flowJob("report", muster.Step{Name: "main", Shell: "echo v1"})
	v1.Version = 1
	v2 := v1
	v2.Version, v2.Steps = 2, []muster.Step{{Name: "main", Shell: "echo v2", RunAs: "nobody-here"}}
	unknown := insert(t, 3, v1)
	unknown.Payload = json.RawMessage(strings.Replace(string(unknown.Payload), `"name":"report"`, `"name":"report","priority":9`, 1))
	for _, in := range []agentproto.Instruction{insert(t, 1, v1), insert(t, 2, v2), unknown, start(t, 4, "report", "r1", now.Add(-time.Minute))} {
		if _, err := m.apply(ctx, in, now); err != nil {
			t.Fatalf("apply %d: %v", in.Seq, err)
		}
	}
	got := acks(t, m)
	if len(got) != 4 || got[0] != "ok" || !strings.Contains(got[1], "run_as \"nobody-here\"") ||
		!strings.Contains(got[2], `priority: no such field`) || got[3] != "ok" {
		t.Fatalf("acks %q: want ok, the proxy refused, the unknown field refused, ok", got)
	}
	if m.enl.Cursor != 4 {
		t.Errorf("cursor %d, want 4: a failed instruction does not hold up the rest", m.enl.Cursor)
	}
	held, ok, err := m.store.job(ctx, m.store.read, "report")
	if err != nil || !ok || held.Version != 1 || held.Steps[0].Shell != "echo v1" {
		t.Errorf("held %+v %v: the version before the failed INSERTs stays in force", held, err)
	}
	if n, err := m.PendingEvents(ctx); err != nil || n != 2 {
		t.Errorf("%d events waiting (%v), want an instruction_failed for each failure", n, err)
	}
	// The START had expired on the way: a skipped run, not an error.
	if r := localRun(t, m, "r1"); r.Status != muster.RunSkipped || !strings.Contains(r.Message, "expired") {
		t.Errorf("the expired START: %s %q", r.Status, r.Message)
	}
	// A replayed reply changes nothing: already applied.
	if _, err := m.apply(ctx, insert(t, 1, v1), now); err != nil {
		t.Fatal(err)
	}
	if got := acks(t, m); len(got) != 4 {
		t.Errorf("a replayed instruction was acknowledged again: %q", got)
	}
}

// An instruction whose transaction fails (the disk is full) is neither
// applied nor acknowledged, and the cursor stays: it is applied when the
// master sends it again.
func TestApplyThatCannotCommitIsRetried(t *testing.T) {
	m := newTestMain(t)
	ctx := context.Background()
	j := flowJob("report", muster.Step{Name: "main", Shell: "true"})
	free := fillDisk(m)
	if _, err := m.apply(ctx, insert(t, 1, j), time.Now()); !isFull(err) {
		t.Fatalf("apply on a full disk: %v", err)
	}
	free()
	if m.enl.Cursor != 0 || len(acks(t, m)) != 0 {
		t.Fatalf("cursor %d, acks %q after a failed apply", m.enl.Cursor, acks(t, m))
	}
	if _, err := m.apply(ctx, insert(t, 1, j), time.Now()); err != nil {
		t.Fatal(err)
	}
	if m.enl.Cursor != 1 || len(acks(t, m)) != 1 {
		t.Errorf("cursor %d, acks %q after the retry", m.enl.Cursor, acks(t, m))
	}
}

// A START of a job that is running is recorded as a skipped run; the
// instruction succeeds.
func TestStartOfARunningJobIsSkipped(t *testing.T) {
	m := newTestMain(t)
	ctx := context.Background()
	j := flowJob("slow", muster.Step{Name: "main", Shell: "sleep 30"})
	if _, err := m.apply(ctx, insert(t, 1, j), time.Now()); err != nil {
		t.Fatal(err)
	}
	// apply launches the run it recorded.
	first, err := m.apply(ctx, start(t, 2, "slow", "r1", time.Now().Add(time.Minute)), time.Now())
	if err != nil || first == nil {
		t.Fatalf("first START: %v %v", first, err)
	}
	if second, err := m.apply(ctx, start(t, 3, "slow", "r2", time.Now().Add(time.Minute)), time.Now()); err != nil || second != nil {
		t.Fatalf("second START: %v %v, want recorded, not launched", second, err)
	}
	if r := localRun(t, m, "r2"); r.Status != muster.RunSkipped || !strings.Contains(r.Message, "already running (run r1)") {
		t.Errorf("second run %s %q", r.Status, r.Message)
	}
	if got := acks(t, m); len(got) != 3 || got[2] != "ok" {
		t.Errorf("acks %q: a START of a running job is no instruction error", got)
	}
	m.exec.stopAll("the test is over")
	m.exec.wait()
	if r := localRun(t, m, "r1"); r.Status != muster.RunCanceled {
		t.Errorf("the first run after a stop: %s", r.Status)
	}
}

// A START the target has already recorded, sent again under a new
// sequence number (a master restored from a backup posts it anew), is
// acknowledged and changes nothing: its run is not recorded again, not
// skipped as a second run of its job, and not refused because its job has
// changed since.
func TestReplayedStartChangesNothing(t *testing.T) {
	m := newTestMain(t)
	ctx := context.Background()
	j := flowJob("slow", muster.Step{Name: "main", Shell: "sleep 30"})
	if _, err := m.apply(ctx, insert(t, 1, j), time.Now()); err != nil {
		t.Fatal(err)
	}
	expired := start(t, 2, "slow", "r0", time.Now().Add(-time.Minute))
	if _, err := m.apply(ctx, expired, time.Now()); err != nil {
		t.Fatal(err)
	}
	if first, err := m.apply(ctx, start(t, 3, "slow", "r1", time.Now().Add(time.Minute)), time.Now()); err != nil || first == nil {
		t.Fatalf("first START: %v %v", first, err)
	}
	// r1 is running: its replay is not a second run of the job.
	again, err := m.apply(ctx, start(t, 4, "slow", "r1", time.Now().Add(time.Minute)), time.Now())
	if err != nil || again != nil {
		t.Fatalf("replayed START of the running run: %v %v, want nothing launched", again, err)
	}
	if r := localRun(t, m, "r1"); r.Status != muster.RunRunning || r.Message != "" {
		t.Errorf("the running run after its replay: %s %q, want running as it was", r.Status, r.Message)
	}
	// r0 expired on its way: replayed unexpired, it is still not run.
	if again, err := m.apply(ctx, start(t, 5, "slow", "r0", time.Now().Add(time.Minute)), time.Now()); err != nil || again != nil {
		t.Fatalf("replayed START of the skipped run: %v %v, want nothing launched", again, err)
	}
	if r := localRun(t, m, "r0"); r.Status != muster.RunSkipped || !strings.Contains(r.Message, "expired") {
		t.Errorf("the skipped run after its replay: %s %q, want skipped as it was", r.Status, r.Message)
	}
	m.exec.stopAll("the test is over")
	m.exec.wait()
	// The job deleted since: the replay is still no error; a START of a
	// new run of it is one.
	del := agentproto.Instruction{Seq: 6, Operation: muster.OpDelete, Job: "slow"}
	if _, err := m.apply(ctx, del, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, in := range []agentproto.Instruction{start(t, 7, "slow", "r1", time.Now().Add(time.Minute)), start(t, 8, "slow", "r2", time.Now().Add(time.Minute))} {
		if _, err := m.apply(ctx, in, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	got := acks(t, m)
	want := []string{"ok", "ok", "ok", "ok", "ok", "ok", "ok"}
	if len(got) != 8 || !slices.Equal(got[:7], want) || !strings.Contains(got[7], "not on this target") {
		t.Errorf("acks %q: want seven ok, then the START of a new run of a deleted job refused", got)
	}
	if r := localRun(t, m, "r1"); r.Status != muster.RunCanceled {
		t.Errorf("r1 after the stop and its replay: %s, want canceled", r.Status)
	}
}

// A failure injected by the test hook fails the instruction like any
// other, leaving nothing half-applied.
func TestInjectedInstructionFailure(t *testing.T) {
	m := newTestMain(t, func(c *Config) {
		c.FailInstruction = func(in agentproto.Instruction) error {
			if in.Seq == 2 {
				return errors.New("injected")
			}
			return nil
		}
	})
	ctx := context.Background()
	j := flowJob("a", muster.Step{Name: "main", Shell: "true"})
	for seq := int64(1); seq <= 3; seq++ {
		j.Version = seq
		if _, err := m.apply(ctx, insert(t, seq, j), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if got := acks(t, m); len(got) != 3 || got[1] != "injected" {
		t.Errorf("acks %q", got)
	}
	if held, _, _ := m.store.job(ctx, m.store.read, "a"); held.Version != 3 {
		t.Errorf("held version %d, want 3", held.Version)
	}
}
