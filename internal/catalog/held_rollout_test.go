package catalog_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// muster job stop while STARTs wait on the master under
// max_parallel_targets drops them: when the stopped run ends and its slot
// frees, no START is posted after the STOP.
func TestStopDropsTheStartsHeldBack(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, a, b, res := startHeldBack(t, eng)
		if _, err := db.StopJob(ctx, "deploy", nil, admin); err != nil {
			t.Fatal(err)
		}
		// a's run is stopped: it ends canceled.
		noStartAfterTheStop(t, db, clk, a, b, res)
		entries, err := db.FindAudit(ctx, catalog.AuditFilter{Job: "deploy"})
		if err != nil || len(entries) == 0 || entries[0].Action != muster.AuditJobStop ||
			!slices.Contains(entries[0].Changes, "1 START(s) held back by max_parallel_targets dropped") {
			t.Errorf("the newest audit entry of the job: %+v %v, want the stop, saying one held START was dropped", entries, err)
		}
	})
}

// A rollout whose current wave holds a START back on the master
// (max_parallel_targets), for a target deleted meanwhile: the START is
// dropped with the target, and the rollout counts it not run, as it counts
// a posted START the deletion superseded: the wave ends when its other
// runs do, and, a failure more than the rollout allows (none), the rollout
// halts rather than wait for ever.
func TestRolloutGoesOnPastADroppedHeldStart(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		ids := map[string]catalog.TargetIdentity{}
		for _, n := range []string{"web1", "web2", "web3"} {
			ids[n] = enlist(t, db, n)
		}
		j := job("deploy", "web1", "web2", "web3")
		j.MaxParallelTargets = 1
		if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		res, err := db.StartJob(ctx, catalog.StartRequest{Job: "deploy", Rollout: &muster.RolloutSpec{Batch: "2"}}, admin)
		if err != nil || len(res.Runs) != 2 || !res.Runs[1].Queued {
			t.Fatalf("start: %+v %v, want web1 posted, web2 queued", res, err)
		}
		var shown []string
		for _, rt := range res.Rollout.Targets {
			shown = append(shown, rt.Target+" "+rt.Status)
		}
		if want := []string{"web1 posted", "web2 posted", "web3 waiting"}; !slices.Equal(shown, want) {
			t.Errorf("the start shows the rollout's targets %v, want %v: the first wave posted or held back", shown, want)
		}
		if err := db.DeleteTarget(ctx, "web2", true, admin); err != nil {
			t.Fatal(err)
		}
		endRun(t, db, clk, ids["web1"], res.Runs[0].RunID, muster.RunSucceeded)
		for range 3 {
			if err := db.ReleaseQueuedStarts(ctx); err != nil {
				t.Fatal(err)
			}
			if err := db.AdvanceRollouts(ctx); err != nil {
				t.Fatal(err)
			}
			clk.Add(catalog.MaxStartExpiry + 1)
		}
		ro := oneRollout(t, db)
		if ro.State != muster.RolloutHalted || ro.Failed != 1 {
			t.Errorf("rollout %s at wave %d of %d with %d failed; want it halted on the deleted target's dropped START, one failure", ro.State, ro.Wave, ro.Waves, ro.Failed)
		}
		for _, rt := range ro.Targets {
			if rt.Target == "web2" && (rt.Status != muster.RolloutNotRun || rt.Message != catalog.RolloutTargetGone) {
				t.Errorf("web2: %s %q, want %s saying its held START was dropped", rt.Status, rt.Message, muster.RolloutNotRun)
			}
		}
	})
}

// History retention (keep_per_job, as --history-max-runs applies it every
// ten minutes) keeps the runs of a running rollout: a finished run of the
// current wave stays while another of the wave runs, and the rollout goes
// on to its next wave when that one ends.
func TestRetentionKeepsTheRunsOfARunningRollout(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		ids := rolloutFleet(t, db, 3)
		res, err := db.StartJob(ctx, catalog.StartRequest{Job: "deploy", Rollout: &muster.RolloutSpec{Batch: "2"}}, admin)
		if err != nil || len(res.Runs) != 2 {
			t.Fatalf("start: %+v %v", res, err)
		}
		for _, r := range res.Runs {
			if _, err := db.Ack(ctx, ids[r.Target].ID, []catalog.AckRow{{Seq: r.Seq, Status: muster.InstructionDownloaded}}); err != nil {
				t.Fatal(err)
			}
		}
		endRun(t, db, clk, ids[res.Runs[0].Target], res.Runs[0].RunID, muster.RunSucceeded)
		clk.Add(1e9)
		at := clk.Now()
		if r, err := db.UpsertRuns(ctx, ids[res.Runs[1].Target], []catalog.RunUpload{{Revision: 1, Run: muster.Run{Job: "deploy",
			RunID: res.Runs[1].RunID, Status: muster.RunRunning, Trigger: "operator", StartedAt: at}}}); err != nil || !r[0].OK {
			t.Fatalf("upload: %+v %v", r, err)
		}
		if res, err := db.PurgeRuns(ctx, catalog.PurgeRequest{KeepPerJob: 1}, masterActor()); err != nil || res.Deleted != 0 {
			t.Fatalf("the purge deleted %d runs (%v), want none: both are the running rollout's", res.Deleted, err)
		}
		endRun2 := func() {
			at := clk.Now()
			if r, err := db.UpsertRuns(ctx, ids[res.Runs[1].Target], []catalog.RunUpload{{Revision: 2, Run: muster.Run{Job: "deploy",
				RunID: res.Runs[1].RunID, Status: muster.RunSucceeded, Trigger: "operator", StartedAt: at, FinishedAt: &at}}}); err != nil || !r[0].OK {
				t.Fatalf("upload: %+v %v", r, err)
			}
		}
		endRun2()
		if err := db.AdvanceRollouts(ctx); err != nil {
			t.Fatal(err)
		}
		if ro := oneRollout(t, db); ro.Wave != 2 || ro.Succeeded != 2 {
			t.Errorf("rollout at wave %d of %d with %d succeeded, want wave 2 with both of wave 1's runs", ro.Wave, ro.Waves, ro.Succeeded)
		}
	})
}

func masterActor() muster.Actor { return muster.Actor{Kind: muster.ActorMaster, Name: "master"} }

// History retention by age takes the rollouts that ended before it, with
// their targets' records, and keeps a running one however old.
func TestRetentionTakesEndedRollouts(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		rolloutFleet(t, db, 2)
		if _, err := db.StartJob(ctx, catalog.StartRequest{Job: "deploy", Rollout: &muster.RolloutSpec{Batch: "1"}}, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.StopJob(ctx, "deploy", nil, admin); err != nil { // the rollout ends, canceled
			t.Fatal(err)
		}
		clk.Add(48 * time.Hour)
		if _, err := db.StartJob(ctx, catalog.StartRequest{Job: "deploy", Rollout: &muster.RolloutSpec{Batch: "1"}}, admin); err != nil {
			t.Fatal(err)
		}
		clk.Add(48 * time.Hour)
		if _, err := db.PurgeRuns(ctx, catalog.PurgeRequest{OlderThan: 24 * time.Hour}, masterActor()); err != nil {
			t.Fatal(err)
		}
		ros, err := db.FindRollouts(ctx, "deploy", 0)
		if err != nil || len(ros) != 1 || ros[0].State != muster.RolloutRunning || len(ros[0].Targets) != 2 {
			t.Fatalf("rollouts after the purge: %+v %v, want the running one alone, with its two targets", ros, err)
		}
		entries, err := db.FindAudit(ctx, catalog.AuditFilter{Limit: 1})
		if err != nil || len(entries) != 1 || !slices.Contains(entries[0].Changes, "deleted 1 rollout(s) ended more than 24h ago") {
			t.Errorf("the purge's audit entry: %+v %v, want it to say one rollout was deleted", entries, err)
		}
	})
}

// A STOP posted by hand (muster post stop) stops the job as muster job
// stop does: the STARTs max_parallel_targets holds back are dropped, so
// none is posted after the STOP when the stopped run ends.
func TestPostedStopDropsTheStartsHeldBack(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, a, b, res := startHeldBack(t, eng)
		posted, err := db.Post(ctx, catalog.PostRequest{Operation: muster.OpStop, Job: "deploy"}, admin)
		if err != nil {
			t.Fatal(err)
		}
		var to []string
		for _, in := range posted {
			if in.Operation != muster.OpStop || in.Job != "deploy" || in.Seq == 0 {
				t.Errorf("posted %+v, want a STOP of deploy", in)
			}
			to = append(to, in.Target)
		}
		if !slices.Equal(to, []string{"a", "b"}) {
			t.Errorf("STOP posted to %v, want a and b", to)
		}
		noStartAfterTheStop(t, db, clk, a, b, res)
	})
}

// startHeldBack enlists a and b, applies the job deploy on both with
// max_parallel_targets 1, and starts it: a's START posted, b's held back.
func startHeldBack(t *testing.T, eng catalogtest.Engine) (db *catalog.Catalog, clk *clock, a, b catalog.TargetIdentity, res muster.StartResult) {
	t.Helper()
	return startHeldBackAt(t, eng, "")
}

// startHeldBackAt is startHeldBack, the runs beginning at step (--step).
func startHeldBackAt(t *testing.T, eng catalogtest.Engine, step string) (db *catalog.Catalog, clk *clock, a, b catalog.TargetIdentity, res muster.StartResult) {
	t.Helper()
	ctx := context.Background()
	db, clk, _ = MustOpen(t, eng)
	a, b = enlist(t, db, "a"), enlist(t, db, "b")
	j := job("deploy", "a", "b")
	j.MaxParallelTargets = 1
	if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
		t.Fatal(err)
	}
	res, err := db.StartJob(ctx, catalog.StartRequest{Job: "deploy", Step: step}, admin)
	if err != nil || res.Runs[0].Queued || !res.Runs[1].Queued {
		t.Fatalf("start: %+v %v, want a posted, b queued", res, err)
	}
	return db, clk, a, b, res
}

// noStartAfterTheStop ends a's stopped run of deploy and releases what
// its slot frees (see startHeldBack): b, whose START was held back, must
// hold its INSERT and the STOP, and no START after them.
func noStartAfterTheStop(t *testing.T, db *catalog.Catalog, clk *clock, a, b catalog.TargetIdentity, res muster.StartResult) {
	t.Helper()
	ctx := context.Background()
	at := clk.Now()
	if r, err := db.UpsertRuns(ctx, a, []catalog.RunUpload{{Revision: 1, Run: muster.Run{Job: "deploy", RunID: res.Runs[0].RunID,
		Status: muster.RunCanceled, Trigger: "operator", StartedAt: at, FinishedAt: &at}}}); err != nil || !r[0].OK {
		t.Fatalf("upload: %+v %v", r, err)
	}
	if err := db.ReleaseQueuedStarts(ctx); err != nil {
		t.Fatal(err)
	}
	var ops []muster.Operation
	for _, in := range must(db.PendingInstructions(ctx, b.ID, 0)) {
		ops = append(ops, in.Operation)
	}
	if want := []muster.Operation{muster.OpInsert, muster.OpStop}; !slices.Equal(ops, want) {
		t.Errorf("b was posted %v, want %v: no START after the STOP", ops, want)
	}
}

// A DELETE posted by hand (muster post delete) drops the STARTs
// max_parallel_targets holds back for the targets it goes to, as a
// deletion of the job does: each would reach a target without the job,
// which would refuse it.
func TestPostedDeleteDropsTheStartsHeldBack(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, a, b, res := startHeldBack(t, eng)
		if _, err := db.Post(ctx, catalog.PostRequest{Operation: muster.OpDelete, Job: "deploy", Targets: []string{"b"}}, admin); err != nil {
			t.Fatal(err)
		}
		// a's run ends, freeing the one slot.
		at := res.ExpiresAt.Add(-muster.DefaultStartExpiry)
		if r, err := db.UpsertRuns(ctx, a, []catalog.RunUpload{{Revision: 1, Run: muster.Run{Job: "deploy", RunID: res.Runs[0].RunID,
			Status: muster.RunSucceeded, Trigger: "operator", StartedAt: at, FinishedAt: &at}}}); err != nil || !r[0].OK {
			t.Fatalf("upload: %+v %v", r, err)
		}
		if err := db.ReleaseQueuedStarts(ctx); err != nil {
			t.Fatal(err)
		}
		var ops []muster.Operation
		for _, in := range must(db.PendingInstructions(ctx, b.ID, 0)) {
			ops = append(ops, in.Operation)
		}
		if want := []muster.Operation{muster.OpDelete}; !slices.Equal(ops, want) {
			t.Errorf("b has %v pending, want %v: no START after the DELETE", ops, want)
		}
		entries, err := db.FindAudit(ctx, catalog.AuditFilter{Limit: 1})
		if err != nil || len(entries) != 1 || !slices.Contains(entries[0].Changes, "1 START(s) held back by max_parallel_targets dropped") {
			t.Errorf("the post's audit entry: %+v %v, want it to say the START held back was dropped", entries, err)
		}
	})
}

// A START held back (max_parallel_targets) that begins at a step the job,
// applied again meanwhile, no longer has is dropped when its slot frees,
// its run recorded skipped saying so: posted, its target would refuse it,
// and be left blocked by it.
func TestStartHeldBackWhoseStepIsGoneIsDropped(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, a, b, res := startHeldBackAt(t, eng, "hello")
		j := job("deploy", "a", "b")
		j.MaxParallelTargets = 1
		j.Steps[0].Name = "greet"
		if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		endRun(t, db, clk, a, res.Runs[0].RunID, muster.RunSucceeded)
		if err := db.ReleaseQueuedStarts(ctx); err != nil {
			t.Fatal(err)
		}
		var ops []muster.Operation
		for _, in := range must(db.PendingInstructions(ctx, b.ID, 0)) {
			ops = append(ops, in.Operation)
		}
		if want := []muster.Operation{muster.OpInsert}; !slices.Equal(ops, want) {
			t.Errorf("b has %v pending, want %v: the job's new version and no START", ops, want)
		}
		runs, err := db.FindRuns(ctx, catalog.RunFilter{Runs: []muster.RunRef{{Target: "b", RunID: res.Runs[1].RunID}}})
		if err != nil || len(runs) != 1 {
			t.Fatalf("b's run: %+v %v, want it recorded", runs, err)
		}
		want := `the START was held back by max_parallel_targets, and dropped before it was posted: job "deploy" (version 2) has no step "hello", where the run was to begin`
		if r := runs[0]; r.Status != muster.RunSkipped || r.Message != want {
			t.Errorf("b's run: %s %q, want skipped, saying %q", r.Status, r.Message, want)
		}
	})
}
