package catalog_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// A failed START retried is a start like any other: it says the id of the
// run it starts, and the job's max_parallel_targets holds it back while
// the job runs on as many targets as it allows, until a slot frees.
func TestRetriedStartObeysMaxParallelTargets(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, e)
		a, b := enlist(t, db, "a"), enlist(t, db, "b")
		j := job("deploy", "a", "b")
		j.MaxParallelTargets = 1
		if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		// b refuses its START; then a's run is under way, the one slot taken.
		refused := mustStart(t, db, catalog.StartRequest{Job: "deploy", Targets: []string{"b"}})
		if _, err := db.Ack(ctx, b.ID, []catalog.AckRow{{Seq: refused.Runs[0].Seq, Status: muster.InstructionFailed, Error: "no room"}}); err != nil {
			t.Fatal(err)
		}
		running := mustStart(t, db, catalog.StartRequest{Job: "deploy", Targets: []string{"a"}})
		if running.Runs[0].Queued {
			t.Fatalf("a's start: %+v, want it posted, the slot free", running)
		}

		in, err := db.RetryInstruction(ctx, "b", refused.Runs[0].Seq, admin)
		if err != nil {
			t.Fatal(err)
		}
		if !in.Queued || in.Seq != 0 || in.RunID == "" || in.RunID == refused.Runs[0].RunID || in.Operation != muster.OpStart || in.Target != "b" {
			t.Fatalf("retry: %+v, want a START of a new run on b, queued by max_parallel_targets", in)
		}
		for _, p := range pendingOf(t, db, b.ID) {
			if p.Operation == muster.OpStart {
				t.Fatalf("b has START seq %d pending while a's run takes the job's one slot", p.Seq)
			}
		}

		// a's run ends: b's START is posted, with the run id the retry said.
		at := clk.Now()
		done := report(running.Runs[0].RunID, "deploy", muster.RunSucceeded, 1, at,
			muster.StepAttempt{Name: "hello", Attempt: 1, Status: muster.AttemptSucceeded, StartedAt: at})
		done.Run.Trigger = "operator:admin"
		clk.Add(time.Second)
		if out, err := db.UpsertRuns(ctx, a, []catalog.RunUpload{done}); err != nil || !out[0].OK {
			t.Fatalf("a's run: %+v %v", out, err)
		}
		var posted []string
		for _, p := range pendingOf(t, db, b.ID) {
			if p.Operation == muster.OpStart {
				posted = append(posted, runIDOf(t, p))
			}
		}
		if len(posted) != 1 || posted[0] != in.RunID {
			t.Errorf("b's STARTs pending after a's run ended: runs %v, want [%s]", posted, in.RunID)
		}
	})
}

// A failed START retried while the job has a slot free is posted at once,
// and the reply names its run.
func TestRetriedStartSaysItsRun(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, e)
		a := enlistWithDeploy(t, db)
		refused := mustStart(t, db, catalog.StartRequest{Job: "deploy"})
		if _, err := db.Ack(ctx, a.ID, []catalog.AckRow{{Seq: refused.Runs[0].Seq, Status: muster.InstructionFailed, Error: "no room"}}); err != nil {
			t.Fatal(err)
		}
		in, err := db.RetryInstruction(ctx, "a", refused.Runs[0].Seq, admin)
		if err != nil {
			t.Fatal(err)
		}
		if in.Queued || in.Seq <= refused.Runs[0].Seq || in.RunID == "" || in.RunID == refused.Runs[0].RunID {
			t.Fatalf("retry: %+v, want a START posted now, of a new run", in)
		}
		var pending []catalog.InstructionRow
		for _, p := range pendingOf(t, db, a.ID) {
			if p.Operation == muster.OpStart {
				pending = append(pending, p)
			}
		}
		if len(pending) != 1 || pending[0].Seq != in.Seq || runIDOf(t, pending[0]) != in.RunID {
			t.Errorf("a's pending STARTs: %+v, want the retry's START seq %d of run %s", pending, in.Seq, in.RunID)
		}
	})
}

// runIDOf is the run id a START carries.
func runIDOf(t *testing.T, in catalog.InstructionRow) string {
	t.Helper()
	var p agentproto.StartPayload
	if err := json.Unmarshal(in.Payload, &p); err != nil {
		t.Fatalf("START seq %d: %v", in.Seq, err)
	}
	return p.RunID
}
