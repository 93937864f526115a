package agent

import (
	"context"
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
