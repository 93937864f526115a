package agent

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
)

// spoolRun is a run as the executor records it, with n attempts.
func spoolRun(id string, n int) muster.Run {
	r := muster.Run{Job: "j", Target: "web1", RunID: id, Status: muster.RunRunning, Trigger: muster.TriggerOperator,
		StartedAt: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	for i := range n {
		r.Steps = append(r.Steps, muster.StepAttempt{Name: fmt.Sprintf("s%d", i+1), Attempt: 1, Status: muster.AttemptRunning, StartedAt: r.StartedAt})
	}
	return r
}

// sent lists what an upload carries: "run@revision" and each chunk as
// "attempt:offset:data".
func sent(up upload) []string {
	var out []string
	for _, rep := range up.reports {
		out = append(out, fmt.Sprintf("%s@%d", rep.Run.RunID, rep.Revision))
		for _, c := range rep.Output {
			out = append(out, fmt.Sprintf("%d:%d:%s", c.Attempt, c.Offset, c.Data))
		}
	}
	return out
}

// acceptAll answers an upload as a master that takes every run.
func acceptAll(up upload) []agentproto.RunResult {
	res := make([]agentproto.RunResult, len(up.reports))
	for i, rep := range up.reports {
		res[i] = agentproto.RunResult{RunID: rep.Run.RunID, OK: true}
	}
	return res
}

// The master is sent each chunk of output once: an upload carries what
// came since the last one it took.
func TestSpoolUploadsOnlyNewOutput(t *testing.T) {
	m := newTestMain(t)
	ctx := context.Background()
	r := spoolRun("r1", 2)
	steps := []struct {
		chunks []outputChunk
		want   string
	}{
		{[]outputChunk{{0, 0, "abc"}}, "r1@1 0:0:abc"},
		{[]outputChunk{{0, 3, "def"}, {1, 0, "xy"}}, "r1@2 0:3:def 1:0:xy"},
		{nil, "r1@3"},
	}
	for i, step := range steps {
		if err := m.store.saveRun(ctx, r, step.chunks); err != nil {
			t.Fatal(err)
		}
		up, err := m.store.unsentRuns(ctx, defaultUploadLimits())
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(sent(up), " "); got != step.want || up.more {
			t.Fatalf("upload %d: %q (more %v), want %q", i+1, got, up.more, step.want)
		}
		if err := m.store.markUploaded(ctx, up, acceptAll(up)); err != nil {
			t.Fatal(err)
		}
	}
	if up, err := m.store.unsentRuns(ctx, defaultUploadLimits()); err != nil || len(up.reports) != 0 {
		t.Errorf("after the master took everything: %q %v", sent(up), err)
	}
	if n := m.store.spoolDepth(ctx); n != 0 {
		t.Errorf("spool depth %d, want 0", n)
	}
	local := localRun(t, m, "r1")
	if local.Steps[0].Output != "abcdef" || local.Steps[1].Output != "xy" {
		t.Errorf("the spool's outputs %q %q", local.Steps[0].Output, local.Steps[1].Output)
	}
}

// A run with more output to send than one upload holds goes alone, over
// several uploads; its revision counts as the master's only with the last.
func TestSpoolSplitsARunOverUploads(t *testing.T) {
	m := newTestMain(t)
	ctx := context.Background()
	big := strings.Repeat("x", 300)
	chunks := []outputChunk{{0, 0, big}, {0, 300, big}, {0, 600, big}}
	if err := m.store.saveRun(ctx, spoolRun("r1", 1), chunks); err != nil {
		t.Fatal(err)
	}
	if err := m.store.saveRun(ctx, spoolRun("r2", 1), nil); err != nil {
		t.Fatal(err)
	}
	budget := runOverhead + 2*(64+encodedLen(big)) + 10 // the run and two chunks
	var uploads [][]string
	for range 5 {
		up, err := m.store.unsentRuns(ctx, uploadLimits{runs: uploadBatch, body: budget, report: agentproto.MaxRunReport})
		if err != nil {
			t.Fatal(err)
		}
		if len(up.reports) == 0 {
			break
		}
		uploads = append(uploads, sent(up))
		if err := m.store.markUploaded(ctx, up, acceptAll(up)); err != nil {
			t.Fatal(err)
		}
		if !up.more {
			break
		}
	}
	want := [][]string{
		{"r1@1", "0:0:" + big, "0:300:" + big},
		{"r1@1", "0:600:" + big},
		{"r2@1"},
	}
	if len(uploads) != len(want) {
		t.Fatalf("%d uploads, want %d: %v", len(uploads), len(want), uploads)
	}
	for i := range want {
		if strings.Join(uploads[i], " ") != strings.Join(want[i], " ") {
			t.Errorf("upload %d: %.60q…, want %.60q…", i+1, uploads[i], want[i])
		}
	}
}

// Runs dropped from a full spool, or expired, take their output with them.
func TestSpoolDropsOutputWithItsRun(t *testing.T) {
	m := newTestMain(t)
	ctx := context.Background()
	for _, id := range []string{"old", "new"} {
		r := spoolRun(id, 1)
		r.Status = muster.RunSucceeded
		if err := m.store.saveRun(ctx, r, []outputChunk{{0, 0, "output of " + id}}); err != nil {
			t.Fatal(err)
		}
	}
	err := m.store.update(ctx, func(tx *sql.Tx) error {
		_, err := trimSpool(ctx, tx, 1)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var chunks int
	if err := m.store.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM output`).Scan(&chunks); err != nil {
		t.Fatal(err)
	}
	if chunks != 1 {
		t.Errorf("%d chunks of output left for the 1 run left", chunks)
	}
}

// Output that would encode to more than a run report may hold (every byte
// escaped, six times its size) is stored in chunks of at most
// maxStoredChunk bytes, cut between characters, and sent over as many
// reports as it takes, none over agentproto.MaxRunReport as encoded.
func TestSpoolKeepsEachReportWithinTheMastersLimit(t *testing.T) {
	m := newTestMain(t)
	ctx := context.Background()
	// 3 MiB: control characters, then a run of "é" across the cut.
	out := strings.Repeat("\x01", 3<<20-maxStoredChunk/2) + strings.Repeat("é", maxStoredChunk/4)
	if err := m.store.saveRun(ctx, spoolRun("r1", 1), []outputChunk{{0, 0, out}}); err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	uploads := 0
	for range 20 {
		up, err := m.store.unsentRuns(ctx, defaultUploadLimits())
		if err != nil {
			t.Fatal(err)
		}
		if len(up.reports) == 0 {
			break
		}
		uploads++
		for _, rep := range up.reports {
			b, err := json.Marshal(rep)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > agentproto.MaxRunReport {
				t.Fatalf("upload %d: a report of %d bytes encoded, over the master's %d", uploads, len(b), agentproto.MaxRunReport)
			}
			for _, c := range rep.Output {
				if !utf8.ValidString(c.Data) || int(c.Offset) != got.Len() {
					t.Fatalf("upload %d: a chunk at %d (want %d), valid UTF-8: %v", uploads, c.Offset, got.Len(), utf8.ValidString(c.Data))
				}
				got.WriteString(c.Data)
			}
		}
		if err := m.store.markUploaded(ctx, up, acceptAll(up)); err != nil {
			t.Fatal(err)
		}
	}
	if got.String() != out {
		t.Fatalf("the master was sent %d bytes of %d", got.Len(), len(out))
	}
	if uploads < 3 {
		t.Fatalf("%d uploads: 18 MiB of encoded output cannot fit fewer than 3 reports", uploads)
	}
}

// An upload reads a run and its output as of one moment: a state saved
// while it reads (the step began, printed and ended) goes in the next
// upload with its output, not as output of the older state read first,
// which the master would refuse with it (that state has no such attempt).
func TestSpoolReadsARunAndItsOutputTogether(t *testing.T) {
	m := newTestMain(t)
	ctx := context.Background()
	if err := m.store.saveRun(ctx, spoolRun("r1", 0), nil); err != nil {
		t.Fatal(err)
	}
	saved := 0
	m.store.afterRunsRead = func() {
		m.store.afterRunsRead = nil
		done := spoolRun("r1", 1)
		done.Status, done.Steps[0].Status = muster.RunSucceeded, muster.AttemptSucceeded
		if err := m.store.saveRun(ctx, done, []outputChunk{{0, 0, "2026-12-06T08:37:30Z\n"}}); err != nil {
			t.Error(err)
		}
		saved++
	}
	want := []string{"r1@1", "r1@2 0:0:2026-12-06T08:37:30Z\n"}
	for i, w := range want {
		up, err := m.store.unsentRuns(ctx, defaultUploadLimits())
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(sent(up), " "); got != w {
			t.Fatalf("upload %d: %q, want %q", i+1, got, w)
		}
		if err := m.store.markUploaded(ctx, up, acceptAll(up)); err != nil {
			t.Fatal(err)
		}
	}
	if saved != 1 {
		t.Fatalf("the next state was saved %d times during the uploads, want once", saved)
	}
}
