package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/testenv"
)

// job history --follow prints a run that starts after it began, the
// output as it is written, prefixed with the target, and the outcome.
func TestFollowHistory(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	applyJobs(t, env.Client, shellJob("ticker", "echo one; sleep 2; echo two", "web1"))
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- followHistory(ctx, out, io.Discard, env.Client, "ticker", "") }()
	testenv.Eventually(t, 20*time.Second, "the START to be accepted", func() bool {
		_, err := env.Client.StartJob(context.Background(), "ticker", httpapi.StartBody{})
		return err == nil
	})
	testenv.Eventually(t, 30*time.Second, "the outcome to be printed", func() bool {
		return strings.Contains(out.String(), ": succeeded in ")
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("followHistory: %v", err)
	}
	for _, want := range []string{"run ", " on web1 (operator:", "web1 | == step main (attempt 1) ==\n", "web1 | one\nweb1 | two\n", "web1 | == step main (attempt 1): succeeded, exit 0"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// job logs -f of a run not recorded yet (its START not collected, or a
// mistyped id) says once that it waits for it, rather than nothing at all.
func TestFollowRunNotRecordedYet(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	var out, note syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	const id = "01a250c8-969e-76a0-a0db-e6ae5c1b9a9c"
	go func() {
		_, err := followRun(ctx, &out, &note, env.Client, id, true)
		done <- err
	}()
	want := "run " + id + " is not recorded yet; waiting for its target to run it (check the id if no START gave it)\n"
	testenv.Eventually(t, 20*time.Second, "the note", func() bool { return note.String() != "" })
	cancel()
	<-done
	if note.String() != want || out.String() != "" {
		t.Errorf("printed %q, noted %q; want nothing printed and the note %q", out.String(), note.String(), want)
	}
}

// job history --follow prints the outcome of a run it follows however
// many runs of the job start after it: twenty-one STARTs while it runs
// (each recorded skipped) push it out of the job's newest twenty, and its
// outcome is printed all the same, before that of a run started after it
// ended.
func TestFollowHistoryRunPushedOutOfTheNewest(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	release := filepath.Join(t.TempDir(), "release")
	applyJobs(t, env.Client, shellJob("hold", "while [ ! -f "+release+" ]; do sleep 0.05; done; echo released", "web1"))
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- followHistory(ctx, out, io.Discard, env.Client, "hold", "") }()
	start := func() string {
		t.Helper()
		var id string
		testenv.Eventually(t, 20*time.Second, "the START to be accepted", func() bool {
			res, err := env.Client.StartJob(context.Background(), "hold", httpapi.StartBody{})
			if err != nil || len(res.Runs) != 1 {
				return false
			}
			id = res.Runs[0].RunID
			return true
		})
		return id
	}
	held := start()
	testenv.Eventually(t, 20*time.Second, "the held run to be followed", func() bool {
		return strings.Contains(out.String(), "run "+held+" on web1 (")
	})
	const skipped = 21
	for range skipped {
		start()
	}
	testenv.Eventually(t, 30*time.Second, "the skipped runs to be recorded", func() bool {
		runs, err := env.Client.History(context.Background(), "hold", "", 100)
		return err == nil && len(runs) == skipped+1
	})
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the held run to end", func() bool {
		r, ok := runOf(t, env.Client, held)
		return ok && r.Status == muster.RunSucceeded
	})
	last := start()
	testenv.Eventually(t, 30*time.Second, "the last run's outcome to be printed", func() bool {
		return strings.Contains(out.String(), "run "+last+" on web1: succeeded in ")
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("followHistory: %v", err)
	}
	if got := strings.Count(out.String(), ": skipped in "); got != skipped {
		t.Errorf("printed %d skipped runs, want %d", got, skipped)
	}
	if !strings.Contains(out.String(), "run "+held+" on web1: succeeded in ") {
		t.Errorf("the held run's outcome is not printed:\n%s", out.String())
	}
}

// A follower that wakes to find the job's newest runs all new reads on
// through the history until it reaches a run it printed: runs that
// started together, more than it watches, are each printed. A run it
// follows that is in neither is read by its id, last.
func TestReadBeyondTheRunsWatched(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	applyJobs(t, env.Client, shellJob("burst", "true", "web1"))
	const runs = followLimit + 5
	for range runs {
		testenv.Eventually(t, 20*time.Second, "the START to be accepted", func() bool {
			_, err := env.Client.StartJob(context.Background(), "burst", httpapi.StartBody{})
			return err == nil
		})
	}
	ctx := context.Background()
	var all []muster.Run
	testenv.Eventually(t, 30*time.Second, "the runs to be recorded", func() bool {
		var err error
		all, err = env.Client.History(ctx, "burst", "", 100)
		return err == nil && len(all) == runs
	})
	window, _, _, err := env.Client.WatchRuns(ctx, httpapi.RunsFilter{Job: "burst", Limit: followLimit}, "", 0)
	if err != nil || len(window) != followLimit {
		t.Fatalf("watched %d runs (%v), want %d", len(window), err, followLimit)
	}
	ids := func(runs []muster.Run) []string {
		var out []string
		for _, r := range runs {
			out = append(out, r.RunID)
		}
		return out
	}

	// Printed: the oldest two. Read: the history's first page, which
	// holds every run.
	printed := map[string]bool{all[runs-1].RunID: true, all[runs-2].RunID: true}
	got, err := readBeyond(ctx, env.Client, "burst", "", window, followLimit, nil, func(r muster.Run) bool { return !printed[r.RunID] })
	if err != nil {
		t.Fatal(err)
	}
	if want := ids(all); !slices.Equal(ids(got), want) {
		t.Errorf("read %v, want %v", ids(got), want)
	}

	// Every run printed, the oldest followed: it comes after the window.
	oldest := all[runs-1]
	got, err = readBeyond(ctx, env.Client, "burst", "", window, followLimit, map[muster.RunRef]*outputPrinter{oldest.Ref(): nil},
		func(muster.Run) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	if want := append(ids(window), oldest.RunID); !slices.Equal(ids(got), want) {
		t.Errorf("read %v, want %v", ids(got), want)
	}
}
