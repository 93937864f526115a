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

// On the spring-forward day a fixed time inside the gap (02:30 does not
// exist in New York) fires once, at the first valid instant after it.
func TestDaylightSavingSpringForward(t *testing.T) {
	clock := &testenv.Clock{}
	clock.Set(time.Date(2027, 3, 14, 6, 59, 57, 0, time.UTC)) // 01:59:57 EST
	env := targetAt(t, clock)
	j := shellJob("nightly", "echo $MUSTER_SCHEDULED_AT", "web1")
	j.Schedules = []muster.Schedule{{Name: "half-past-two", Cron: "30 2 * * *"}}
	apply(t, env, j)
	settled(t, env)
	testenv.Eventually(t, wait, "the fire after the gap", func() bool { return len(scheduledRuns(t, env, "nightly")) == 1 })
	for clock.Now().Before(time.Date(2027, 3, 14, 7, 0, 2, 0, time.UTC)) {
		time.Sleep(50 * time.Millisecond) // let the target's clock pass 03:00:02 EDT
	}
	runs := scheduledRuns(t, env, "nightly")
	if len(runs) != 1 {
		t.Fatalf("%d runs, want 1", len(runs))
	}
	if got := strings.TrimSpace(runs[0].Steps[0].Output); got != "2027-03-14T03:00:00-04:00" {
		t.Errorf("fired for %s, want 2027-03-14T03:00:00-04:00 (the first instant after the gap)", got)
	}
}

// On the fall-back day a time that occurs twice (01:30 in New York) fires
// once, at its first occurrence, even across a restart in between.
func TestDaylightSavingFallBack(t *testing.T) {
	clock := &testenv.Clock{}
	clock.Set(time.Date(2027, 11, 7, 5, 29, 57, 0, time.UTC)) // 01:29:57 EDT
	env := targetAt(t, clock)
	j := shellJob("nightly", "echo $MUSTER_SCHEDULED_AT", "web1")
	j.Schedules = []muster.Schedule{{Name: "half-past-one", Cron: "30 1 * * *"}}
	apply(t, env, j)
	settled(t, env)
	testenv.Eventually(t, wait, "the first 01:30", func() bool { return len(scheduledRuns(t, env, "nightly")) == 1 })

	// Restart the target just before the second 01:30 (EST).
	env.Target("web1").Stop(t)
	clock.Set(time.Date(2027, 11, 7, 6, 29, 58, 0, time.UTC))
	env.StartTarget("web1")
	for clock.Now().Before(time.Date(2027, 11, 7, 6, 30, 3, 0, time.UTC)) {
		time.Sleep(50 * time.Millisecond)
	}
	settled(t, env)
	runs := scheduledRuns(t, env, "nightly")
	if len(runs) != 1 {
		t.Fatalf("%d runs, want 1: the repeated 01:30 must not fire again", len(runs))
	}
	if got := strings.TrimSpace(runs[0].Steps[0].Output); got != "2027-11-07T01:30:00-04:00" {
		t.Errorf("fired for %s, want the first occurrence, 2027-11-07T01:30:00-04:00", got)
	}
}

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
