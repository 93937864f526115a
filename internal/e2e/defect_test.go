package e2e_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agent"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/testenv"
)

func targetCfg(env *testenv.Env, name string) agent.Config {
	cfg := agent.DefaultConfig()
	cfg.DataDir = filepath.Join(env.Dir, "target-"+name)
	cfg.Logger = env.Log
	return cfg
}

// A graceful defect of a running target cancels and records its running
// run, sends the spool, tells the master, and empties the data directory;
// the master keeps the target's history, and the name can enlist again.
func TestGracefulDefectOfARunningTarget(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1", "web2"}})
	ctx := context.Background()
	apply(t, env, shellJob("slow", "sleep 30", "web1", "web2"), shellJob("quick", "echo hi", "web1"))
	settled(t, env)
	startAndWait(t, env, "quick")
	res, err := env.Client.StartJob(ctx, "slow", httpTargets("web1"))
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, "the slow run to be running", func() bool {
		runs, _ := env.Client.Runs(ctx, res.Refs()[:1], 0)
		return len(runs) == 1 && runs[0].Status == muster.RunRunning
	})

	out, err := agent.Defect(ctx, targetCfg(env, "web1"), false)
	if err != nil {
		t.Fatal(err)
	}
	if out.JobsDeleted != 2 || out.RunsCanceled != 1 || !out.MasterTold || out.RunsLost != 0 {
		t.Errorf("defect result %+v, want 2 jobs deleted, 1 run canceled, the master told, nothing lost", out)
	}
	// The daemon stopped itself.
	tg := env.Target("web1")
	waitExit(t, tg)

	runs, _ := env.Client.Runs(ctx, res.Refs()[:1], 0)
	if len(runs) != 1 || runs[0].Status != muster.RunCanceled {
		t.Errorf("the running run was recorded %+v, want canceled", runs)
	}
	targets, _ := env.Client.Targets(ctx, "")
	if len(targets) != 1 || targets[0].Name != "web2" {
		t.Errorf("targets after the defect: %+v, want only web2", targets)
	}
	if hist, _ := env.Client.History(ctx, "quick", "web1", 10); len(hist) != 1 {
		t.Errorf("web1's history after the defect: %d runs, want 1 (kept)", len(hist))
	}
	job, _ := env.Client.Job(ctx, "slow")
	if !slices.Equal(job.Targets, []string{"web2"}) {
		t.Errorf("job slow runs on %v, want [web2]", job.Targets)
	}
	for _, f := range []string{"key.pem", "cert.pem", "ca.pem"} {
		if _, err := os.Stat(filepath.Join(env.Dir, "target-web1", f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still in the data directory", f)
		}
	}

	// The name and the data directory can enlist again.
	env.AddTarget("web1")
	if tgs, _ := env.Client.Targets(ctx, ""); len(tgs) != 2 {
		t.Errorf("%d targets after re-enlisting, want 2", len(tgs))
	}
}

// With the master gone, a defect refuses without --force and changes
// nothing; with --force it defects locally.
func TestForcedDefectWithTheMasterDown(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	ctx := context.Background()
	apply(t, env, shellJob("a", "true", "web1"))
	settled(t, env)
	env.Target("web1").Stop(t)
	env.StopMaster()

	short, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := agent.Defect(short, targetCfg(env, "web1"), false); err == nil || !strings.Contains(err.Error(), "run again with --force to defect anyway") {
		t.Fatalf("a graceful defect with the master down: %v, want it refused, advising --force", err)
	}
	if _, err := os.Stat(filepath.Join(env.Dir, "target-web1", "cert.pem")); err != nil {
		t.Fatalf("a failed defect changed the data directory: %v", err)
	}
	res, err := agent.Defect(short, targetCfg(env, "web1"), true)
	if err != nil {
		t.Fatal(err)
	}
	if res.MasterTold || res.JobsDeleted != 1 {
		t.Errorf("forced defect %+v, want 1 job deleted and the master not told", res)
	}

	// The operator finishes on the master; the name is free again.
	env.RestartMaster()
	if err := env.Client.DeleteTarget(ctx, "web1", true); err != nil {
		t.Fatal(err)
	}
	env.AddTarget("web1")
}

// A target deleted on the master while it is offline collects its DEFECT
// when it returns, defects itself, and the tombstone goes.
func TestDeletedOfflineTargetDefectsWhenItReturns(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	ctx := context.Background()
	apply(t, env, shellJob("a", "true", "web1"))
	settled(t, env)
	env.Target("web1").Stop(t)

	if err := env.Client.DeleteTarget(ctx, "web1", false); err != nil {
		t.Fatal(err)
	}
	tg, err := env.Client.Target(ctx, "web1")
	if err != nil || !slices.Contains(tg.Flags, muster.FlagDeleted) {
		t.Fatalf("after delete: %+v %v, want a tombstone flagged deleted", tg, err)
	}
	// The tombstone's name cannot enlist again yet.
	tok := env.Token("web1")
	if _, err := agent.Enlist(ctx, agent.EnlistOptions{MasterURL: env.Master.URL, Token: tok, Name: "web1", DataDir: t.TempDir()}); muster.ErrorCode(err) != muster.ECONFLICT {
		t.Errorf("enlisting over a tombstone: %v, want a conflict", err)
	}

	back := env.StartTarget("web1")
	waitExit(t, back)
	// The tombstone is gone: web1 is shown as a target that left, and
	// how.
	gone, err := env.Client.Target(ctx, "web1")
	if err != nil || gone.Status != muster.StatusDefected || gone.DefectedAt == nil ||
		!strings.HasSuffix(gone.Departure, ", then collected its DEFECT") {
		t.Errorf("after the target defected: %s, defected at %v, %q, %v; want it defected after collecting its DEFECT",
			gone.Status, gone.DefectedAt, gone.Departure, err)
	}
	if live, err := env.Client.Targets(ctx, ""); err != nil || len(live) != 0 {
		t.Errorf("enlisted targets after it defected: %+v %v, want none", live, err)
	}
	env.AddTarget("web1")
}

// waitExit waits for a target daemon to stop because it defected.
func waitExit(t *testing.T, tg *testenv.Target) {
	t.Helper()
	select {
	case <-tg.Exited():
		if !errors.Is(tg.Err(), agent.ErrDefected) {
			t.Fatalf("the daemon stopped with %v, want ErrDefected", tg.Err())
		}
		tg.Stop(t)
	case <-time.After(wait):
		t.Fatal("the daemon did not stop after defecting")
	}
}

func httpTargets(names ...string) httpapi.StartBody { return httpapi.StartBody{Targets: names} }

// A graceful defect refused because the master cannot be reached changes
// nothing on a running target: its run carries on.
func TestRefusedDefectLeavesARunningTargetAlone(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	ctx := context.Background()
	apply(t, env, shellJob("slow", "sleep 30", "web1"))
	settled(t, env)
	res, err := env.Client.StartJob(ctx, "slow", httpTargets())
	if err != nil {
		t.Fatal(err)
	}
	tg := env.Target("web1")
	testenv.Eventually(t, wait, "the run to be running", func() bool {
		runs, _ := tg.Main.LocalRuns(ctx)
		return len(runs) == 1 && runs[0].Status == muster.RunRunning && len(runs[0].Steps) == 1
	})
	env.StopMaster()
	if _, err := agent.Defect(ctx, targetCfg(env, "web1"), false); err == nil || !strings.Contains(err.Error(), "run again with --force to defect anyway") {
		t.Fatalf("a graceful defect with the master down: %v, want it refused, advising --force", err)
	}
	runs, _ := tg.Main.LocalRuns(ctx)
	if len(runs) != 1 || runs[0].RunID != res.Runs[0].RunID || runs[0].Status != muster.RunRunning {
		t.Errorf("after the refused defect: %+v, want the run still running", runs)
	}
	select {
	case <-tg.Exited():
		t.Error("the daemon stopped after a refused defect")
	default:
	}
}
