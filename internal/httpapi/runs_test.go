package httpapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/testenv"
)

// GET /api/v1/runs with If-None-Match and wait answers at each change of a
// run, not only at its end: a running step's output is seen as the target
// uploads it, and a reply with nothing new is 304.
func TestWatchRunsSeesOutputWhileRunning(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	ctx := context.Background()
	j := muster.NewJob()
	j.Name, j.Targets = "ticker", []string{"web1"}
	j.Steps = []muster.Step{{Name: "count", Shell: "echo one; sleep 3; echo two"}}
	if _, err := env.Client.Apply(ctx, httpapi.ApplyRequest{Jobs: []muster.Job{j}}); err != nil {
		t.Fatal(err)
	}
	var res muster.StartResult
	testenv.Eventually(t, 20*time.Second, "the START to be accepted", func() bool {
		var err error
		res, err = env.Client.StartJob(ctx, "ticker", httpapi.StartBody{})
		return err == nil
	})
	f := httpapi.RunsFilter{Runs: res.Refs()[:1]}
	tag := ""
	sawRunningOutput, replies := false, 0
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		wait := 10 * time.Second
		if tag == "" {
			wait = 0 // without an ETag, a wait would hold until the run ends
		}
		runs, newTag, changed, err := env.Client.WatchRuns(ctx, f, tag, wait)
		if err != nil {
			t.Fatal(err)
		}
		replies++
		if !changed {
			continue
		}
		tag = newTag
		if len(runs) != 1 {
			continue
		}
		r := runs[0]
		if r.Status == muster.RunRunning && len(r.Steps) == 1 && r.Steps[0].Output == "one\n" {
			sawRunningOutput = true
		}
		if r.Status.Finished() {
			if r.Status != muster.RunSucceeded || r.Steps[0].Output != "one\ntwo\n" {
				t.Fatalf("run ended %s with output %q", r.Status, r.Steps[0].Output)
			}
			break
		}
	}
	if !sawRunningOutput {
		t.Errorf("in %d replies, never saw the step's first line while it ran", replies)
	}
	// Nothing changes any more: the wait passes and the answer is 304.
	runs, again, changed, err := env.Client.WatchRuns(ctx, f, tag, 300*time.Millisecond)
	if err != nil || changed || again != tag || runs != nil {
		t.Errorf("WatchRuns after the end = %v, %q, changed %v, %v; want nothing new", runs, again, changed, err)
	}
	// The same by job.
	byJob, _, _, err := env.Client.WatchRuns(ctx, httpapi.RunsFilter{Job: "ticker"}, "", 0)
	if err != nil || len(byJob) != 1 || byJob[0].RunID != res.Runs[0].RunID {
		t.Errorf("runs of job ticker: %v, %v", byJob, err)
	}
	if _, _, _, err := env.Client.WatchRuns(ctx, httpapi.RunsFilter{Job: "ticker", Runs: []muster.RunRef{{RunID: "x"}}}, "", 0); muster.ErrorCode(err) != muster.EINVALID {
		t.Errorf("run ids and a job: got %v, want EINVALID", err)
	}
}

// limit and target select among a job's runs; runs named with run are
// each returned, so either given with them is refused, naming it, rather
// than left without effect.
func TestRunsNamedTakeNoLimitOrTarget(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	ctx := context.Background()
	refs := []muster.RunRef{{Target: "web1", RunID: "r1"}}
	checked := 0
	for _, c := range []struct {
		name string
		f    httpapi.RunsFilter
	}{
		{"limit", httpapi.RunsFilter{Runs: refs, Limit: 5}},
		{"target", httpapi.RunsFilter{Runs: refs, Target: "web2"}},
	} {
		_, _, _, err := env.Client.WatchRuns(ctx, c.f, "", 0)
		wantRefusal(t, "runs named with "+c.name, err, muster.EINVALID, c.name+":")
		checked++
	}
	if checked != 2 {
		t.Fatalf("checked %d cases, want 2", checked)
	}
	if _, _, _, err := env.Client.WatchRuns(ctx, httpapi.RunsFilter{Runs: refs}, "", 0); err != nil {
		t.Errorf("runs named alone: %v", err)
	}
}

// A job's history on a target no target was ever named is refused, naming
// the target, rather than read as "no run there": a mistyped name is not
// taken for a target the job never ran on. A target that has no run of
// the job gives an empty history.
func TestHistoryOnATargetNeverEnlisted(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	ctx := context.Background()
	j := muster.NewJob()
	j.Name, j.Targets = "backup", []string{"web1"}
	j.Steps = []muster.Step{{Name: "main", Shell: "true"}}
	if _, err := env.Client.Apply(ctx, httpapi.ApplyRequest{Jobs: []muster.Job{j}}); err != nil {
		t.Fatal(err)
	}
	_, err := env.Client.History(ctx, "backup", "web11", 20)
	wantRefusal(t, "a history on web11", err, muster.ENOTFOUND, "target: ", `"web11"`)
	if runs, err := env.Client.History(ctx, "backup", "web1", 20); err != nil || len(runs) != 0 {
		t.Errorf("the history on web1: %d runs, %v; want none, no error", len(runs), err)
	}
}
