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

// A run's output arrives in chunks, each appended once to its attempt's
// output however often it is sent, whatever the revision it comes with.
func TestRunOutputIsAppended(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		run := func(rev int64, status muster.RunStatus, chunks ...catalog.OutputChunk) catalog.RunUpload {
			return catalog.RunUpload{Revision: rev, Output: chunks, Run: muster.Run{Job: "a", RunID: "r1", Status: status,
				Trigger: "operator", StartedAt: clk.Now(), Steps: []muster.StepAttempt{
					{Name: "one", Attempt: 1, Status: muster.AttemptSucceeded, StartedAt: clk.Now()},
					{Name: "two", Attempt: 1, Status: muster.AttemptRunning, StartedAt: clk.Now()}}}}
		}
		output := func() []string {
			t.Helper()
			runs, err := db.FindRuns(ctx, catalog.RunFilter{Job: "a"})
			if err != nil || len(runs) != 1 {
				t.Fatalf("runs %+v, %v", runs, err)
			}
			return []string{runs[0].Steps[0].Output, runs[0].Steps[1].Output}
		}
		for i, batch := range [][]catalog.RunUpload{
			{run(1, muster.RunRunning, catalog.OutputChunk{Attempt: 0, Offset: 0, Data: "hello "})},
			// The same chunk again (a reply was lost), then the next one.
			{run(1, muster.RunRunning, catalog.OutputChunk{Attempt: 0, Offset: 0, Data: "hello "})},
			{run(2, muster.RunRunning, catalog.OutputChunk{Attempt: 0, Offset: 0, Data: "hello "}, catalog.OutputChunk{Attempt: 0, Offset: 6, Data: "world\n"})},
			// A chunk overlapping what is held adds only what is new; an older
			// revision's chunks count too.
			{run(1, muster.RunRunning, catalog.OutputChunk{Attempt: 0, Offset: 3, Data: "lo world\nagain\n"})},
			{run(3, muster.RunSucceeded, catalog.OutputChunk{Attempt: 1, Offset: 0, Data: "two\n"})},
		} {
			res, err := db.UpsertRuns(ctx, web1, batch)
			if err != nil || !res[0].OK {
				t.Fatalf("upload %d: %+v %v", i+1, res, err)
			}
		}
		if got := output(); got[0] != "hello world\nagain\n" || got[1] != "two\n" {
			t.Errorf("outputs %q", got)
		}
		// A chunk beyond the end (one lost on the way) is kept, and the gap said.
		if _, err := db.UpsertRuns(ctx, web1, []catalog.RunUpload{run(4, muster.RunSucceeded, catalog.OutputChunk{Attempt: 1, Offset: 10, Data: "end\n"})}); err != nil {
			t.Fatal(err)
		}
		if got := output()[1]; got != "two\n\n[muster: 6 bytes of output never reached the master]\nend\n" {
			t.Errorf("output with a gap %q", got)
		}
	})
}

// Chunks that break the rules are refused with the run, naming the rule;
// the run's other reports in the batch are stored.
func TestRunOutputLimits(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		upload := func(id string, c catalog.OutputChunk) catalog.RunUpload {
			return catalog.RunUpload{Revision: 1, Output: []catalog.OutputChunk{c}, Run: muster.Run{Job: "a", RunID: id, Status: muster.RunRunning,
				Trigger: "operator", StartedAt: clk.Now(), Steps: []muster.StepAttempt{{Name: "one", Attempt: 1, Status: muster.AttemptRunning, StartedAt: clk.Now()}}}}
		}
		for _, tc := range []struct {
			chunk catalog.OutputChunk
			rule  string
		}{
			{catalog.OutputChunk{Attempt: 1, Data: "x"}, "output[0]: attempt: 1 is not an attempt of the run (0 to 0)"},
			{catalog.OutputChunk{Attempt: -1, Data: "x"}, "output[0]: attempt: -1 is not an attempt of the run"},
			{catalog.OutputChunk{Offset: -5, Data: "x"}, "output[0]: offset: must not be negative"},
			{catalog.OutputChunk{Offset: catalog.MaxOutputBytes, Data: strings.Repeat("x", catalog.MaxOutputNote+1)}, "output[0]: an attempt's output is at most"},
		} {
			res, err := db.UpsertRuns(ctx, web1, []catalog.RunUpload{upload("bad", tc.chunk), upload("good", catalog.OutputChunk{Data: "fine"})})
			if err != nil {
				t.Fatal(err)
			}
			if res[0].OK || !strings.Contains(res[0].Error, tc.rule) || !res[1].OK {
				t.Errorf("chunk %+v: %+v, want the first refused for %q and the second stored", tc.chunk, res, tc.rule)
			}
		}
		runs, err := db.FindRuns(ctx, catalog.RunFilter{Job: "a"})
		if err != nil || len(runs) != 1 || runs[0].RunID != "good" || runs[0].Steps[0].Output != "fine" {
			t.Errorf("runs %+v %v: want only the good one, with its output once", runs, err)
		}
	})
}

// Purging a run takes its output with it.
func TestPurgedRunTakesItsOutput(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, clk, _ := MustOpen(t, eng)
		web1 := enlist(t, db, "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		done := clk.Now()
		up := catalog.RunUpload{Revision: 1, Output: []catalog.OutputChunk{{Data: "first life\n"}}, Run: muster.Run{Job: "a", RunID: "r1",
			Status: muster.RunSucceeded, Trigger: "operator", StartedAt: done, FinishedAt: &done,
			Steps: []muster.StepAttempt{{Name: "one", Attempt: 1, Status: muster.AttemptSucceeded, StartedAt: done}}}}
		if _, err := db.UpsertRuns(ctx, web1, []catalog.RunUpload{up}); err != nil {
			t.Fatal(err)
		}
		clk.Add(48 * time.Hour)
		if res, err := db.PurgeRuns(ctx, catalog.PurgeRequest{OlderThan: time.Hour}, admin); err != nil || res.Deleted != 1 {
			t.Fatalf("purge: %+v %v", res, err)
		}
		// The same run id uploaded again starts from nothing.
		up.Output = []catalog.OutputChunk{{Data: "second life\n"}}
		if _, err := db.UpsertRuns(ctx, web1, []catalog.RunUpload{up}); err != nil {
			t.Fatal(err)
		}
		runs, err := db.FindRuns(ctx, catalog.RunFilter{Job: "a"})
		if err != nil || len(runs) != 1 || runs[0].Steps[0].Output != "second life\n" {
			t.Errorf("runs %+v %v: want the output of the second upload only", runs, err)
		}
	})
}
