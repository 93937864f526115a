package catalog_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// A STOP posted by hand naming one target twice, in two spellings, is
// posted to it once, as every other posted operation is.
func TestPostStopNamingATargetTwicePostsOnce(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		a := enlist(t, db, "a")
		enlist(t, db, "b")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("deploy", "a", "b")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		for _, op := range []muster.Operation{muster.OpUpdate, muster.OpStop} {
			posted, err := db.Post(ctx, catalog.PostRequest{Operation: op, Job: "deploy", Targets: []string{"a", "A"}}, admin)
			if err != nil || len(posted) != 1 || posted[0].Target != "a" {
				t.Errorf("%s posted %+v, %v; want one instruction, to a", op, posted, err)
			}
		}
		var stops int
		for _, in := range must(db.PendingInstructions(ctx, a.ID, 0)) {
			if in.Operation == muster.OpStop {
				stops++
			}
		}
		if stops != 1 {
			t.Errorf("a has %d STOPs pending, want 1", stops)
		}
	})
}

// A START posted by hand says, of each target, the run it starts, and of
// a target max_parallel_targets holds it back for, that it is queued (no
// sequence number yet), as muster job start says.
func TestPostStartSaysWhichStartsAreQueued(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		enlist(t, db, "a")
		enlist(t, db, "b")
		j := job("deploy", "a", "b")
		j.MaxParallelTargets = 1
		if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		posted, err := db.Post(ctx, catalog.PostRequest{Operation: muster.OpStart, Job: "deploy"}, admin)
		if err != nil || len(posted) != 2 {
			t.Fatalf("posted %+v, %v; want a START for a and b", posted, err)
		}
		if in := posted[0]; in.Target != "a" || in.Seq == 0 || in.Queued || in.RunID == "" {
			t.Errorf("a: %+v, want a START posted under a sequence number, with its run", in)
		}
		if in := posted[1]; in.Target != "b" || in.Seq != 0 || !in.Queued || in.RunID == "" {
			t.Errorf("b: %+v, want a START queued by max_parallel_targets, with its run", in)
		}
	})
}

// A run still under way on a target the job was taken off (out of its
// targets, or out of its group) can be stopped there by name, as the
// rollout runbook says to stop a run that holds its wave, and is stopped
// with the job's others when the job is: the target goes on with the run
// it began. Once no run of the job is under way there, the target is
// refused as any the job does not run on.
func TestStopReachesARunOnATargetTakenOutOfTheJob(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		for _, named := range []bool{true, false} {
			t.Run(fmt.Sprintf("named=%v", named), func(t *testing.T) { stopOutsideTheJob(t, eng, named) })
		}
	})
}

// stopOutsideTheJob stops a run under way on a target the job was taken
// off, naming the target or not (see
// TestStopReachesARunOnATargetTakenOutOfTheJob).
func stopOutsideTheJob(t *testing.T, eng catalogtest.Engine, named bool) {
	ctx := context.Background()
	db, clk, _ := MustOpen(t, eng)
	enlist(t, db, "web1")
	web2 := enlist(t, db, "web2")
	if _, err := db.ApplyJobs(ctx, []muster.Job{job("deploy", "web1", "web2")}, catalog.ApplyOptions{}, admin); err != nil {
		t.Fatal(err)
	}
	res, err := db.StartJob(ctx, catalog.StartRequest{Job: "deploy", Targets: []string{"web2"}}, admin)
	if err != nil {
		t.Fatal(err)
	}
	at := clk.Now()
	run := muster.Run{Job: "deploy", RunID: res.Runs[0].RunID, Status: muster.RunRunning, Trigger: "operator", StartedAt: at}
	if up, err := db.UpsertRuns(ctx, web2, []catalog.RunUpload{{Revision: 1, Run: run}}); err != nil || !up[0].OK {
		t.Fatalf("upload: %+v %v", up, err)
	}
	if _, err := db.ApplyJobs(ctx, []muster.Job{job("deploy", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
		t.Fatal(err)
	}
	var stopOn []string
	if named {
		stopOn = []string{"web2"}
	}
	ch, err := db.StopJob(ctx, "deploy", stopOn, admin)
	if err != nil {
		t.Fatalf("stop on %v, with web2's run going on: %v", stopOn, err)
	}
	var ops []muster.Operation
	for _, in := range must(db.PendingInstructions(ctx, web2.ID, 0)) {
		ops = append(ops, in.Operation)
	}
	if len(ops) == 0 || ops[len(ops)-1] != muster.OpStop {
		t.Errorf("stop on %v: web2 has %v pending, want a STOP last (posted %v)", stopOn, ops, ch.Instructions)
	}
	run.Status, run.FinishedAt = muster.RunCanceled, &at
	if up, err := db.UpsertRuns(ctx, web2, []catalog.RunUpload{{Revision: 2, Run: run}}); err != nil || !up[0].OK {
		t.Fatalf("upload: %+v %v", up, err)
	}
	_, err = db.StopJob(ctx, "deploy", []string{"web2"}, admin)
	if want := `targets: job "deploy" does not run on "web2"`; muster.ErrorCode(err) != muster.EINVALID || muster.ErrorMessage(err) != want {
		t.Errorf("stop on web2 once its run ended: %v, want invalid: %q", err, want)
	}
}
