package catalog_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// A run a target reported running when it left the fleet can no longer be
// reported by it: it is recorded abandoned as the target leaves, saying
// how, its step attempt canceled, when the target defects (its own runs
// not all reported), is deleted with --force, or is deleted and becomes a
// tombstone (whose uploads are refused). It is not left running for ever.
// Finished runs keep what the target reported.
func TestRunsOfATargetThatLeftAreAbandoned(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, clk, _ := MustOpen(t, e)
		ctx := context.Background()
		names := []string{"web1", "web2", "web3"}
		ids := map[string]catalog.TargetIdentity{}
		for _, n := range names {
			ids[n] = enlist(t, db, n)
		}
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("long", names...)}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		started := clk.Now()
		for _, n := range names {
			running := report("run-"+n, "long", muster.RunRunning, 1, started,
				muster.StepAttempt{Name: "hello", Attempt: 1, Status: muster.AttemptRunning, StartedAt: started})
			done := report("done-"+n, "long", muster.RunSucceeded, 1, started.Add(-time.Hour),
				muster.StepAttempt{Name: "hello", Attempt: 1, Status: muster.AttemptSucceeded, StartedAt: started.Add(-time.Hour)})
			if res, err := db.UpsertRuns(ctx, ids[n], []catalog.RunUpload{running, done}); err != nil || !res[0].OK || !res[1].OK {
				t.Fatalf("%s's runs: %+v, %v", n, res, err)
			}
		}
		clk.Add(time.Minute)
		if err := db.DefectTarget(ctx, ids["web1"].ID, muster.Actor{Kind: muster.ActorTarget, Name: "web1"}); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteTarget(ctx, "web2", true, admin); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteTarget(ctx, "web3", false, admin); err != nil {
			t.Fatal(err)
		}
		left := clk.Now()
		// The tombstone's collection of its DEFECT changes nothing more:
		// its uploads are refused, and its runs were ended when it was
		// deleted.
		defect := pendingOf(t, db, ids["web3"].ID)
		clk.Add(time.Minute)
		if _, err := db.Ack(ctx, ids["web3"].ID, []catalog.AckRow{{Seq: defect[0].Seq, Status: muster.InstructionDownloaded}}); err != nil {
			t.Fatal(err)
		}

		for n, how := range map[string]string{
			"web1": "defected itself (muster defect on the target)",
			"web2": "deleted with --force by key admin (admin): no DEFECT was posted",
			"web3": "deleted by key admin (admin), waiting to collect its DEFECT",
		} {
			r := findRun(t, db, n, "run-"+n)
			want := fmt.Sprintf("the target left the fleet before it reported the run's end (%s); what became of the run is unknown", how)
			if r.Status != muster.RunAbandoned || r.Message != want || r.FinishedAt == nil || !r.FinishedAt.Equal(left) || r.DurationMS != time.Minute.Milliseconds() {
				t.Errorf("%s's running run: %s %q, finished %v after %d ms; want %s %q, as it left, after a minute",
					n, r.Status, r.Message, r.FinishedAt, r.DurationMS, muster.RunAbandoned, want)
			}
			if len(r.Steps) != 1 || r.Steps[0].Status != muster.AttemptCanceled || r.Steps[0].Message != "the target left the fleet" ||
				r.Steps[0].DurationMS != time.Minute.Milliseconds() {
				t.Errorf("%s's running run's steps: %+v, want its attempt canceled, the target having left, after a minute", n, r.Steps)
			}
			if d := findRun(t, db, n, "done-"+n); d.Status != muster.RunSucceeded {
				t.Errorf("%s's finished run is %s, want succeeded as reported", n, d.Status)
			}
		}
	})
}

// findRun returns a target's run.
func findRun(t *testing.T, db *catalog.Catalog, target, runID string) muster.Run {
	t.Helper()
	runs, err := db.FindRuns(context.Background(), catalog.RunFilter{Runs: []muster.RunRef{{Target: target, RunID: runID}}})
	if err != nil || len(runs) != 1 {
		t.Fatalf("run %s of %s: %v, %v", runID, target, runs, err)
	}
	return runs[0]
}
