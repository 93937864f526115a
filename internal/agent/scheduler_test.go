package agent

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/schedule"
)

// bubble is a target's scheduler in a synctest bubble (scheduleBubble).
type bubble struct {
	m    *Main
	clk  clock  // the wall clock: the bubble's, offset
	stop func() // stops the scheduler and waits for its runs
	// silent makes the master silent when the scheduler starts: the
	// target waits startSyncWait for it. Otherwise the master answers at
	// once, with nothing new.
	silent bool
}

// start starts the scheduler, as a daemon starting does: it reads what the
// store holds.
func (b *bubble) start() {
	b.m.sched = newScheduler(b.m)
	if !b.silent {
		b.m.sched.heardMaster()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.m.sched.run(ctx, nil) }()
	b.stop = func() { cancel(); <-done; b.m.exec.wait() }
}

// restart stops the scheduler and starts it again, as a restarted daemon
// would.
func (b *bubble) restart() { b.stop(); b.start() }

// scheduleBubble runs a target's scheduler over one job in a synctest
// bubble, whose wall clock starts at start, in New York; the target has
// held the job since held (zero: since start). drive moves time on with
// time.Sleep, which the bubble runs at once, and may restart the
// scheduler or step the wall clock (b.clk.Advance), as NTP or a resumed VM
// may, while the monotonic clock runs on. It returns the runs recorded,
// oldest first.
func scheduleBubble(t *testing.T, job muster.Job, start, held time.Time, drive func(b *bubble)) []muster.Run {
	t.Helper()
	var recorded []muster.Run
	synctest.Test(t, func(t *testing.T) {
		b := &bubble{}
		b.clk.Advance(time.Until(start))
		b.m = newTestMain(t, func(c *Config) { c.Now = b.clk.Now })
		m := b.m
		ny, err := time.LoadLocation("America/New_York")
		if err != nil {
			t.Fatal(err)
		}
		m.loc, m.tzName = ny, "America/New_York"
		ctx := context.Background()
		if held.IsZero() {
			held = start
		}
		if err := m.store.update(ctx, func(tx *sql.Tx) error { return putJob(ctx, tx, job, held) }); err != nil {
			t.Fatal(err)
		}
		b.start()
		drive(b)
		synctest.Wait()
		b.stop()
		local, err := m.store.localRuns(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range local {
			recorded = append(recorded, r.Run)
		}
	})
	return recorded
}

// scheduledEcho is a job that prints the time it was scheduled for.
func scheduledEcho(cron string) muster.Job {
	j := flowJob("nightly", muster.Step{Name: "main", Shell: "echo $MUSTER_SCHEDULED_AT"})
	j.Schedules = []muster.Schedule{{Name: "nightly", Cron: cron}}
	return j
}

// On the spring-forward day a time inside the gap (02:30 does not exist in
// New York) fires once, at the first valid instant after it.
func TestDaylightSavingSpringForward(t *testing.T) {
	start := time.Date(2027, 3, 14, 6, 59, 57, 0, time.UTC) // 01:59:57 EST
	runs := scheduleBubble(t, scheduledEcho("30 2 * * *"), start, time.Time{}, func(*bubble) {
		time.Sleep(time.Hour) // to 02:59:57 EDT, past the gap and the fire
	})
	if len(runs) != 1 {
		t.Fatalf("%d runs, want 1", len(runs))
	}
	if got := runs[0].Steps[0].Output; got != "2027-03-14T03:00:00-04:00\n" {
		t.Errorf("fired for %q, want 2027-03-14T03:00:00-04:00 (the first instant after the gap)", got)
	}
}

// On the fall-back day a time that occurs twice (01:30 in New York) fires
// once, at its first occurrence, even across a restart in between.
func TestDaylightSavingFallBack(t *testing.T) {
	start := time.Date(2027, 11, 7, 5, 29, 57, 0, time.UTC) // 01:29:57 EDT
	runs := scheduleBubble(t, scheduledEcho("30 1 * * *"), start, time.Time{}, func(b *bubble) {
		time.Sleep(time.Hour) // to 01:29:57 EST: the first 01:30 fired
		b.restart()           // just before the second 01:30
		time.Sleep(time.Minute)
	})
	if len(runs) != 1 {
		t.Fatalf("%d runs, want 1: the repeated 01:30 must not fire again", len(runs))
	}
	if got := runs[0].Steps[0].Output; got != "2027-11-07T01:30:00-04:00\n" {
		t.Errorf("fired for %q, want the first occurrence, 2027-11-07T01:30:00-04:00", got)
	}
}

// Fires missed while the target was not running: with misfire skip they
// are recorded as one skipped run; with run_once the latest also runs,
// late, and the others are recorded skipped.
func TestMisfirePolicies(t *testing.T) {
	held := time.Date(2027, 1, 10, 10, 1, 0, 0, time.UTC)
	start := held.Add(time.Hour + 30*time.Second) // six fires missed, the last 90 s ago
	for _, tc := range []struct {
		policy string
		want   []string // status: message start
	}{
		{muster.MisfireSkip, []string{"skipped: 6 scheduled fire(s) missed"}},
		{muster.MisfireRunOnce, []string{"skipped: 5 scheduled fire(s) missed", "succeeded: "}},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			j := scheduledEcho("*/10 * * * *")
			j.Misfire = tc.policy
			runs := scheduleBubble(t, j, start, held, func(*bubble) { time.Sleep(time.Second) })
			if len(runs) != len(tc.want) {
				t.Fatalf("%d runs, want %d", len(runs), len(tc.want))
			}
			// Recorded at one instant: in no particular order.
			slices.SortFunc(runs, func(a, b muster.Run) int { return strings.Compare(string(a.Status), string(b.Status)) })
			for i, want := range tc.want {
				if got := string(runs[i].Status) + ": " + runs[i].Message; !strings.HasPrefix(got, want) {
					t.Errorf("run %d: %q, want %q…", i+1, got, want)
				}
			}
			if !strings.Contains(runs[0].Message, "misfire policy: "+tc.policy) {
				t.Errorf("the skipped run does not name the policy: %q", runs[0].Message)
			}
		})
	}
}

// A paused target fires nothing, and the fires that fell in the pause are
// not run, nor counted as missed, when it resumes.
func TestPausedTargetFiresNothing(t *testing.T) {
	start := time.Date(2027, 1, 10, 10, 0, 30, 0, time.UTC)
	runs := scheduleBubble(t, scheduledEcho("* * * * *"), start, time.Time{}, func(b *bubble) {
		b.m.paused.Store(true)
		time.Sleep(5 * time.Minute)
		b.m.paused.Store(false)
		b.restart()
		time.Sleep(time.Minute)
	})
	if len(runs) != 1 || runs[0].Status != muster.RunSucceeded {
		t.Fatalf("runs %+v, want the one fire after the pause", runs)
	}
	if got := runs[0].Steps[0].Output; got != "2027-01-10T05:06:00-05:00\n" {
		t.Errorf("the run after the pause fired for %q", got)
	}
}

// The fires of one second are recorded in one transaction, which trims the
// spool once they are all in: to spool_limit, the oldest finished runs
// first, none that runs.
func TestFiresTrimTheSpoolOnce(t *testing.T) {
	m := newTestMain(t, func(c *Config) { c.Settings.SpoolLimit = 3 })
	ctx := context.Background()
	for i := range 5 {
		run := muster.Run{Job: "old", Target: "web1", RunID: fmt.Sprintf("old%d", i), Trigger: "operator", Status: muster.RunSucceeded,
			StartedAt: m.now().Add(time.Duration(i-10) * time.Second), Steps: []muster.StepAttempt{}}
		if err := m.store.saveRun(ctx, run, nil); err != nil {
			t.Fatal(err)
		}
	}
	var fs []firing
	for _, name := range []string{"a", "b"} {
		j := scheduledEcho("* * * * *")
		j.Name = name
		plan, err := schedule.Compile(j.Schedules[0], time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, firing{e: &entry{job: j, sched: j.Schedules[0], plan: plan}, at: m.now().Truncate(time.Minute)})
	}
	m.sched.fireAll(ctx, fs)
	m.exec.wait()
	var got []string
	runs, err := m.store.localRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		got = append(got, r.Job)
	}
	slices.Sort(got)
	if want := []string{"a", "b", "old"}; !slices.Equal(got, want) {
		t.Errorf("the spool holds runs of %v, want %v (the newest old run and both fires)", got, want)
	}
	if got := localRun(t, m, "old4"); got.Status != muster.RunSucceeded {
		t.Errorf("the newest old run is %s, want kept, succeeded", got.Status)
	}
	if n := m.store.spoolDropped(ctx); n != 4 {
		t.Errorf("the spool dropped %d runs, want 4", n)
	}
}

// The fires of an instant are recorded recordLead before it, and their
// steps start when it comes, not before; the next fire of the job too,
// though its run was running when the scheduler last looked.
func TestFireRecordedAheadStartsWhenDue(t *testing.T) {
	start := time.Date(2027, 1, 10, 10, 0, 30, 0, time.UTC)
	due := []time.Time{start.Add(30 * time.Second), start.Add(90 * time.Second)}
	var ahead [][]muster.Run
	runs := scheduleBubble(t, scheduledEcho("* * * * *"), start, time.Time{}, func(b *bubble) {
		for _, d := range due {
			time.Sleep(d.Sub(b.m.cfg.Now()) - recordLead/2)
			local, err := b.m.store.localRuns(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var rs []muster.Run
			for _, r := range local {
				rs = append(rs, r.Run)
			}
			ahead = append(ahead, rs)
		}
		time.Sleep(recordLead)
	})
	for i, rs := range ahead {
		if len(rs) != i+1 || rs[i].Status != muster.RunRunning || len(rs[i].Steps) != 0 {
			t.Fatalf("fire %d: runs %+v %s before it: want it recorded, running, no step yet", i+1, rs, recordLead/2)
		}
	}
	if len(runs) != len(due) {
		t.Fatalf("runs %+v, want the %d fires", runs, len(due))
	}
	for i, r := range runs {
		if len(r.Steps) != 1 || r.Steps[0].StartedAt.Before(due[i]) {
			t.Errorf("fire %d: steps %+v, want one started no sooner than %s", i+1, r.Steps, due[i])
		}
		if !r.StartedAt.Equal(due[i]) {
			t.Errorf("fire %d: the run started at %s, want when the fire was due, %s", i+1, r.StartedAt, due[i])
		}
	}
}

// A target that stops between recording a fire ahead and its instant ends
// the run canceled: its step never starts.
func TestFireRecordedAheadCanceledIfTheTargetStops(t *testing.T) {
	start := time.Date(2027, 1, 10, 10, 0, 30, 0, time.UTC)
	runs := scheduleBubble(t, scheduledEcho("* * * * *"), start, time.Time{}, func(*bubble) {
		time.Sleep(30*time.Second - recordLead/2)
	})
	if len(runs) != 1 {
		t.Fatalf("runs %+v, want the one fire recorded", runs)
	}
	r := runs[0]
	if r.Status != muster.RunCanceled || !strings.Contains(r.Message, errStoppedBeforeDue.Error()) {
		t.Errorf("the run is %s: %q, want canceled: %q", r.Status, r.Message, errStoppedBeforeDue)
	}
	if len(r.Steps) != 1 || r.Steps[0].Status != muster.AttemptCanceled || r.Steps[0].ExitCode != nil || r.Steps[0].Output != "" {
		t.Errorf("steps %+v, want one canceled that never ran", r.Steps)
	}
}

// The wall clock stepped forward while the scheduler sleeps towards a fire
// (NTP correcting a clock that was behind, a VM resumed) does not make the
// fire late: it runs when the wall clock reaches it.
func TestClockStepForwardFiresOnTime(t *testing.T) {
	start := time.Date(2027, 1, 10, 15, 30, 0, 0, time.UTC) // 10:30 EST; the fire at 11:00
	runs := scheduleBubble(t, scheduledEcho("0 * * * *"), start, time.Time{}, func(b *bubble) {
		time.Sleep(90 * time.Second)    // 10:31:30
		b.clk.Advance(20 * time.Minute) // 10:51:30, the fire 8.5 minutes away
		time.Sleep(38 * time.Minute)    // 11:29:30
	})
	if len(runs) != 1 || runs[0].Status != muster.RunSucceeded {
		t.Fatalf("runs %+v, want the 11:00 fire, succeeded", runs)
	}
	if got, want := runs[0].StartedAt, start.Add(30*time.Minute); !got.Equal(want) {
		t.Errorf("the fire started at %s, want %s", got, want)
	}
}

// A wall clock stepped forward past a fire, while the scheduler sleeps,
// makes the fire late, not missed: it runs at the scheduler's next look at
// the clock, within a minute of the step. The next hour's fire is on time.
func TestClockStepForwardPastAFireRunsItLate(t *testing.T) {
	start := time.Date(2027, 1, 10, 15, 30, 0, 0, time.UTC) // 10:30 EST; the fire at 11:00
	runs := scheduleBubble(t, scheduledEcho("0 * * * *"), start, time.Time{}, func(b *bubble) {
		time.Sleep(90 * time.Second)    // 10:31:30
		b.clk.Advance(29 * time.Minute) // 11:00:30, the fire stepped over
		time.Sleep(90 * time.Minute)    // 12:30:30
	})
	if got, want := summary(runs), []string{"schedule:nightly succeeded 11:01", "schedule:nightly succeeded 12:00"}; !slices.Equal(got, want) {
		t.Errorf("runs %v, want %v", got, want)
	}
}

// bootAndHourly is a job that runs when the target starts and every hour.
func bootAndHourly() muster.Job {
	j := scheduledEcho("0 * * * *")
	j.Schedules = append(j.Schedules, muster.Schedule{Name: "boot", AtStart: true})
	return j
}

// summary lists runs as trigger, status and start (New York time, to the
// minute), by start.
func summary(runs []muster.Run) []string {
	slices.SortFunc(runs, func(a, b muster.Run) int { return a.StartedAt.Compare(b.StartedAt) })
	var out []string
	for _, r := range runs {
		out = append(out, fmt.Sprintf("%s %s %s", r.Trigger, r.Status, r.StartedAt.Format("15:04")))
	}
	return out
}

// A held job whose stored definition cannot be read is skipped: the other
// jobs' schedules, at-start ones included, fire as ever.
func TestAJobThatCannotBeReadIsSkipped(t *testing.T) {
	start := time.Date(2027, 1, 10, 15, 30, 0, 0, time.UTC) // 10:30 EST
	runs := scheduleBubble(t, bootAndHourly(), start, time.Time{}, func(b *bubble) {
		time.Sleep(time.Minute)
		if _, err := b.m.store.write.Exec(`INSERT INTO jobs (name, version, definition, updated_at) VALUES ('broken', 1, '{"steps": 7}', 0)`); err != nil {
			t.Fatal(err)
		}
		b.restart() // 10:31
		time.Sleep(3 * time.Hour)
	})
	want := []string{"startup:boot succeeded 10:30", "startup:boot succeeded 10:31",
		"schedule:nightly succeeded 11:00", "schedule:nightly succeeded 12:00", "schedule:nightly succeeded 13:00"}
	if got := summary(runs); !slices.Equal(got, want) {
		t.Errorf("runs\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A target whose store cannot be read as it starts reads its schedules
// again, with backoff, until it can, and then fires them, at-start ones
// included.
func TestSchedulesLoadAgainAfterAReadError(t *testing.T) {
	start := time.Date(2027, 1, 10, 15, 30, 0, 0, time.UTC) // 10:30 EST
	runs := scheduleBubble(t, bootAndHourly(), start, time.Time{}, func(b *bubble) {
		time.Sleep(time.Minute)
		if _, err := b.m.store.write.Exec(`ALTER TABLE jobs RENAME TO jobs_away`); err != nil {
			t.Fatal(err)
		}
		b.restart() // 10:31, the jobs unreadable
		time.Sleep(10 * time.Second)
		if _, err := b.m.store.write.Exec(`ALTER TABLE jobs_away RENAME TO jobs`); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Hour)
	})
	want := []string{"startup:boot succeeded 10:30", "startup:boot succeeded 10:31",
		"schedule:nightly succeeded 11:00", "schedule:nightly succeeded 12:00", "schedule:nightly succeeded 13:00"}
	if got := summary(runs); !slices.Equal(got, want) {
		t.Errorf("runs\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// MUSTER_SCHEDULED_AT is the scheduled time in the schedule's zone: the
// job's time_zone, or a cron's CRON_TZ, rather than the target's (New
// York here).
func TestScheduledAtIsInTheSchedulesZone(t *testing.T) {
	start := time.Date(2027, 1, 10, 10, 59, 57, 0, time.UTC)
	for _, tc := range []struct {
		name, zone, cron, want string
	}{
		{"the target's zone", "", "0 6 * * *", "2027-01-10T06:00:00-05:00\n"},
		{"the job's time_zone", "Europe/Paris", "0 12 * * *", "2027-01-10T12:00:00+01:00\n"},
		{"CRON_TZ", "Europe/Paris", "CRON_TZ=Asia/Tokyo 0 20 * * *", "2027-01-10T20:00:00+09:00\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := scheduledEcho(tc.cron)
			j.TimeZone = tc.zone
			runs := scheduleBubble(t, j, start, time.Time{}, func(*bubble) { time.Sleep(time.Minute) })
			if len(runs) != 1 {
				t.Fatalf("%d runs, want 1", len(runs))
			}
			if got := runs[0].Steps[0].Output; got != tc.want {
				t.Errorf("MUSTER_SCHEDULED_AT %q, want %q", got, tc.want)
			}
		})
	}
}

// A wall clock stepped backward past a fire that ran (NTP correcting a
// clock that was ahead) does not run it again, whether the daemon carries
// on or restarts: the next fire is the one after it, when the wall clock
// reaches it.
func TestClockStepBackwardDoesNotFireAgain(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			start := time.Date(2027, 1, 10, 15, 59, 0, 0, time.UTC) // 10:59 EST; the fire at 11:00
			runs := scheduleBubble(t, scheduledEcho("0 * * * *"), start, time.Time{}, func(b *bubble) {
				time.Sleep(2 * time.Minute)      // 11:01, the fire ran
				b.clk.Advance(-30 * time.Minute) // 10:31
				if restart {
					b.restart()
				}
				time.Sleep(90 * time.Minute) // 12:01
			})
			if got, want := summary(runs), []string{"schedule:nightly succeeded 11:00", "schedule:nightly succeeded 12:00"}; !slices.Equal(got, want) {
				t.Errorf("runs %v, want %v", got, want)
			}
		})
	}
}

// A target that starts while its master is silent waits startSyncWait to
// hear what changed while it was down, then fires from its own copy: a
// fire that came due during the wait runs late, not missed.
func TestSilentMasterHoldsFiresAtStartOnlyForAWhile(t *testing.T) {
	start := time.Date(2027, 1, 10, 15, 30, 0, 0, time.UTC) // 10:30 EST
	restart := start.Add(29*time.Minute + 55*time.Second)   // 10:59:55; the hourly fire at 11:00
	runs := scheduleBubble(t, scheduledEcho("0 * * * *"), start, time.Time{}, func(b *bubble) {
		time.Sleep(restart.Sub(start))
		b.silent = true
		b.restart()
		time.Sleep(time.Minute)
	})
	var after []string
	for _, r := range runs {
		if !r.StartedAt.Before(restart) {
			out := r.Message
			if len(r.Steps) > 0 {
				out = r.Steps[0].Output
			}
			after = append(after, fmt.Sprintf("%s %s %s %q", r.Trigger, r.Status, r.StartedAt.UTC().Format("15:04:05"), out))
		}
	}
	slices.Sort(after)
	want := []string{`schedule:nightly succeeded 16:00:05 "2027-01-10T11:00:00-05:00\n"`}
	if !slices.Equal(after, want) {
		t.Errorf("runs after the restart\n%s\nwant\n%s", strings.Join(after, "\n"), strings.Join(want, "\n"))
	}
}

// A wall clock stepped back by more than clockCorrection (NTP correcting
// a clock that was a day ahead, a virtual machine restored from a
// snapshot) is a correction: the schedules go on from the corrected
// time, whether the daemon carries on or restarts, rather than fire
// nothing until the clock is back where it was.
func TestClockCorrectedBackwardFiresFromTheCorrectedTime(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			start := time.Date(2027, 1, 11, 15, 59, 0, 0, time.UTC) // 10:59 EST, a day ahead; the fire at 11:00
			runs := scheduleBubble(t, scheduledEcho("0 * * * *"), start, time.Time{}, func(b *bubble) {
				time.Sleep(2 * time.Minute)    // 11:01, the fire ran
				b.clk.Advance(-24 * time.Hour) // the day before, 11:01
				if restart {
					b.restart()
				}
				time.Sleep(2 * time.Hour) // 13:01
			})
			var got []string
			for _, r := range runs {
				got = append(got, fmt.Sprintf("%s %s", r.Status, strings.TrimSpace(r.Steps[0].Output)))
			}
			slices.Sort(got)
			want := []string{"succeeded 2027-01-10T12:00:00-05:00", "succeeded 2027-01-10T13:00:00-05:00", "succeeded 2027-01-11T11:00:00-05:00"}
			if !slices.Equal(got, want) {
				t.Errorf("runs\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}
