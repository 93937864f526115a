package catalog_test

import (
	"context"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// A catalog of a release that did not end a departing target's runs still
// holds them running, and its STARTs held back by max_parallel_targets
// queued, for ever. Opened, the catalog ends them as a departure does now:
// the runs abandoned, saying how the target left, their attempts
// canceled; the queued STARTs' runs skipped. A target still in the fleet
// keeps its running runs.
func TestOpenEndsRunsOfTargetsThatLeftBefore(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		ctx := context.Background()
		store := e.Open(t)
		clk := &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
		old, err := catalog.Open(ctx, store, catalog.Options{Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { old.Close() })
		ids := map[string]catalog.TargetIdentity{}
		for _, n := range []string{"gone", "tomb", "here"} {
			ids[n] = enlist(t, old, n)
		}
		j := job("long", "gone", "tomb", "here")
		j.MaxParallelTargets = 3
		if _, err := old.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		started := clk.Now()
		for n, id := range ids {
			running := report("run-"+n, "long", muster.RunRunning, 1, started,
				muster.StepAttempt{Name: "hello", Attempt: 1, Status: muster.AttemptRunning, StartedAt: started})
			if res, err := old.UpsertRuns(ctx, id, []catalog.RunUpload{running}); err != nil || !res[0].OK {
				t.Fatalf("%s's run: %+v, %v", n, res, err)
			}
		}
		// Three STARTs take the job's slots; a fourth, to gone, is queued.
		mustStart(t, old, catalog.StartRequest{Job: "long"})
		queued := mustStart(t, old, catalog.StartRequest{Job: "long", Targets: []string{"gone"}})
		if !queued.Runs[0].Queued {
			t.Fatalf("the fourth start: %+v, want it queued", queued)
		}
		// The older release marked the targets gone, and nothing else.
		clk.Add(time.Hour)
		err = store.Update(ctx, func(tx catalog.Tx) error {
			if err := tx.SetTargetState(ctx, ids["gone"].ID, catalog.TargetDefected, catalog.Departure{}); err != nil {
				return err
			}
			return tx.SetTargetState(ctx, ids["tomb"].ID, catalog.TargetDeleted, catalog.Departure{})
		})
		if err != nil {
			t.Fatal(err)
		}
		if r := findRun(t, old, "gone", "run-gone"); r.Status != muster.RunRunning {
			t.Fatalf("before: gone's run is %s, want running as the older release left it", r.Status)
		}

		clk.Add(time.Minute)
		db, err := catalog.Open(ctx, store, catalog.Options{Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		for n, how := range map[string]string{"gone": "defected", "tomb": "deleted by -, waiting to collect its DEFECT"} {
			r := findRun(t, db, n, "run-"+n)
			want := "the target left the fleet before it reported the run's end (" + how + "); what became of the run is unknown"
			if r.Status != muster.RunAbandoned || r.Message != want || r.FinishedAt == nil || !r.FinishedAt.Equal(clk.Now()) {
				t.Errorf("%s's run: %s %q finished %v, want %s %q now", n, r.Status, r.Message, r.FinishedAt, muster.RunAbandoned, want)
			}
			if len(r.Steps) != 1 || r.Steps[0].Status != muster.AttemptCanceled {
				t.Errorf("%s's run's steps: %+v, want its attempt canceled", n, r.Steps)
			}
		}
		if r := findRun(t, db, "gone", queued.Runs[0].RunID); r.Status != muster.RunSkipped {
			t.Errorf("gone's queued START's run: %s, want skipped", r.Status)
		}
		if r := findRun(t, db, "here", "run-here"); r.Status != muster.RunRunning {
			t.Errorf("here's run: %s, want running still: here is in the fleet", r.Status)
		}
	})
}
