package e2e_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/testenv"
)

// scheduledRuns returns the job's runs on the master.
func scheduledRuns(t *testing.T, env *testenv.Env, job string) []muster.Run {
	t.Helper()
	runs, err := env.Client.History(context.Background(), job, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

// targetAt starts an environment whose one target lives in New York with a
// clock a test sets.
func targetAt(t *testing.T, clock *testenv.Clock) *testenv.Env {
	return testenv.New(t, testenv.Options{
		Targets: []string{"web1"},
		Target: func(c *targetConfig) {
			c.Now = clock.Now
			c.Settings.TimeZone = "America/New_York"
		},
	})
}

// Daylight-saving transitions are tested on the target's scheduler itself,
// under testing/synctest (internal/agent/scheduler_test.go): its clock is
// the test's to move, where here it would have to be waited for.

// Fires missed while the target was down: with misfire skip they are
// recorded as one skipped run; with run_once the latest also runs, late.
func TestMisfirePolicies(t *testing.T) {
	clock := &testenv.Clock{}
	t0 := time.Date(2027, 1, 10, 10, 1, 0, 0, time.UTC)
	clock.Set(t0)
	env := targetAt(t, clock)
	skip := shellJob("skipper", "echo ran", "web1")
	skip.Schedules = []muster.Schedule{{Name: "ten", Cron: "*/10 * * * *"}}
	once := skip
	once.Name, once.Misfire = "catcher", muster.MisfireRunOnce
	apply(t, env, skip, once)
	settled(t, env)

	env.Target("web1").Stop(t)
	clock.Set(t0.Add(time.Hour + 30*time.Second)) // six fires missed, the last 90 s ago
	env.StartTarget("web1")

	testenv.Eventually(t, wait, "the missed fires recorded", func() bool {
		c := scheduledRuns(t, env, "catcher")
		return len(scheduledRuns(t, env, "skipper")) == 1 && len(c) == 2 && allDone(c)
	})
	s := scheduledRuns(t, env, "skipper")[0]
	if s.Status != muster.RunSkipped || !strings.Contains(s.Message, "6 scheduled fire(s) missed") || !strings.Contains(s.Message, "misfire policy: skip") {
		t.Errorf("skip: %s %q, want one skipped run for 6 missed fires", s.Status, s.Message)
	}
	var ran, skipped int
	for _, r := range scheduledRuns(t, env, "catcher") {
		switch {
		case r.Status == muster.RunSkipped && strings.Contains(r.Message, "5 scheduled fire(s) missed"):
			skipped++
		case r.Status == muster.RunSucceeded:
			ran++
		default:
			t.Errorf("run_once: unexpected run %s %q", r.Status, r.Message)
		}
	}
	if ran != 1 || skipped != 1 {
		t.Errorf("run_once: %d ran, %d skipped records; want the latest fire run once and the other 5 recorded skipped", ran, skipped)
	}
}
