package catalog_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// A START that will never run (its target refused it, or it was
// superseded or deleted before its target collected it) is recorded as a
// finished run, skipped, with why: never left "starting" on the master,
// where whoever follows the run would wait for it for ever. Whoever
// follows runs is woken.
func TestStartNeverRunIsRecordedSkipped(t *testing.T) {
	cases := []struct {
		name string
		// settle makes the START of run on a (seq) never run.
		settle func(t *testing.T, db *catalog.Catalog, a catalog.TargetIdentity, seq int64)
		want   string // in the run's message
	}{
		{"refused", func(t *testing.T, db *catalog.Catalog, a catalog.TargetIdentity, seq int64) {
			acks := []catalog.AckRow{{Seq: seq, Status: muster.InstructionFailed, Error: `START "deploy": the job is not on this target (did its INSERT fail?)`}}
			if _, err := db.Ack(context.Background(), a.ID, acks); err != nil {
				t.Fatal(err)
			}
		}, `the target refused it: START "deploy": the job is not on this target (did its INSERT fail?)`},
		{"deleted", func(t *testing.T, db *catalog.Catalog, a catalog.TargetIdentity, seq int64) {
			if err := db.DeleteInstruction(context.Background(), "a", seq, admin); err != nil {
				t.Fatal(err)
			}
		}, "it was deleted from the download list before the target collected it"},
		{"job deleted", func(t *testing.T, db *catalog.Catalog, a catalog.TargetIdentity, seq int64) {
			if _, err := db.DeleteJob(context.Background(), "deploy", admin); err != nil {
				t.Fatal(err)
			}
		}, "a DELETE of the job superseded it before the target collected it"},
		{"DELETE posted", func(t *testing.T, db *catalog.Catalog, a catalog.TargetIdentity, seq int64) {
			if _, err := db.Post(context.Background(), catalog.PostRequest{Operation: muster.OpDelete, Job: "deploy"}, admin); err != nil {
				t.Fatal(err)
			}
		}, "a DELETE of the job superseded it before the target collected it"},
		{"resync", func(t *testing.T, db *catalog.Catalog, a catalog.TargetIdentity, seq int64) {
			if _, err := db.ResyncTargets(context.Background(), []string{"a"}, false, admin); err != nil {
				t.Fatal(err)
			}
		}, "a resync of the target superseded it before the target collected it"},
		{"target deleted", func(t *testing.T, db *catalog.Catalog, a catalog.TargetIdentity, seq int64) {
			if err := db.DeleteTarget(context.Background(), "a", false, admin); err != nil {
				t.Fatal(err)
			}
		}, "the target was deleted before it collected it"},
		{"target forgotten", func(t *testing.T, db *catalog.Catalog, a catalog.TargetIdentity, seq int64) {
			if err := db.DeleteTarget(context.Background(), "a", true, admin); err != nil {
				t.Fatal(err)
			}
		}, "the target was deleted before it collected it"},
		{"target defected", func(t *testing.T, db *catalog.Catalog, a catalog.TargetIdentity, seq int64) {
			if err := db.DefectTarget(context.Background(), a.ID, muster.Actor{Kind: muster.ActorTarget, Name: "a"}); err != nil {
				t.Fatal(err)
			}
		}, "the target defected before it collected it"},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
				ctx := context.Background()
				db, clk, commits := MustOpen(t, e)
				a := enlist(t, db, "a")
				if _, err := db.ApplyJobs(ctx, []muster.Job{job("deploy", "a")}, catalog.ApplyOptions{}, admin); err != nil {
					t.Fatal(err)
				}
				posted := clk.Now()
				res := mustStart(t, db, catalog.StartRequest{Job: "deploy"})
				ref := muster.RunRef{Target: "a", RunID: res.Runs[0].RunID}
				clk.Add(time.Minute)
				*commits = nil
				tc.settle(t, db, a, res.Runs[0].Seq)

				runs, err := db.FindRuns(ctx, catalog.RunFilter{Runs: []muster.RunRef{ref}})
				if err != nil || len(runs) != 1 {
					t.Fatalf("the run of the START: %+v %v, want it recorded", runs, err)
				}
				r := runs[0]
				if r.Status != muster.RunSkipped || r.FinishedAt == nil || !r.FinishedAt.Equal(clk.Now()) || !r.StartedAt.Equal(posted) {
					t.Errorf("run %+v: want skipped, started when its START was posted (%s), finished now (%s)", r, posted, clk.Now())
				}
				if r.Job != "deploy" || r.Trigger != "operator:admin" || len(r.Steps) != 0 {
					t.Errorf("run %+v: want job deploy, trigger operator:admin, no step", r)
				}
				if want := "the START (seq " + strconv.FormatInt(res.Runs[0].Seq, 10) + ") was not run: " + tc.want; r.Message != want {
					t.Errorf("message %q, want %q", r.Message, want)
				}
				if !slices.ContainsFunc(*commits, func(c catalog.Commit) bool { return slices.Contains(c.Runs, ref.RunID) }) {
					t.Errorf("no commit names run %s: whoever follows it is not woken", ref.RunID)
				}
			})
		})
	}
}

// The run the master records for a START not run is replaced by its
// target's report, should the target have run it after all (a START it
// collected just before a DELETE superseded it). Its end was counted when
// the master recorded it skipped, and is not counted again.
func TestReportReplacesTheRecordOfAStartNotRun(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, e)
		a := enlistWithDeploy(t, db)
		res := mustStart(t, db, catalog.StartRequest{Job: "deploy"})
		if _, err := db.Post(ctx, catalog.PostRequest{Operation: muster.OpDelete, Job: "deploy"}, admin); err != nil {
			t.Fatal(err)
		}
		at := clk.Now()
		out, err := db.UpsertRuns(ctx, a, []catalog.RunUpload{{Revision: 1, Run: muster.Run{Job: "deploy", RunID: res.Runs[0].RunID,
			Status: muster.RunSucceeded, Trigger: "operator:admin", StartedAt: at, FinishedAt: &at,
			Steps: []muster.StepAttempt{{Name: "s", Attempt: 1, Status: muster.AttemptSucceeded, StartedAt: at}}}}})
		if err != nil || !out[0].OK || out[0].Ended {
			t.Fatalf("the target's report: %+v %v, want it stored, the run's end counted already", out, err)
		}
		runs, err := db.FindRuns(ctx, catalog.RunFilter{Runs: res.Refs()})
		if err != nil || len(runs) != 1 || runs[0].Status != muster.RunSucceeded || runs[0].Message != "" || len(runs[0].Steps) != 1 {
			t.Errorf("the run: %+v %v, want the target's report", runs, err)
		}
	})
}

// A START max_parallel_targets holds back, and then drops (the job stopped
// or deleted, a DELETE posted, the target out of the job or gone), is
// never posted: its run, whose id the start returned, is recorded skipped,
// saying why, rather than left queued for ever.
func TestStartHeldBackAndDroppedIsRecordedSkipped(t *testing.T) {
	cases := []struct {
		name string
		drop func(ctx context.Context, db *catalog.Catalog, b catalog.TargetIdentity) error
		want string
	}{
		{"stopped", func(ctx context.Context, db *catalog.Catalog, b catalog.TargetIdentity) error {
			_, err := db.StopJob(ctx, "deploy", nil, admin)
			return err
		}, "the job was stopped"},
		{"DELETE posted", func(ctx context.Context, db *catalog.Catalog, b catalog.TargetIdentity) error {
			_, err := db.Post(ctx, catalog.PostRequest{Operation: muster.OpDelete, Job: "deploy", Targets: []string{"b"}}, admin)
			return err
		}, "a DELETE of the job was posted to the target"},
		{"job deleted", func(ctx context.Context, db *catalog.Catalog, b catalog.TargetIdentity) error {
			_, err := db.DeleteJob(ctx, "deploy", admin)
			return err
		}, "the job was deleted"},
		{"out of the job", func(ctx context.Context, db *catalog.Catalog, b catalog.TargetIdentity) error {
			j := job("deploy", "a")
			j.MaxParallelTargets = 1
			_, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin)
			return err
		}, "the job no longer runs on the target"},
		{"target deleted", func(ctx context.Context, db *catalog.Catalog, b catalog.TargetIdentity) error {
			return db.DeleteTarget(ctx, "b", false, admin)
		}, "the target was deleted"},
		{"target defected", func(ctx context.Context, db *catalog.Catalog, b catalog.TargetIdentity) error {
			return db.DefectTarget(ctx, b.ID, muster.Actor{Kind: muster.ActorTarget, Name: "b"})
		}, "the target defected"},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
				ctx := context.Background()
				db, clk, _, b, res := startHeldBack(t, e)
				queued := clk.Now()
				clk.Add(time.Minute)
				if err := tc.drop(ctx, db, b); err != nil {
					t.Fatal(err)
				}
				ref := muster.RunRef{Target: "b", RunID: res.Runs[1].RunID}
				runs, err := db.FindRuns(ctx, catalog.RunFilter{Runs: []muster.RunRef{ref}})
				if err != nil || len(runs) != 1 {
					t.Fatalf("b's run: %+v %v, want it recorded", runs, err)
				}
				r := runs[0]
				want := "the START was held back by max_parallel_targets, and dropped before it was posted: " + tc.want
				if r.Status != muster.RunSkipped || r.Message != want || r.Job != "deploy" || r.Trigger != "operator:admin" ||
					!r.StartedAt.Equal(queued) || r.FinishedAt == nil || !r.FinishedAt.Equal(clk.Now()) {
					t.Errorf("b's run: %+v, want skipped, started when queued, finished now, saying %q", r, want)
				}
			})
		})
	}
}

// The job's last outcome on a target is its newest run there, as the
// history shows it, a START refused included, as a START skipped on the
// target is; and it moves on to the run its retry brings.
func TestRefusedStartIsTheJobsLastOutcome(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, e)
		a := enlistWithDeploy(t, db)
		res := mustStart(t, db, catalog.StartRequest{Job: "deploy"})
		acks := []catalog.AckRow{{Seq: res.Runs[0].Seq, Status: muster.InstructionFailed, Error: "disk full"}}
		if _, err := db.Ack(ctx, a.ID, acks); err != nil {
			t.Fatal(err)
		}
		j, err := db.FindJob(ctx, "deploy")
		if err != nil || len(j.Outcomes) != 1 {
			t.Fatalf("job: %+v %v", j, err)
		}
		if o := j.Outcomes[0]; o.LastRunID != res.Runs[0].RunID || o.LastStatus != muster.RunSkipped || !strings.Contains(o.LastMessage, "disk full") {
			t.Errorf("last outcome %+v, want the refused run %s, skipped, saying why", o, res.Runs[0].RunID)
		}
		retried, err := db.RetryInstruction(ctx, "a", res.Runs[0].Seq, admin)
		if err != nil {
			t.Fatal(err)
		}
		newID := startRunID(t, db, "a", retried.Seq)
		if newID == res.Runs[0].RunID {
			t.Fatalf("the retried START has the refused one's run id %s, want a new one", newID)
		}
		clk.Add(time.Second)
		at := clk.Now()
		if r, err := db.UpsertRuns(ctx, a, []catalog.RunUpload{{Revision: 1, Run: muster.Run{Job: "deploy", RunID: newID,
			Status: muster.RunSucceeded, Trigger: "operator:admin", StartedAt: at, FinishedAt: &at}}}); err != nil || !r[0].OK {
			t.Fatalf("upload: %+v %v", r, err)
		}
		if j, err = db.FindJob(ctx, "deploy"); err != nil || j.Outcomes[0].LastRunID != newID || j.Outcomes[0].LastStatus != muster.RunSucceeded {
			t.Errorf("last outcome %+v %v, want the retried run %s, succeeded", j.Outcomes, err, newID)
		}
		runs, err := db.FindRuns(ctx, catalog.RunFilter{Job: "deploy"})
		if err != nil || len(runs) != 2 || runs[0].RunID != newID || runs[1].RunID != res.Runs[0].RunID {
			t.Errorf("history %+v %v, want the retried run, then the refused one, once each", runs, err)
		}
	})
}

// A target that finds the catalog restored asks for a resync, giving its
// cursor: the STARTs up to it, pending in the restored catalog, were
// collected (and their runs reported before the restore), so they are not
// recorded as not run; those after it are.
func TestResyncAskedByTheTargetSparesTheStartsItCollected(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, e)
		a := enlistWithDeploy(t, db)
		collected := mustStart(t, db, catalog.StartRequest{Job: "deploy"})
		later := mustStart(t, db, catalog.StartRequest{Job: "deploy"})
		if _, err := db.Resync(ctx, a.ID, collected.Runs[0].Seq, muster.Actor{Kind: muster.ActorTarget, Name: "a"}); err != nil {
			t.Fatal(err)
		}
		runs, err := db.FindRuns(ctx, catalog.RunFilter{Job: "deploy"})
		if err != nil || len(runs) != 1 || runs[0].RunID != later.Runs[0].RunID || runs[0].Status != muster.RunSkipped {
			t.Errorf("runs %+v %v, want only the START after the cursor (%s) recorded skipped", runs, err, later.Runs[0].RunID)
		}
	})
}
