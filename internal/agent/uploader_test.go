package agent

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
)

// What the master holds of a run's output is what the target kept, byte
// for byte, uploaded as the steps wrote it: within output_limit per
// attempt and run_output_limit per run, each cut said.
func TestOutputReachesTheMasterAsKept(t *testing.T) {
	tm := startTestMaster(t)
	m := tm.enlist(t, "web1", func(c *Config) {
		c.Settings.OutputLimit = 64 << 10
		c.Settings.RunOutputLimit = 160 << 10
	})
	runTarget(t, m)
	print := fmt.Sprintf("yes 0123456789abcdef | head -c %d", 100<<10)
	tm.apply(t, shellJob("loud", []string{"web1"}, print, print, print, print))
	waitFor(t, time.Minute, "the job on web1", func() bool { jobs, _ := m.Jobs(context.Background()); return len(jobs) == 1 })
	ids := tm.start(t, "loud")
	r := tm.finished(t, ids...)[0]
	local := localRun(t, m, ids[0])
	if len(r.Steps) != 4 || len(local.Steps) != 4 {
		t.Fatalf("%d attempts on the master, %d on the target; want 4", len(r.Steps), len(local.Steps))
	}
	var total int
	for i, a := range r.Steps {
		if a.Output != local.Steps[i].Output {
			t.Errorf("step %d: the master holds %d bytes, the target kept %d", i+1, len(a.Output), len(local.Steps[i].Output))
		}
		total += len(a.Output)
	}
	for i, want := range []string{"(output_limit 64KiB)", "(output_limit 64KiB)", "(run_output_limit 160KiB, of which the run had", "run_output_limit 160KiB, of which the run had"} {
		if !strings.Contains(r.Steps[i].Output, want) {
			t.Errorf("step %d does not say %q: %.80q…", i+1, want, r.Steps[i].Output)
		}
	}
	if total > 160<<10+4<<10 {
		t.Errorf("the run kept %d bytes, over run_output_limit (160 KiB, and the lines about the cuts)", total)
	}
}

// uploadTarget is a target enlisted in tm and holding the job "big", its
// daemon stopped: the test drives its uploads by hand.
func uploadTarget(t *testing.T, tm *testMaster, adjust ...func(*Config)) *Main {
	t.Helper()
	m := tm.enlist(t, "web1", adjust...)
	stop := runTarget(t, m)
	tm.apply(t, shellJob("big", []string{"web1"}, "true", "true", "true"))
	tm.settled(t)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	return m
}

// finishedRun is a run of "big" that succeeded, with n attempts.
func finishedRun(id string, n int) muster.Run {
	r := spoolRun(id, n)
	r.Job, r.Status, r.StartedAt = "big", muster.RunSucceeded, time.Now().UTC().Add(-time.Minute)
	end := r.StartedAt.Add(time.Second)
	r.FinishedAt = &end
	for i := range r.Steps {
		r.Steps[i].Status, r.Steps[i].StartedAt = muster.AttemptSucceeded, r.StartedAt
	}
	return r
}

// storeRawChunk stores a chunk of output as it is, uncut: as a spool
// written before stored chunks were cut at maxStoredChunk holds them.
func storeRawChunk(t *testing.T, m *Main, runID string, c outputChunk) {
	t.Helper()
	err := m.store.update(context.Background(), func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO output (run_id, attempt, offset, data) VALUES (?, ?, ?, ?)`, runID, c.attempt, c.offset, c.data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// localEvents lists the events the target holds, as "name job run_id:
// message".
func localEvents(t *testing.T, m *Main) []string {
	t.Helper()
	rows, err := m.store.read.Query(`SELECT name, job, run_id, message FROM events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name, job, run, msg string
		if err := rows.Scan(&name, &job, &run, &msg); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %s %s: %s", name, job, run, msg))
	}
	return out
}

// An upload the master refuses as too large (413) is sent again in
// halves until the master takes it: here a run's report of 12 MiB, over
// the 8 MiB the master takes, from a target that (wrongly) thought it
// fit. Nothing is lost and nothing is raised.
func TestUploadRefusedAsTooLargeIsHalved(t *testing.T) {
	tm := startTestMaster(t)
	m := uploadTarget(t, tm)
	m.uploadLimits = uploadLimits{runs: uploadBatch, body: 4 * agentproto.MaxRunsBody, report: 4 * agentproto.MaxRunReport}
	ctx := context.Background()
	r := finishedRun("halved", 3)
	var chunks []outputChunk
	for a := range 3 {
		for i := range 4 {
			chunks = append(chunks, outputChunk{a, int64(i) << 20, strings.Repeat(string(rune('a'+a)), 1<<20)})
		}
	}
	if err := m.store.saveRun(ctx, r, chunks); err != nil {
		t.Fatal(err)
	}
	if err := m.uploadOnce(ctx); err != nil {
		t.Fatalf("upload: %v", err)
	}
	got := tm.finished(t, "halved")[0]
	if got.Status != muster.RunSucceeded || len(got.Steps) != 3 {
		t.Fatalf("the master holds %s with %d attempts, want succeeded with 3", got.Status, len(got.Steps))
	}
	for a, s := range got.Steps {
		if want := strings.Repeat(string(rune('a'+a)), 4<<20); s.Output != want {
			t.Errorf("attempt %d: the master holds %d bytes, want the 4 MiB sent", a+1, len(s.Output))
		}
	}
	if n := m.store.spoolDepth(ctx); n != 0 {
		t.Errorf("spool depth %d after the upload, want 0", n)
	}
	if evs := localEvents(t, m); len(evs) != 0 {
		t.Errorf("events raised: %q", evs)
	}
}

// A run whose report the master refuses as too large although it holds
// one chunk of output, which no halving makes smaller, does not hold up
// the spool for ever: the chunk is left out, an agent_error says so, and
// the run's outcome reaches the master, whose copy of the output says
// what never arrived. A report refused with no output at all is kept on
// the target, marked refused, with an agent_error.
func TestUploadRefusedChunkIsLeftOut(t *testing.T) {
	tm := startTestMaster(t)
	m := uploadTarget(t, tm)
	ctx := context.Background()
	// 2 MiB of '<', which JSON sends as \u003c: 12 MiB as sent, over
	// the 8 MiB a report may take.
	big := strings.Repeat("<", 2<<20)
	r := finishedRun("refused-chunk", 1)
	if err := m.store.saveRun(ctx, r, nil); err != nil {
		t.Fatal(err)
	}
	storeRawChunk(t, m, r.RunID, outputChunk{0, 0, big})
	storeRawChunk(t, m, r.RunID, outputChunk{0, int64(len(big)), "done\n"})
	// A run whose message alone is over the limit.
	huge := finishedRun("refused-run", 1)
	huge.Message = strings.Repeat("<", 2<<20)
	huge.StartedAt = r.StartedAt.Add(time.Second) // sent after the other
	if err := m.store.saveRun(ctx, huge, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.uploadOnce(ctx); err != nil {
		t.Fatalf("upload: %v", err)
	}
	got := tm.finished(t, r.RunID)[0]
	wantOut := fmt.Sprintf("\n[muster: %d bytes of output never reached the master]\ndone\n", len(big))
	if got.Status != muster.RunSucceeded || len(got.Steps) != 1 || got.Steps[0].Output != wantOut {
		t.Errorf("the master holds %s, output %.200q; want succeeded, output %q", got.Status, got.Steps[0].Output, wantOut)
	}
	if n := m.store.spoolDepth(ctx); n != 0 {
		t.Errorf("spool depth %d after the upload, want 0", n)
	}
	var rejected string
	if err := m.store.read.QueryRow(`SELECT rejected FROM runs WHERE run_id = ?`, huge.RunID).Scan(&rejected); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rejected, "refused the run's report as too large") {
		t.Errorf("the refused run is marked %q", rejected)
	}
	evs := localEvents(t, m)
	if len(evs) != 2 {
		t.Fatalf("events %q, want one agent_error for each run", evs)
	}
	wants := []string{
		fmt.Sprintf("agent_error big refused-chunk: run refused-chunk: the master refused %d bytes of output of attempt 1, from byte 0, as too large", len(big)),
		"agent_error big refused-run: run refused-run: the master refused the run's report as too large",
	}
	for i, want := range wants {
		if !strings.HasPrefix(evs[i], want) {
			t.Errorf("event %d: %q, want it to begin %q", i+1, evs[i], want)
		}
	}
}

// A reply to an upload that is over what a master may send is no refusal
// of the upload as too large: the master took it, or a proxy in front of
// it sent what is not its reply. Nothing is halved, left out or marked
// refused; the runs stay in the spool and are sent again.
func TestUploadReplyOverTheLimitRefusesNothing(t *testing.T) {
	tm := startTestMaster(t)
	m := uploadTarget(t, tm)
	ctx := context.Background()
	r := finishedRun("long-reply", 1)
	if err := m.store.saveRun(ctx, r, []outputChunk{{0, 0, "all of it\n"}}); err != nil {
		t.Fatal(err)
	}
	defer func(n int64) { replyLimit = n }(replyLimit)
	replyLimit = 8 // less than any reply of the master's
	err := m.uploadOnce(ctx)
	if code := muster.ErrorCode(err); code != muster.ETOOLARGE {
		t.Fatalf("an upload whose reply is over the limit: %v (code %s), want %s", err, code, muster.ETOOLARGE)
	}
	if evs := localEvents(t, m); len(evs) != 0 {
		t.Errorf("events raised: %q", evs)
	}
	var rejected string
	if err := m.store.read.QueryRow(`SELECT rejected FROM runs WHERE run_id = ?`, r.RunID).Scan(&rejected); err != nil {
		t.Fatal(err)
	}
	if rejected != "" {
		t.Errorf("the run is marked refused: %q", rejected)
	}
	if n := m.store.spoolDepth(ctx); n != 1 {
		t.Errorf("spool depth %d, want the run kept to be sent again", n)
	}
	replyLimit = agentproto.MaxReplyBytes
	if err := m.uploadOnce(ctx); err != nil {
		t.Fatalf("upload: %v", err)
	}
	got := tm.finished(t, r.RunID)[0]
	if len(got.Steps) != 1 || got.Steps[0].Output != "all of it\n" {
		t.Fatalf("the master holds %d attempts, want 1 with the output %q", len(got.Steps), "all of it\n")
	}
}
