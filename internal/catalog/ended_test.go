package catalog_test

import (
	"context"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// Every run the catalog records finished is told to the OnCommit hook once,
// with its job, outcome and duration, whoever recorded the end: a target's
// upload, or the master itself, for a START never run (skipped) or a run
// its departing target left running (abandoned). A later report of a run
// already finished (the target's own report of a START recorded not run,
// a revision repeated) is not told again: the master's metrics count each
// run once.
func TestEveryRunEndIsCommittedOnce(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		ctx := context.Background()
		db, clk, commits := MustOpen(t, e)
		a, b := enlist(t, db, "a"), enlist(t, db, "b")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("deploy", "a", "b")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		ended := func() []catalog.RunEnd {
			var out []catalog.RunEnd
			for _, c := range *commits {
				out = append(out, c.Ended...)
			}
			*commits = nil
			return out
		}

		// A START deleted from a's download list: skipped, by the master.
		res := mustStart(t, db, catalog.StartRequest{Job: "deploy", Targets: []string{"a"}})
		if err := db.DeleteInstruction(ctx, "a", res.Runs[0].Seq, admin); err != nil {
			t.Fatal(err)
		}
		want := catalog.RunEnd{Job: "deploy", Status: muster.RunSkipped}
		if got := ended(); len(got) != 1 || got[0] != want {
			t.Errorf("a START deleted: ended %+v, want %+v", got, want)
		}
		// a reports the run after all: already counted, not again.
		at := clk.Now()
		late := report(res.Runs[0].RunID, "deploy", muster.RunSucceeded, 1, at,
			muster.StepAttempt{Name: "hello", Attempt: 1, Status: muster.AttemptSucceeded, StartedAt: at})
		late.Run.Trigger = "operator:admin"
		if out, err := db.UpsertRuns(ctx, a, []catalog.RunUpload{late}); err != nil || !out[0].OK {
			t.Fatalf("a's report: %+v %v", out, err)
		}
		if got := ended(); len(got) != 0 {
			t.Errorf("a's report of a run recorded skipped: ended %+v, want none (counted when it was recorded)", got)
		}

		// b reports a run finished, then again: counted once.
		done := report("done-b", "deploy", muster.RunFailed, 1, at)
		done.Run.DurationMS = time.Second.Milliseconds()
		for range 2 {
			if out, err := db.UpsertRuns(ctx, b, []catalog.RunUpload{done}); err != nil || !out[0].OK {
				t.Fatalf("b's report: %+v %v", out, err)
			}
		}
		want = catalog.RunEnd{Job: "deploy", Status: muster.RunFailed, Duration: time.Second}
		if got := ended(); len(got) != 1 || got[0] != want {
			t.Errorf("b's finished run reported twice: ended %+v, want %+v once", got, want)
		}

		// b defects with a run running: abandoned, by the master.
		running := report("run-b", "deploy", muster.RunRunning, 1, at,
			muster.StepAttempt{Name: "hello", Attempt: 1, Status: muster.AttemptRunning, StartedAt: at})
		if out, err := db.UpsertRuns(ctx, b, []catalog.RunUpload{running}); err != nil || !out[0].OK {
			t.Fatalf("b's running run: %+v %v", out, err)
		}
		clk.Add(time.Minute)
		if err := db.DefectTarget(ctx, b.ID, muster.Actor{Kind: muster.ActorTarget, Name: "b"}); err != nil {
			t.Fatal(err)
		}
		want = catalog.RunEnd{Job: "deploy", Status: muster.RunAbandoned, Duration: time.Minute}
		if got := ended(); len(got) != 1 || got[0] != want {
			t.Errorf("b defected with a run running: ended %+v, want %+v", got, want)
		}
	})
}
