package e2e_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/testenv"
)

// A job scheduled every second keeps running on its target while the master
// is stopped, and every run arrives at the master exactly once after it
// returns.
func TestSchedulesRunThroughAMasterOutage(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	ctx := context.Background()
	j := shellJob("tick", "echo $MUSTER_SCHEDULED_AT", "web1")
	j.Schedules = []muster.Schedule{{Name: "every-second", Cron: "* * * * * *"}}
	apply(t, env, j)
	settled(t, env)

	tg := env.Target("web1")
	countLocal := func() int {
		runs, err := tg.Main.LocalRuns(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(runs)
	}
	testenv.Eventually(t, wait, "a first scheduled run", func() bool { return countLocal() >= 1 })

	took := env.StopMaster()
	t.Logf("master stopped in %s", took)
	during := countLocal()
	testenv.Eventually(t, wait, "three more runs with the master down", func() bool { return countLocal() >= during+3 })
	env.RestartMaster()

	// Disable the job so the set of runs stops growing, then compare.
	if _, err := env.Client.SetJobEnabled(ctx, "tick", false); err != nil {
		t.Fatal(err)
	}
	settled(t, env)
	var local []string
	testenv.Eventually(t, wait, "every spooled run on the master", func() bool {
		runs, _ := tg.Main.LocalRuns(ctx)
		local = local[:0]
		for _, r := range runs {
			if r.Status.Finished() && r.Uploaded {
				local = append(local, r.RunID)
			}
		}
		if len(local) != len(runs) {
			return false
		}
		hist, err := env.Client.History(ctx, "tick", "", 10000)
		return err == nil && len(hist) == len(local)
	})
	hist, _ := env.Client.History(ctx, "tick", "", 10000)
	var remote []string
	seen := map[string]bool{}
	var fires []time.Time
	for _, r := range hist {
		if seen[r.RunID] {
			t.Errorf("run %s recorded twice", r.RunID)
		}
		seen[r.RunID] = true
		remote = append(remote, r.RunID)
		if r.Status != muster.RunSucceeded {
			t.Errorf("run %s: %s %q", r.RunID, r.Status, r.Message)
		}
		at, err := time.Parse(time.RFC3339, r.Steps[0].Output[:len(r.Steps[0].Output)-1])
		if err != nil {
			t.Fatalf("MUSTER_SCHEDULED_AT %q: %v", r.Steps[0].Output, err)
		}
		fires = append(fires, at)
	}
	slices.Sort(local)
	slices.Sort(remote)
	if !slices.Equal(local, remote) {
		t.Errorf("the master has %d runs, the target recorded %d", len(remote), len(local))
	}
	// Consecutive seconds: no fire lost while the master was away.
	slices.SortFunc(fires, func(a, b time.Time) int { return a.Compare(b) })
	for i := 1; i < len(fires); i++ {
		if d := fires[i].Sub(fires[i-1]); d != time.Second {
			t.Errorf("fires %s and %s are %s apart, want 1s", fires[i-1], fires[i], d)
		}
	}
}

// With the spool full, a target keeps the newest runs, counts the dropped
// ones, and tells the master at its next poll.
func TestSpoolKeepsTheNewestRunsWhenFull(t *testing.T) {
	env := testenv.New(t, testenv.Options{
		Targets: []string{"web1"},
		Target:  func(c *targetConfig) { c.Settings.SpoolLimit = 2 },
	})
	ctx := context.Background()
	j := shellJob("tick", "true", "web1")
	j.Schedules = []muster.Schedule{{Cron: "* * * * * *"}}
	apply(t, env, j)
	settled(t, env)
	env.StopMaster()
	tg := env.Target("web1")
	testenv.Eventually(t, wait, "runs to be dropped from the full spool", func() bool {
		depth, dropped := tg.Main.SpoolStats(ctx)
		return depth == 2 && dropped >= 1
	})
	local, _ := tg.Main.LocalRuns(ctx)
	env.RestartMaster()
	testenv.Eventually(t, wait, "the drop count on the master", func() bool {
		got, err := env.Client.Target(ctx, "web1")
		return err == nil && got.SpoolDropped > 0
	})
	// The newest of the runs kept through the outage reach the master.
	newest := local[len(local)-1]
	testenv.Eventually(t, wait, "the newest spooled run on the master", func() bool {
		runs, _ := env.Client.Runs(ctx, []muster.RunRef{{Target: newest.Target, RunID: newest.RunID}}, 0)
		return len(runs) == 1
	})
	// The target raised spool_full while the master was away, and kept it
	// until it could forward it.
	testenv.Eventually(t, wait, "spool_full forwarded", func() bool {
		evs := eventsOf(t, env, muster.EventSpoolFull, "web1")
		return len(evs) > 0 && evs[0].Source == muster.SourceTarget
	})
}

// A running step's output can be read on the master while it runs.
func TestOutputStreamsWhileAStepRuns(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	ctx := context.Background()
	apply(t, env, shellJob("chatty", "echo first; sleep 30", "web1"))
	settled(t, env)
	res, err := env.Client.StartJob(ctx, "chatty", httpTargets())
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, "the first line on the master while the step runs", func() bool {
		runs, _ := env.Client.Runs(ctx, res.Refs()[:1], 0)
		return len(runs) == 1 && runs[0].Status == muster.RunRunning && len(runs[0].Steps) == 1 && runs[0].Steps[0].Output == "first\n"
	})
}
