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

// openOn opens a catalog on store, on clk's time, closed at the test's end:
// the catalog a master opens at its start.
func openOn(t *testing.T, store catalog.Store, clk *clock) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Open(context.Background(), store, catalog.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

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
		old := openOn(t, store, clk)
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
		err := store.Update(ctx, func(tx catalog.Tx) error {
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
		db := openOn(t, store, clk)
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

// A START posted to a target as it left (a start racing its departure on
// another master, before posting checked that the target was still in the
// fleet) stays pending for a target that will never collect it: its run
// is never recorded, and until it expires it holds a max_parallel_targets
// slot. Opened, the catalog records its run skipped, as a departure does
// a START not collected, and the slot is free.
func TestOpenEndsStartsPostedToTargetsThatLeft(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		ctx := context.Background()
		store := e.Open(t)
		clk := &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
		old := openOn(t, store, clk)
		gone := enlist(t, old, "gone")
		enlist(t, old, "here")
		j := job("long", "gone", "here")
		j.MaxParallelTargets = 1
		if _, err := old.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		posted := mustStart(t, old, catalog.StartRequest{Job: "long", Targets: []string{"gone"}, ExpiresIn: time.Hour})
		if posted.Runs[0].Queued {
			t.Fatalf("the start to gone: %+v, want it posted", posted)
		}
		// The target left as the START was posted: the departure's
		// clearing came before it.
		err := store.Update(ctx, func(tx catalog.Tx) error {
			return tx.SetTargetState(ctx, gone.ID, catalog.TargetDefected, catalog.Departure{How: catalog.DepartureDefected, By: "target gone"})
		})
		if err != nil {
			t.Fatal(err)
		}

		clk.Add(time.Minute)
		db := openOn(t, store, clk)
		r := findRun(t, db, "gone", posted.Runs[0].RunID)
		want := fmt.Sprintf("the START (seq %d) was not run: the target defected before it collected it", posted.Runs[0].Seq)
		if r.Status != muster.RunSkipped || r.Message != want {
			t.Errorf("the START's run: %s %q, want %s %q", r.Status, r.Message, muster.RunSkipped, want)
		}
		if res := mustStart(t, db, catalog.StartRequest{Job: "long", Targets: []string{"here"}}); res.Runs[0].Queued {
			t.Errorf("a start on here: %+v, want it posted: the START to gone holds no slot", res.Runs[0])
		}
	})
}
