package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// rolloutFleet enlists targets web1…webN and applies job deploy on them.
func rolloutFleet(t *testing.T, db *catalog.Catalog, n int) map[string]catalog.TargetIdentity {
	t.Helper()
	ids := map[string]catalog.TargetIdentity{}
	var names []string
	for i := range n {
		name := fmt.Sprintf("web%d", i+1)
		ids[name] = enlist(t, db, name)
		names = append(names, name)
	}
	if _, err := db.ApplyJobs(context.Background(), []muster.Job{job("deploy", names...)}, catalog.ApplyOptions{}, admin); err != nil {
		t.Fatal(err)
	}
	return ids
}

// startedOn returns the targets a START of deploy was posted to, and the
// run id of each.
func startedOn(t *testing.T, db *catalog.Catalog) map[string]string {
	t.Helper()
	starts, err := db.FindInstructions(context.Background(), catalog.InstructionFilter{Operation: muster.OpStart})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, in := range starts {
		if _, dup := out[in.Target]; dup {
			t.Errorf("%s got a second START", in.Target)
		}
		out[in.Target] = startRunID(t, db, in.Target, in.Seq)
	}
	return out
}

// endRun uploads the run of a rollout's target, ended with status.
func endRun(t *testing.T, db *catalog.Catalog, clk *clock, target catalog.TargetIdentity, runID string, status muster.RunStatus) {
	t.Helper()
	at := clk.Now()
	res, err := db.UpsertRuns(context.Background(), target, []catalog.RunUpload{{Revision: 1, Run: muster.Run{Job: "deploy",
		RunID: runID, Status: status, Trigger: "operator", StartedAt: at, FinishedAt: &at}}})
	if err != nil || !res[0].OK {
		t.Fatalf("upload of %s on %s: %+v %v", runID, target.Name, res, err)
	}
}

// oneRollout returns the job's only rollout.
func oneRollout(t *testing.T, db *catalog.Catalog) muster.Rollout {
	t.Helper()
	ros, err := db.FindRollouts(context.Background(), "deploy", 0)
	if err != nil || len(ros) != 1 {
		t.Fatalf("rollouts: %+v %v, want one", ros, err)
	}
	return ros[0]
}

// A rollout posts its waves in order, each only once every run of the one
// before has ended, with the run ids it chose, and ends done.
func TestRolloutPostsWavesInOrder(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		ids := rolloutFleet(t, db, 5)
		res, err := db.StartJob(ctx, catalog.StartRequest{Job: "deploy", Rollout: &muster.RolloutSpec{Batch: "2"}}, admin)
		if err != nil {
			t.Fatal(err)
		}
		ro := res.Rollout
		if ro == nil || ro.Waves != 3 || ro.WaveSize != 2 || ro.Wave != 1 || ro.State != muster.RolloutRunning {
			t.Fatalf("rollout: %+v, want running, wave 1 of 3 waves of 2", ro)
		}
		if got := len(res.Runs); got != 2 {
			t.Fatalf("%d runs started, want the first wave's 2", got)
		}
		want := [][]string{{"web1", "web2"}, {"web3", "web4"}, {"web5"}}
		posted := []string{}
		waves := 0
		for w, targets := range want {
			waves++
			posted = append(posted, targets...)
			started := startedOn(t, db)
			if got := slices.Sorted(maps.Keys(started)); !slices.Equal(got, posted) {
				t.Fatalf("before wave %d ends, STARTs posted to %v, want %v", w+1, got, posted)
			}
			ro := oneRollout(t, db)
			if ro.Wave != w+1 || ro.Started != len(posted) || ro.Succeeded != len(posted)-len(targets) {
				t.Errorf("wave %d: %+v", w+1, ro)
			}
			for i, name := range targets {
				rt := ro.Targets[slices.IndexFunc(ro.Targets, func(r muster.RolloutTarget) bool { return r.Target == name })]
				if rt.Wave != w+1 || rt.RunID != started[name] || rt.Status != muster.RolloutPosted {
					t.Errorf("%s: %+v, want posted in wave %d with run %s", name, rt, w+1, started[name])
				}
				endRun(t, db, clk, ids[name], started[name], muster.RunSucceeded)
				if i < len(targets)-1 && len(startedOn(t, db)) != len(posted) {
					t.Fatalf("a wave was posted while a run of wave %d was under way", w+1)
				}
			}
		}
		if waves != 3 {
			t.Fatalf("went through %d waves, want 3", waves)
		}
		ro = ptr(oneRollout(t, db))
		if ro.State != muster.RolloutDone || ro.Succeeded != 5 || ro.Failed != 0 || ro.EndedAt == nil {
			t.Errorf("at the end: %+v, want done with 5 succeeded", ro)
		}
		entries, err := auditOf(db, muster.AuditJobStart)
		if err != nil || len(entries) != 1 {
			t.Fatalf("audit: %+v %v", entries, err)
		}
		if got := entries[0].Changes[0]; !strings.Contains(got, "3 wave(s) of 2 target(s)") || len(entries[0].Targets) != 5 {
			t.Errorf("audit entry: %+v, want the rollout over 5 targets", entries[0])
		}
	})
}

// auditOf returns the audit entries of job deploy with an action.
func auditOf(db *catalog.Catalog, action string) ([]muster.AuditEntry, error) {
	entries, err := db.FindAudit(context.Background(), catalog.AuditFilter{Job: "deploy"})
	return slices.DeleteFunc(entries, func(e muster.AuditEntry) bool { return e.Action != action }), err
}

func ptr[T any](v T) *T { return &v }

// A rollout halts, with why, once more runs failed than it allows, and
// posts no more waves; allowing the failure, it goes on.
func TestRolloutHaltsOnFailures(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		for _, tc := range []struct {
			maxFailures int
			state       muster.RolloutState
			started     int
		}{
			{0, muster.RolloutHalted, 1},
			{1, muster.RolloutRunning, 2},
		} {
			t.Run(fmt.Sprintf("max_failures=%d", tc.maxFailures), func(t *testing.T) {
				ctx := context.Background()
				db, clk, _ := MustOpen(t, eng)
				ids := rolloutFleet(t, db, 3)
				if _, err := db.StartJob(ctx, catalog.StartRequest{Job: "deploy",
					Rollout: &muster.RolloutSpec{Batch: "1", MaxFailures: tc.maxFailures}}, admin); err != nil {
					t.Fatal(err)
				}
				endRun(t, db, clk, ids["web1"], startedOn(t, db)["web1"], muster.RunFailed)
				ro := oneRollout(t, db)
				if ro.State != tc.state || ro.Failed != 1 || len(startedOn(t, db)) != tc.started {
					t.Errorf("rollout %+v with %d STARTs, want %s with 1 failed and %d STARTs", ro, len(startedOn(t, db)), tc.state, tc.started)
				}
				if tc.state == muster.RolloutHalted && !strings.Contains(ro.Reason, "more than max_failures 0") {
					t.Errorf("reason %q, want it to name max_failures", ro.Reason)
				}
			})
		}
	})
}

// Stopping the job cancels its rollout: the next wave is never posted.
func TestRolloutCancelledByStop(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		ids := rolloutFleet(t, db, 2)
		if _, err := db.StartJob(ctx, catalog.StartRequest{Job: "deploy", Rollout: &muster.RolloutSpec{Batch: "50%"}}, admin); err != nil {
			t.Fatal(err)
		}
		ch, err := db.StopJob(ctx, "deploy", nil, admin)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"rollout 1 cancelled at wave 1/2: 1 target(s) not started"}; !slices.Equal(ch.Notes, want) {
			t.Errorf("the stop's notes: %q, want %q", ch.Notes, want)
		}
		endRun(t, db, clk, ids["web1"], startedOn(t, db)["web1"], muster.RunCanceled)
		if err := db.AdvanceRollouts(ctx); err != nil {
			t.Fatal(err)
		}
		ro := oneRollout(t, db)
		if ro.State != muster.RolloutCancelled || ro.Wave != 1 || !strings.Contains(ro.Reason, "stopped by admin") {
			t.Errorf("after stop: %+v, want cancelled at wave 1", ro)
		}
		if _, ok := startedOn(t, db)["web2"]; ok {
			t.Errorf("web2 was started after the stop")
		}
		entries := must(auditOf(db, muster.AuditJobStop))
		if len(entries) != 1 || !slices.Contains(entries[0].Changes, "rollout 1 cancelled at wave 1/2: 1 target(s) not started") {
			t.Errorf("stop's audit entry: %+v, want the rollout cancelled", entries)
		}
	})
}

// Deleting a job deletes its rollouts; a run of it uploaded later is
// recorded all the same.
func TestRolloutGoesWithItsJob(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		ids := rolloutFleet(t, db, 2)
		if _, err := db.StartJob(ctx, catalog.StartRequest{Job: "deploy", Rollout: &muster.RolloutSpec{Batch: "1"}}, admin); err != nil {
			t.Fatal(err)
		}
		runID := startedOn(t, db)["web1"]
		if _, err := db.DeleteJob(ctx, "deploy", admin); err != nil {
			t.Fatal(err)
		}
		endRun(t, db, clk, ids["web1"], runID, muster.RunSucceeded)
		if err := db.AdvanceRollouts(ctx); err != nil {
			t.Fatal(err)
		}
		if ros := must(db.FindRollouts(ctx, "deploy", 0)); len(ros) != 0 {
			t.Errorf("rollouts of the deleted job: %+v, want none", ros)
		}
	})
}

// A START the target refused counts as a failed run, and the master's
// periodic look moves the rollout on without any run uploaded.
func TestRolloutCountsRefusedStart(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		ids := rolloutFleet(t, db, 2)
		res, err := db.StartJob(ctx, catalog.StartRequest{Job: "deploy", Rollout: &muster.RolloutSpec{Batch: "1", MaxFailures: 1}}, admin)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Ack(ctx, ids["web1"].ID, []catalog.AckRow{{Seq: res.Runs[0].Seq, Status: muster.InstructionFailed, Error: "disk full"}}); err != nil {
			t.Fatal(err)
		}
		if err := db.AdvanceRollouts(ctx); err != nil {
			t.Fatal(err)
		}
		ro := oneRollout(t, db)
		if ro.Wave != 2 || ro.Failed != 1 || ro.Targets[0].Status != muster.RolloutNotRun || !strings.Contains(ro.Targets[0].Message, "disk full") {
			t.Errorf("after the refusal: %+v, want wave 2 posted, web1 not run", ro)
		}
	})
}

// A retried start request (same idempotency key) makes no second rollout.
func TestRolloutIdempotent(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		rolloutFleet(t, db, 3)
		req := catalog.StartRequest{Job: "deploy", IdempotencyKey: "k1", Rollout: &muster.RolloutSpec{Batch: "1"}}
		first := must(db.StartJob(ctx, req, admin))
		again := must(db.StartJob(ctx, req, admin))
		if !again.Replayed || again.Rollout == nil || again.Rollout.ID != first.Rollout.ID {
			t.Errorf("retry: %+v, want the first rollout replayed", again)
		}
		if n := len(must(db.FindRollouts(ctx, "deploy", 0))); n != 1 {
			t.Errorf("%d rollouts, want 1", n)
		}
		if n := len(startedOn(t, db)); n != 1 {
			t.Errorf("%d STARTs, want the first wave's 1", n)
		}
		req.Rollout.Batch = "2"
		if _, err := db.StartJob(ctx, req, admin); muster.ErrorCode(err) != muster.ECONFLICT {
			t.Errorf("same key, other waves: %v, want %s", err, muster.ECONFLICT)
		}
	})
}

// A rollout's bad fields are refused naming the field and the rule, and
// nothing is written.
func TestRolloutValidation(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		rolloutFleet(t, db, 2)
		cases := []struct {
			spec muster.RolloutSpec
			want string
		}{
			{muster.RolloutSpec{Batch: "0"}, `rollout.batch: "0" is not a number of targets`},
			{muster.RolloutSpec{Batch: "-3"}, `rollout.batch: "-3" is not a number of targets`},
			{muster.RolloutSpec{Batch: ""}, `rollout.batch: "" is not a number of targets`},
			{muster.RolloutSpec{Batch: "ten"}, `rollout.batch: "ten" is not a number of targets`},
			{muster.RolloutSpec{Batch: "101%"}, `rollout.batch: "101%" is not a percentage above 0% and at most 100%`},
			{muster.RolloutSpec{Batch: "0%"}, `rollout.batch: "0%" is not a percentage`},
			{muster.RolloutSpec{Batch: "x%"}, `rollout.batch: "x%" is not a percentage`},
			{muster.RolloutSpec{Batch: "1", MaxFailures: -1}, `rollout.max_failures: -1 is negative`},
		}
		for _, tc := range cases {
			_, err := db.StartJob(ctx, catalog.StartRequest{Job: "deploy", IdempotencyKey: "k-" + tc.spec.Batch, Rollout: &tc.spec}, admin)
			if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%+v: %v, want %s %q", tc.spec, err, muster.EINVALID, tc.want)
			}
		}
		if n := len(must(db.FindRollouts(ctx, "deploy", 0))); n != 0 {
			t.Errorf("%d rollouts written, want none", n)
		}
		if n := len(startedOn(t, db)); n != 0 {
			t.Errorf("%d STARTs posted, want none", n)
		}
		if n := len(must(auditOf(db, muster.AuditJobStart))); n != 0 {
			t.Errorf("%d audit entries, want none", n)
		}
	})
}

// Two masters releasing a rollout's waves at once post each wave once:
// every target gets one START. The STARTs are refused, so that no upload
// moves the rollout on and both masters find the wave ended together.
func TestSharedRolloutWavePostedOnce(t *testing.T) {
	a, b, _ := twoMasters(t)
	ctx := context.Background()
	ids := rolloutFleet(t, a, 8)
	if _, err := a.StartJob(ctx, catalog.StartRequest{Job: "deploy", Rollout: &muster.RolloutSpec{Batch: "2", MaxFailures: 8}}, admin); err != nil {
		t.Fatal(err)
	}
	refused := map[string]bool{}
	rounds := 0
	for ; rounds < 4; rounds++ {
		starts, err := a.FindInstructions(ctx, catalog.InstructionFilter{Operation: muster.OpStart})
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range starts {
			if refused[in.Target] {
				continue
			}
			refused[in.Target] = true
			if _, err := a.Ack(ctx, ids[in.Target].ID, []catalog.AckRow{{Seq: in.Seq, Status: muster.InstructionFailed, Error: "no"}}); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		for _, c := range []*catalog.Catalog{a, b, a, b} {
			wg.Go(func() {
				if err := c.AdvanceRollouts(ctx); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	if rounds != 4 {
		t.Fatalf("%d rounds, want 4", rounds)
	}
	if got := len(startedOn(t, a)); got != 8 {
		t.Errorf("%d targets started, want 8", got)
	}
	if ro := oneRollout(t, a); ro.State != muster.RolloutDone || ro.Failed != 8 {
		t.Errorf("at the end: %+v, want done with 8 failed", ro)
	}
}

// A target deleted, or taken out of the job, before its wave is posted is
// not started: no START is posted to a target that will never collect it
// or run the job, the rollout counts it not run, saying why, and goes on
// to the next wave at once instead of waiting for the START to expire.
func TestRolloutSkipsATargetGoneBeforeItsWave(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		for _, how := range []string{"deleted", "forgotten", "taken out of the job"} {
			t.Run(how, func(t *testing.T) {
				ctx := context.Background()
				db, clk, _ := MustOpen(t, eng)
				ids := rolloutFleet(t, db, 3)
				if _, err := db.StartJob(ctx, catalog.StartRequest{Job: "deploy", Rollout: &muster.RolloutSpec{Batch: "1", MaxFailures: 1}}, admin); err != nil {
					t.Fatal(err)
				}
				var err error
				switch how {
				case "deleted":
					err = db.DeleteTarget(ctx, "web2", false, admin)
				case "forgotten":
					err = db.DeleteTarget(ctx, "web2", true, admin)
				default:
					_, err = db.ApplyJobs(ctx, []muster.Job{job("deploy", "web1", "web3")}, catalog.ApplyOptions{}, admin)
				}
				if err != nil {
					t.Fatal(err)
				}
				endRun(t, db, clk, ids["web1"], startedOn(t, db)["web1"], muster.RunSucceeded)
				if err := db.AdvanceRollouts(ctx); err != nil {
					t.Fatal(err)
				}
				started := startedOn(t, db)
				if _, ok := started["web2"]; ok {
					t.Errorf("a START was posted to web2, %s before its wave", how)
				}
				ro := oneRollout(t, db)
				web2 := ro.Targets[1]
				if ro.Wave != 3 || ro.Failed != 1 || web2.Status != muster.RolloutNotRun || web2.Message != catalog.RolloutTargetGone {
					t.Errorf("rollout at wave %d/%d with %d failed, web2 %s %q; want wave 3 posted at once, web2 %s: %q",
						ro.Wave, ro.Waves, ro.Failed, web2.Status, web2.Message, muster.RolloutNotRun, catalog.RolloutTargetGone)
				}
				if _, ok := started["web3"]; !ok {
					t.Errorf("web3 was not started: %v", started)
				}
			})
		}
	})
}

// A target gone before its wave counts against max_failures before the
// wave starts: with none allowed, the rollout halts, saying which target
// went, and the wave's others are not started.
func TestRolloutHaltsOnATargetGoneBeforeItsWave(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		ids := rolloutFleet(t, db, 3)
		if _, err := db.StartJob(ctx, catalog.StartRequest{Job: "deploy", Rollout: &muster.RolloutSpec{Batch: "2"}}, admin); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteTarget(ctx, "web3", true, admin); err != nil {
			t.Fatal(err)
		}
		started := startedOn(t, db)
		endRun(t, db, clk, ids["web1"], started["web1"], muster.RunSucceeded)
		endRun(t, db, clk, ids["web2"], started["web2"], muster.RunSucceeded)
		ro := oneRollout(t, db)
		if ro.State != muster.RolloutHalted || ro.Wave != 1 || !strings.Contains(ro.Reason, "web3 of wave 2 deleted or taken out of the job") {
			t.Errorf("rollout %s at wave %d/%d (%q), want halted at wave 1 naming web3", ro.State, ro.Wave, ro.Waves, ro.Reason)
		}
		if n := len(startedOn(t, db)); n != 2 {
			t.Errorf("%d STARTs, want wave 1's 2", n)
		}
	})
}

// A rollout that begins at a step (--step) halts before its next wave when
// the job, applied again meanwhile, no longer has that step: the wave's
// targets would each refuse the START, and be left blocked by it.
func TestRolloutHaltsWhenItsStepIsGone(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		ids := rolloutFleet(t, db, 3)
		if _, err := db.StartJob(ctx, catalog.StartRequest{Job: "deploy", Step: "hello", Rollout: &muster.RolloutSpec{Batch: "1", MaxFailures: 2}}, admin); err != nil {
			t.Fatal(err)
		}
		renamed := job("deploy", "web1", "web2", "web3")
		renamed.Steps[0].Name = "greet"
		if _, err := db.ApplyJobs(ctx, []muster.Job{renamed}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		endRun(t, db, clk, ids["web1"], startedOn(t, db)["web1"], muster.RunSucceeded)
		if err := db.AdvanceRollouts(ctx); err != nil {
			t.Fatal(err)
		}
		if started := startedOn(t, db); len(started) != 1 {
			t.Errorf("STARTs posted to %v, want only wave 1's web1", slices.Sorted(maps.Keys(started)))
		}
		ro := oneRollout(t, db)
		want := `job "deploy" (version 2) has no step "hello", where the rollout begins: wave 2/3 not started`
		if ro.State != muster.RolloutHalted || ro.Wave != 1 || ro.Reason != want {
			t.Errorf("rollout %s at wave %d/%d (%q), want halted at wave 1: %q", ro.State, ro.Wave, ro.Waves, ro.Reason, want)
		}
	})
}

// A target that collected its START and died before its run was recorded
// stalls its wave; deleting it (as the runbook says) ends that: the
// rollout counts its run not run, a failure, and goes on.
func TestRolloutGoesOnPastADeletedTargetsRun(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		for _, force := range []bool{false, true} {
			t.Run(fmt.Sprintf("force=%v", force), func(t *testing.T) {
				ctx := context.Background()
				db, _, _ := MustOpen(t, eng)
				ids := rolloutFleet(t, db, 2)
				res, err := db.StartJob(ctx, catalog.StartRequest{Job: "deploy", Rollout: &muster.RolloutSpec{Batch: "1", MaxFailures: 1}}, admin)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := db.Ack(ctx, ids["web1"].ID, []catalog.AckRow{{Seq: res.Runs[0].Seq, Status: muster.InstructionDownloaded}}); err != nil {
					t.Fatal(err)
				}
				if err := db.DeleteTarget(ctx, "web1", force, admin); err != nil {
					t.Fatal(err)
				}
				if err := db.AdvanceRollouts(ctx); err != nil {
					t.Fatal(err)
				}
				ro := oneRollout(t, db)
				web1 := ro.Targets[0]
				if ro.Wave != 2 || ro.Failed != 1 || web1.Status != muster.RolloutNotRun || web1.Message != catalog.RolloutRunLost {
					t.Errorf("rollout at wave %d/%d with %d failed, web1 %s %q; want wave 2 posted, web1 %s: %q",
						ro.Wave, ro.Waves, ro.Failed, web1.Status, web1.Message, muster.RolloutNotRun, catalog.RolloutRunLost)
				}
			})
		}
	})
}

// A second rollout of a job while one is running is refused, naming the
// running one: both would start every target, each target running the job
// twice (as when the command following a rollout is interrupted and run
// again). Once the first has ended, another may start.
func TestRolloutRefusedWhileOneRuns(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		rolloutFleet(t, db, 3)
		req := catalog.StartRequest{Job: "deploy", Rollout: &muster.RolloutSpec{Batch: "1"}}
		if _, err := db.StartJob(ctx, req, admin); err != nil {
			t.Fatal(err)
		}
		_, err := db.StartJob(ctx, req, admin)
		if muster.ErrorCode(err) != muster.ECONFLICT || !strings.Contains(err.Error(), "job \"deploy\" has rollout 1 running, at wave 1/3") {
			t.Errorf("a second rollout: %v, want %s naming rollout 1", err, muster.ECONFLICT)
		}
		if n := len(must(db.FindRollouts(ctx, "deploy", 0))); n != 1 {
			t.Errorf("%d rollouts, want 1", n)
		}
		if n := len(startedOn(t, db)); n != 1 {
			t.Errorf("%d STARTs, want the first rollout's 1", n)
		}
		if _, err := db.StopJob(ctx, "deploy", nil, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.StartJob(ctx, req, admin); err != nil {
			t.Errorf("a rollout after the first was cancelled: %v", err)
		}
	})
}

// Two masters starting a rollout of one job at once: one starts, the
// other is refused.
func TestSharedRolloutStartsOnce(t *testing.T) {
	a, b, _ := twoMasters(t)
	ctx := context.Background()
	rolloutFleet(t, a, 4)
	for range 5 {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, c := range []*catalog.Catalog{a, b} {
			wg.Go(func() {
				_, errs[i] = c.StartJob(ctx, catalog.StartRequest{Job: "deploy", Rollout: &muster.RolloutSpec{Batch: "2"}}, admin)
			})
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) || muster.ErrorCode(errors.Join(errs...)) != muster.ECONFLICT {
			t.Fatalf("two rollouts at once: %v, %v; want one started, the other refused", errs[0], errs[1])
		}
		if _, err := a.StopJob(ctx, "deploy", nil, admin); err != nil {
			t.Fatal(err)
		}
	}
}

// Stopping the job on some of its targets stops those runs only (a run
// that hangs, say): the rollout goes on, counting them failed. Stopping it
// everywhere cancels the rollout.
func TestRolloutGoesOnPastAStopOnOneTarget(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		ids := rolloutFleet(t, db, 3)
		if _, err := db.StartJob(ctx, catalog.StartRequest{Job: "deploy", Rollout: &muster.RolloutSpec{Batch: "2", MaxFailures: 1}}, admin); err != nil {
			t.Fatal(err)
		}
		ch, err := db.StopJob(ctx, "deploy", []string{"web1"}, admin)
		if err != nil {
			t.Fatal(err)
		}
		if len(ch.Notes) != 0 {
			t.Errorf("the stop on web1 says %q, want nothing cancelled", ch.Notes)
		}
		started := startedOn(t, db)
		endRun(t, db, clk, ids["web1"], started["web1"], muster.RunCanceled)
		endRun(t, db, clk, ids["web2"], started["web2"], muster.RunSucceeded)
		if ro := oneRollout(t, db); ro.State != muster.RolloutRunning || ro.Wave != 2 || ro.Failed != 1 {
			t.Errorf("rollout %s at wave %d/%d with %d failed (%s), want running at wave 2 with web1's run failed", ro.State, ro.Wave, ro.Waves, ro.Failed, ro.Reason)
		}
		if _, err := db.Post(ctx, catalog.PostRequest{Operation: muster.OpStop, Job: "deploy", Targets: []string{"web3"}}, admin); err != nil {
			t.Fatal(err)
		}
		if ro := oneRollout(t, db); ro.State != muster.RolloutRunning {
			t.Errorf("after a STOP posted to web3: rollout %s, want running", ro.State)
		}
		if _, err := db.StopJob(ctx, "deploy", nil, admin); err != nil {
			t.Fatal(err)
		}
		if ro := oneRollout(t, db); ro.State != muster.RolloutCancelled {
			t.Errorf("after the job was stopped: rollout %s, want cancelled", ro.State)
		}
	})
}
