package e2e_test

import (
	"context"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/testenv"
)

// A target with an override runs the job on its own schedule: web2 fires
// every second, web1 keeps the job's schedule (the first of January) and
// does not run it. Disabling the job on web2 by its override is an UPDATE
// to web2 alone, which it applies.
func TestTargetRunsOnItsOwnSchedule(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1", "web2"}})
	ctx := context.Background()
	j := shellJob("tick", "echo $MUSTER_TARGET", "web1", "web2")
	j.Schedules = []muster.Schedule{{Name: "new-year", Cron: "0 0 1 1 *"}}
	j.Overrides = []muster.Override{{Target: "web2", Schedules: &[]muster.Schedule{{Name: "every-second", Cron: "* * * * * *"}}}}
	apply(t, env, j)
	settled(t, env)

	runsOn := func(target string) []muster.Run {
		runs, err := env.Client.History(ctx, "tick", target, 1000)
		if err != nil {
			t.Fatal(err)
		}
		return runs
	}
	testenv.Eventually(t, wait, "two scheduled runs on web2", func() bool { return len(runsOn("web2")) >= 2 })
	for _, r := range runsOn("web2") {
		if r.Trigger != muster.TriggerSchedule+":every-second" || r.Target != "web2" {
			t.Errorf("run %s on %s: trigger %q; want web2's own schedule every-second", r.RunID, r.Target, r.Trigger)
		}
	}
	// web1 holds the job on the job's own schedule and so has not run it.
	local, err := env.Target("web1").Main.LocalRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(local) + len(runsOn("web1")); n != 0 {
		t.Errorf("web1 ran the job %d time(s), want none: its schedule is the first of January", n)
	}

	// Disabled on web2 by its override, the job stops firing there; the
	// change goes to web2 alone, as an UPDATE.
	off := false
	j.Overrides[0].Enabled = &off
	res := apply(t, env, j)
	if got := res.Changes[0].Instructions; len(got) != 1 || got[0] != "UPDATE web2" {
		t.Errorf("disabling on web2 posted %v, want [UPDATE web2]", got)
	}
	settled(t, env)
	if local, _ = env.Target("web1").Main.LocalRuns(ctx); len(local) != 0 {
		t.Errorf("web1 ran the job %d time(s) after web2's override changed, want none", len(local))
	}
}
