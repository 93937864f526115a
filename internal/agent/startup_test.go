package agent

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
)

// Fires a job missed while the target was down are recorded as one skipped
// run even when a change to the job (a new version, disabling it, deleting
// it) waits on the master: the first poll applies it only once the
// scheduler has counted them, from when the job was held, not from the
// change. Here the scheduler's first load is held until the change is
// applied, or until the poll loop waits for that load.
func TestMissedFiresRecordedBeforeThePollAppliesAChange(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, tm *testMaster, job muster.Job)
	}{
		{"changed", func(t *testing.T, tm *testMaster, job muster.Job) {
			job.Steps[0].Shell = "echo changed"
			tm.apply(t, job)
		}},
		{"disabled", func(t *testing.T, tm *testMaster, job muster.Job) {
			if _, err := tm.api.SetJobEnabled(ctx, job.Name, false); err != nil {
				t.Fatal(err)
			}
		}},
		{"deleted", func(t *testing.T, tm *testMaster, job muster.Job) {
			if _, err := tm.api.DeleteJob(ctx, job.Name); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm := startTestMaster(t)
			dir := t.TempDir()
			m := tm.enlistIn(t, "web1", dir)
			job := downWithAnHourlyJob(t, tm, m, "")
			// Meanwhile the job changes, and then another job comes.
			tc.change(t, tm, job)
			tm.apply(t, shellJob("marker", []string{"web1"}, "true"))

			changed, pollHeld, secondLoad := make(chan struct{}), make(chan struct{}), make(chan struct{})
			var once sync.Once
			m = openTarget(t, dir, func(c *Config) {
				// The marker's INSERT comes after the job's change: once
				// it is being applied, the change is.
				c.FailInstruction = func(in agentproto.Instruction) error {
					if in.Job == "marker" {
						once.Do(func() { close(changed) })
					}
					return nil
				}
			})
			m.testHooks.pollHeld = func() { close(pollHeld) }
			loads := 0
			m.testHooks.beforeLoad = func() error { // the scheduler's goroutine only
				loads++
				switch loads {
				case 1:
					select {
					case <-changed:
					case <-pollHeld:
					}
				case 2:
					close(secondLoad) // the first has finished
				}
				return nil
			}
			stop := runTarget(t, m)
			select {
			case <-secondLoad:
			case <-time.After(time.Minute):
				t.Fatal("gave up after a minute waiting for the schedules to load again after the change")
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			runs, err := m.LocalRuns(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var skipped []muster.Run
			for _, r := range runs {
				if r.Job == job.Name && r.Status == muster.RunSkipped {
					skipped = append(skipped, r.Run)
				}
			}
			if len(skipped) != 1 || !strings.Contains(skipped[0].Message, "missed while the target was not running") || !strings.Contains(skipped[0].Message, "misfire policy: skip") {
				t.Fatalf("%d skipped runs of the job (%+v), want 1 standing for the fires missed while the target was down, naming the misfire policy", len(skipped), skipped)
			}
		})
	}
}

// Schedules that cannot be loaded do not hold the poll loop: once the first
// load has failed the target polls and applies what the master sends,
// while the scheduler tries again.
func TestFailingScheduleLoadDoesNotHoldThePoll(t *testing.T) {
	tm := startTestMaster(t)
	m := tm.enlist(t, "web1", func(c *Config) { c.MaxBackoff = 10 * time.Millisecond })
	tm.apply(t, shellJob("marker", []string{"web1"}, "true"))
	applying := make(chan struct{})
	var once sync.Once
	m.cfg.FailInstruction = func(in agentproto.Instruction) error {
		once.Do(func() { close(applying) })
		return nil
	}
	loaded := make(chan struct{})
	m.testHooks.beforeLoad = func() error { // the scheduler's goroutine only
		select {
		case <-applying:
		default:
			return errors.New("the store cannot be read")
		}
		select {
		case <-loaded:
		default:
			close(loaded)
		}
		return nil
	}
	runTarget(t, m)
	select {
	case <-loaded:
	case <-time.After(time.Minute):
		t.Fatal("gave up after a minute: the poll loop applied nothing while the schedules could not be loaded")
	}
}

// downWithAnHourlyJob gives m's target an hourly job, due half an hour
// from now (it does not fire while the target first runs) with misfire,
// runs the target until it holds the job, and stops it with the job held
// since two hours ago: two fires missed when it starts again. It closes
// m, and returns the job.
func downWithAnHourlyJob(t *testing.T, tm *testMaster, m *Main, misfire string) muster.Job {
	t.Helper()
	job := shellJob("nightly", []string{m.Name()}, "true")
	job.TimeZone, job.Misfire = "UTC", misfire
	job.Schedules = []muster.Schedule{{Name: "hourly", Cron: fmt.Sprintf("%d * * * *", (time.Now().UTC().Minute()+30)%60)}}
	tm.apply(t, job)
	stop := runTarget(t, m)
	tm.settled(t)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := m.store.update(ctx, func(tx *sql.Tx) error {
		held, _, err := m.store.job(ctx, tx, job.Name)
		if err != nil {
			return err
		}
		return putJob(ctx, tx, held, time.Now().Add(-2*time.Hour))
	}); err != nil {
		t.Fatal(err)
	}
	m.Close()
	return job
}
