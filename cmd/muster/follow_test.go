package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

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
