package catalog_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// A target seen offline that stays silent is not announced back online
// because the master restarted (or another master took over its duties):
// it never polled again, and no second target_offline follows.
func TestSilentOfflineTargetStaysOfflineAcrossAMasterStart(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		enlist(t, db, "web1")
		start := clk.Now()
		clk.Add(3*time.Minute + time.Second)
		if n, err := db.DetectPresence(ctx, start); n != 1 || err != nil {
			t.Fatalf("after 3 intervals: %d events (%v), want 1 (target_offline)", n, err)
		}
		// The master restarts an hour later; web1 is still silent.
		clk.Add(time.Hour)
		restarted := clk.Now()
		n, err := db.DetectPresence(ctx, restarted)
		if err != nil {
			t.Fatal(err)
		}
		got := eventNames(mustEvents(t, db, catalog.EventFilter{}))
		if n != 0 {
			t.Errorf("a master just restarted, web1 never polled: %d events raised, events now %q; want none (no target_online)", n, got)
		}
		clk.Add(3*time.Minute + time.Second)
		if n, err = db.DetectPresence(ctx, restarted); err != nil {
			t.Fatal(err)
		}
		got = eventNames(mustEvents(t, db, catalog.EventFilter{}))
		if n != 0 || len(got) != 1 {
			t.Errorf("3 intervals after the restart: %d more events, events now %q; want the one target_offline", n, got)
		}
	})
}

// A target taken out of a scheduled job and put back gets the job again:
// its no_success stretch begins at that new send, not at the first send
// of the job to it days earlier.
func TestNoSuccessCountsFromATargetsReturnToTheJob(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		enlist(t, db, "web2")
		nightly := job("nightly", "web1", "web2")
		nightly.Schedules = []muster.Schedule{{Cron: "0 2 * * *"}}
		if _, err := db.ApplyJobs(ctx, []muster.Job{nightly}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateAlert(ctx, muster.Alert{Name: "stale", Event: muster.EventNoSuccess, Target: "web1", Notify: []string{muster.MSXOperator}}, admin); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			clk.Add(20 * time.Hour)
			if _, err := db.UpsertRuns(ctx, web1, []catalog.RunUpload{report(fmt.Sprint("ok", clk.Now().Unix()), "nightly", muster.RunSucceeded, 1, clk.Now())}); err != nil {
				t.Fatal(err)
			}
			if n, _ := db.DetectNoSuccess(ctx); n != 0 {
				t.Fatalf("daily successes: %d events", n)
			}
		}
		// web1 is taken out of the job, then put back two days later.
		out := nightly
		out.Targets = []string{"web2"}
		if _, err := db.ApplyJobs(ctx, []muster.Job{out}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		clk.Add(48 * time.Hour)
		if _, err := db.ApplyJobs(ctx, []muster.Job{nightly}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Minute)
		if n, err := db.DetectNoSuccess(ctx); n != 0 || err != nil {
			evs := mustEvents(t, db, catalog.EventFilter{Event: muster.EventNoSuccess})
			t.Fatalf("a minute after web1 was given the job again: %d no_success events (%v), want 0: %v", n, err, evs)
		}
		// Past the alert's window (26 h by default) without a success, it
		// fires, counting from the return.
		clk.Add(muster.DefaultNoSuccessWindow)
		if n, err := db.DetectNoSuccess(ctx); n != 1 || err != nil {
			t.Errorf("past the window since the return, without success: %d no_success events (%v), want 1", n, err)
		}
	})
}

// A scheduled job disabled for longer than a no_success alert's window,
// then enabled again, is watched from when it was enabled: it does not
// page as soon as it is, before it has had a chance to run; past the
// window without success, it does. Given a schedule again after running
// without one, the same.
func TestNoSuccessCountsFromWhenTheJobWasEnabledAgain(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		nightly := job("nightly", "web1")
		nightly.Schedules = []muster.Schedule{{Cron: "0 2 * * *"}}
		if _, err := db.ApplyJobs(ctx, []muster.Job{nightly}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateAlert(ctx, muster.Alert{Name: "stale", Event: muster.EventNoSuccess, Job: "nightly", Notify: []string{muster.MSXOperator}}, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.UpsertRuns(ctx, web1, []catalog.RunUpload{report("ok1", "nightly", muster.RunSucceeded, 1, clk.Now())}); err != nil {
			t.Fatal(err)
		}
		checks := 0
		for _, change := range []struct {
			name     string
			off, on  func(muster.Job) muster.Job
			wantText string
		}{
			{"disabled, then enabled",
				func(j muster.Job) muster.Job { j.Enabled = false; return j },
				func(j muster.Job) muster.Job { j.Enabled = true; return j },
				"since it was last enabled with a schedule"},
			{"without a schedule, then given one again",
				func(j muster.Job) muster.Job { j.Schedules = nil; return j },
				func(j muster.Job) muster.Job { return j },
				"since it was last enabled with a schedule"},
		} {
			if _, err := db.ApplyJobs(ctx, []muster.Job{change.off(nightly)}, catalog.ApplyOptions{}, admin); err != nil {
				t.Fatal(err)
			}
			clk.Add(3 * muster.DefaultNoSuccessWindow)
			if n, err := db.DetectNoSuccess(ctx); n != 0 || err != nil {
				t.Fatalf("%s: while off: %d no_success events (%v), want 0", change.name, n, err)
			}
			if _, err := db.ApplyJobs(ctx, []muster.Job{change.on(nightly)}, catalog.ApplyOptions{}, admin); err != nil {
				t.Fatal(err)
			}
			clk.Add(time.Minute)
			if n, err := db.DetectNoSuccess(ctx); n != 0 || err != nil {
				evs := mustEvents(t, db, catalog.EventFilter{Event: muster.EventNoSuccess})
				t.Fatalf("%s: a minute after it was back on: %d no_success events (%v), want 0: %v", change.name, n, err, evs)
			}
			clk.Add(muster.DefaultNoSuccessWindow)
			before := len(mustEvents(t, db, catalog.EventFilter{Event: muster.EventNoSuccess}))
			if n, err := db.DetectNoSuccess(ctx); n != 1 || err != nil {
				t.Fatalf("%s: past the window since it was back on: %d no_success events (%v), want 1", change.name, n, err)
			}
			evs := mustEvents(t, db, catalog.EventFilter{Event: muster.EventNoSuccess})
			if len(evs) != before+1 || !strings.Contains(evs[0].Message, change.wantText) {
				t.Fatalf("%s: events %v, want a new one saying %q", change.name, evs, change.wantText)
			}
			checks++
		}
		if checks != 2 {
			t.Fatalf("checked %d changes, want 2", checks)
		}
	})
}

// no_success fires once per stretch without success, even a stretch
// longer than the history is kept: pruning old events keeps it, so the
// next scan does not raise it again.
func TestNoSuccessOncePerStretchAcrossRetention(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		enlist(t, db, "web1")
		nightly := job("nightly", "web1")
		nightly.Schedules = []muster.Schedule{{Cron: "0 2 * * *"}}
		if _, err := db.ApplyJobs(ctx, []muster.Job{nightly}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateAlert(ctx, muster.Alert{Name: "stale", Event: muster.EventNoSuccess, Notify: []string{muster.MSXOperator}}, admin); err != nil {
			t.Fatal(err)
		}
		keep := 7 * 24 * time.Hour // muster master --history-max-age 7d
		total, scans := 0, 0
		for range 30 { // fifteen days without success, scanned twice a day
			clk.Add(12 * time.Hour)
			n, err := db.DetectNoSuccess(ctx)
			if err != nil {
				t.Fatal(err)
			}
			total, scans = total+n, scans+1
			if _, _, err := db.DispatchEvents(ctx, newID); err != nil {
				t.Fatal(err)
			}
			if _, err := db.PruneEvents(ctx, clk.Now().Add(-keep)); err != nil {
				t.Fatal(err)
			}
		}
		if total != 1 || scans != 30 {
			t.Errorf("one stretch of fifteen days without success, %d scans: no_success raised %d times, want once", scans, total)
		}
	})
}
