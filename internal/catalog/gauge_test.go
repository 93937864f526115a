package catalog_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// A run is counted ended once, by the upload that first records it
// finished, whatever revisions repeat its outcome; the dispatch time of a
// run from a START is measured once, from the START's post to its first
// step, and a scheduled run has none.
func TestUpsertRunsNotesOutcomesOnce(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		started, err := db.StartJob(ctx, catalog.StartRequest{Job: "a"}, admin)
		if err != nil {
			t.Fatal(err)
		}
		posted := clk.Now()
		clk.Add(2 * time.Second)
		id := started.Runs[0].RunID
		code := 0
		report := func(rev int64, status muster.RunStatus, steps int, trigger, runID string) catalog.RunUpload {
			r := muster.Run{Job: "a", RunID: runID, Status: status, Trigger: trigger, StartedAt: posted.Add(time.Second), Steps: []muster.StepAttempt{}}
			for range steps {
				r.Steps = append(r.Steps, muster.StepAttempt{Name: "hello", Attempt: 1, Status: muster.AttemptSucceeded, ExitCode: &code,
					StartedAt: posted.Add(1500 * time.Millisecond)})
			}
			if status.Finished() {
				end := posted.Add(4 * time.Second)
				r.FinishedAt, r.DurationMS = &end, 2500
			}
			return catalog.RunUpload{Revision: rev, Run: r}
		}
		var ended, dispatched int
		for i, up := range [][]catalog.RunUpload{
			{report(1, muster.RunRunning, 0, "operator:admin", id)},                                                                 // before its step: no dispatch yet
			{report(2, muster.RunRunning, 1, "operator:admin", id)},                                                                 // its step: the dispatch
			{report(3, muster.RunSucceeded, 1, "operator:admin", id)},                                                               // ended
			{report(4, muster.RunSucceeded, 1, "operator:admin", id)},                                                               // more output: not again
			{report(4, muster.RunSucceeded, 1, "operator:admin", id)},                                                               // a repeated upload
			{report(1, muster.RunFailed, 1, "schedule:nightly", "s1"), report(1, muster.RunSucceeded, 1, "schedule:nightly", "s2")}, // scheduled
		} {
			res, err := db.UpsertRuns(ctx, web1, up)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if !r.OK {
					t.Fatalf("upload %d: %+v", i, r)
				}
				if r.Ended {
					ended++
					if r.RunID == id && (r.Job != "a" || r.Status != muster.RunSucceeded || r.Duration != 2500*time.Millisecond) {
						t.Errorf("upload %d: ended %+v, want a succeeded in 2.5s", i, r)
					}
				}
				if r.Dispatch != nil {
					dispatched++
					if r.RunID != id || *r.Dispatch != 1500*time.Millisecond || i != 1 {
						t.Errorf("upload %d: dispatch %v of %s, want 1.5s of the START's run at upload 1", i, *r.Dispatch, r.RunID)
					}
				}
			}
		}
		if ended != 3 || dispatched != 1 {
			t.Errorf("%d runs ended and %d dispatches, want 3 and 1", ended, dispatched)
		}
	})
}

// The gauges are the catalog's state: each target under one status, its
// blocking instructions, its spool as its last heartbeat said (the age
// growing since), its certificate, and each job's last success.
func TestGauges(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1, web2 := enlist(t, db, "web1"), enlist(t, db, "web2")
		enlist(t, db, "web3")
		if err := db.DefectTarget(ctx, enlist(t, db, "gone").ID, muster.Actor{Kind: muster.ActorTarget, Name: "gone"}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1", "web2")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Ack(ctx, web2.ID, []catalog.AckRow{{Seq: 1, Status: muster.InstructionFailed, Error: "no proxy"}}); err != nil {
			t.Fatal(err)
		}
		age := 30 * time.Second
		db.RecordPoll(web1.ID, catalog.Heartbeat{At: clk.Now(), PollInterval: 60, SpoolDepth: 2, SpoolOldest: &age})
		db.RecordPoll(web2.ID, catalog.Heartbeat{At: clk.Now(), PollInterval: 60, SpoolDepth: 3}) // says no age
		if err := db.FlushHeartbeats(ctx); err != nil {
			t.Fatal(err)
		}
		now := clk.Now()
		code := 0
		if _, err := db.UpsertRuns(ctx, web1, []catalog.RunUpload{{Revision: 1, Run: muster.Run{Job: "a", RunID: "s1", Status: muster.RunSucceeded,
			Trigger: "schedule:x", StartedAt: now, FinishedAt: &now, Steps: []muster.StepAttempt{{Name: "hello", Attempt: 1,
				Status: muster.AttemptSucceeded, ExitCode: &code, StartedAt: now}}}}}); err != nil {
			t.Fatal(err)
		}
		clk.Add(10 * time.Second)

		g, err := db.Gauges(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if g.Defected != 1 {
			t.Errorf("defected %d, want 1", g.Defected)
		}
		byName := map[string]catalog.TargetGauge{}
		for _, tg := range g.Targets {
			byName[tg.Name] = tg
		}
		if len(byName) != 3 {
			t.Fatalf("targets %+v, want web1, web2, web3", g.Targets)
		}
		if tg := byName["web1"]; tg.Status != muster.StatusNormal || tg.SpoolRuns != 2 || !tg.SpoolKnown || tg.SpoolOldestAge != 40*time.Second || tg.CertNotAfter == nil {
			t.Errorf("web1 %+v, want normal, 2 runs spooled for 40s, a certificate", tg)
		}
		if tg := byName["web2"]; tg.Status != muster.StatusBlocked || tg.Blocking != 1 || tg.SpoolRuns != 3 || tg.SpoolKnown {
			t.Errorf("web2 %+v, want blocked by 1, 3 runs spooled for an unknown time", tg)
		}
		if tg := byName["web3"]; tg.Status != muster.StatusNormal || tg.SpoolRuns != 0 || !tg.SpoolKnown {
			t.Errorf("web3 %+v, want normal (enlisted just now), nothing spooled", tg)
		}
		if len(g.LastSuccess) != 1 || g.LastSuccess[0].Job != "a" || g.LastSuccess[0].Target != "web1" || !g.LastSuccess[0].At.Equal(now) {
			t.Errorf("last successes %+v, want a on web1 at %s", g.LastSuccess, now)
		}

		if _, err := db.SetPaused(ctx, []string{"web1"}, "", true, admin); err != nil {
			t.Fatal(err)
		}
		// Three poll intervals later, the silent are suspected offline,
		// and the paused one counted paused.
		clk.Add(3 * time.Minute)
		g, err = db.Gauges(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, tg := range g.Targets {
			got = append(got, tg.Name+" "+tg.Status)
		}
		if want := "web1 paused, web2 suspected_offline, web3 suspected_offline"; strings.Join(got, ", ") != want {
			t.Errorf("statuses %q, want %q", strings.Join(got, ", "), want)
		}
	})
}
