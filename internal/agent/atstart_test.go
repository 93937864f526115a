package agent

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
)

// At-start schedules fire from what the master holds for the target when
// the target starts: a job disabled on the master while the target was
// down does not run at its start. With the master down, they fire from
// the target's own copy, as every schedule does.
func TestAtStartFollowsChangesMadeWhileTheTargetWasDown(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		masterDown bool
		want       map[string]int // startup runs by job after the restart
	}{
		{"master up", false, map[string]int{"marker": 1}},
		{"master down", true, map[string]int{"marker": 1, "boot": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm := startTestMaster(t)
			dir := t.TempDir()
			m := tm.enlistIn(t, "web1", dir)
			stop := runTarget(t, m)
			var jobs []muster.Job
			for _, name := range []string{"boot", "marker"} {
				j := shellJob(name, []string{"web1"}, "true")
				j.Schedules = []muster.Schedule{{Name: "start", AtStart: true}}
				jobs = append(jobs, j)
			}
			tm.apply(t, jobs...)
			tm.settled(t)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			m.Close()
			// While the target is down, the job is disabled; then the
			// master goes down too, or not.
			if tc.masterDown {
				tm.halt(t)
			} else if _, err := tm.api.SetJobEnabled(ctx, "boot", false); err != nil {
				t.Fatal(err)
			}
			restarted := time.Now()
			m = openTarget(t, dir)
			runTarget(t, m)
			startups := func() map[string]int {
				runs, err := m.LocalRuns(ctx)
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]int{}
				for _, r := range runs {
					if strings.HasPrefix(r.Trigger, muster.TriggerStartup+":") && !r.StartedAt.Before(restarted.Truncate(time.Millisecond)) {
						got[r.Job]++
					}
				}
				return got
			}
			// Both jobs' at-start schedules are looked at together: once
			// the marker's has fired, the other's has, or will not.
			waitFor(t, time.Minute, "the marker's at-start run", func() bool { return startups()["marker"] > 0 })
			got := startups()
			if len(got) != len(tc.want) || got["marker"] != tc.want["marker"] || got["boot"] != tc.want["boot"] {
				t.Errorf("startup runs by job after the restart: %v, want %v", got, tc.want)
			}
		})
	}
}

// A missed fire a starting target would run late (misfire run_once) is
// not run when its job was disabled on the master while the target was
// down; it is recorded skipped, saying why, beside the other missed fires.
func TestLateFireOfAJobDisabledWhileTheTargetWasDown(t *testing.T) {
	ctx := context.Background()
	tm := startTestMaster(t)
	dir := t.TempDir()
	m := tm.enlistIn(t, "web1", dir)
	// The target went down with the job held since two hours ago: two
	// fires missed, the latest of which run_once would run.
	job := downWithAnHourlyJob(t, tm, m, muster.MisfireRunOnce)
	if _, err := tm.api.SetJobEnabled(ctx, job.Name, false); err != nil {
		t.Fatal(err)
	}
	m = openTarget(t, dir)
	runTarget(t, m)
	var runs []muster.Run
	waitFor(t, time.Minute, "both missed fires recorded", func() bool {
		local, err := m.LocalRuns(ctx)
		if err != nil {
			t.Fatal(err)
		}
		runs = runs[:0]
		for _, r := range local {
			if r.Job == job.Name {
				runs = append(runs, r.Run)
			}
		}
		return len(runs) >= 2
	})
	slices.SortFunc(runs, func(a, b muster.Run) int { return strings.Compare(a.Message, b.Message) })
	if len(runs) != 2 || runs[0].Status != muster.RunSkipped || runs[1].Status != muster.RunSkipped ||
		!strings.Contains(runs[0].Message, "1 scheduled fire(s) missed") || !strings.Contains(runs[1].Message, "changed on the master") {
		for _, r := range runs {
			t.Logf("%s %s", r.Status, r.Message)
		}
		t.Fatalf("%d runs of the job, want 2 skipped: one for the first missed fire, one saying the latest is not run since the job changed", len(runs))
	}
}
