package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/testenv"
)

func TestBarLine(t *testing.T) {
	for _, tc := range []struct {
		done, total int
		want        string
	}{
		{0, 4, "wave 1/2 0/4 [        ]   0 %"},
		{1, 4, "wave 1/2 1/4 [==      ]  25 %"},
		{3, 4, "wave 1/2 3/4 [======  ]  75 %"},
		{4, 4, "wave 1/2 4/4 [========] 100 %"},
		{9, 4, "wave 1/2 4/4 [========] 100 %"},  // more reported than the wave holds
		{-1, 4, "wave 1/2 0/4 [        ]   0 %"}, // never below nothing
		{0, 0, "wave 1/2 0/0 [========] 100 %"},  // an empty wave is done
	} {
		if got := barLine("wave 1/2", tc.done, tc.total, 8); got != tc.want {
			t.Errorf("barLine(%d, %d) = %q, want %q", tc.done, tc.total, got, tc.want)
		}
	}
}

func TestProgressBarOnlyOnTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	progress, finish := progressBar(w, "wave 1/1", 3)
	if progress != nil {
		t.Error("progressBar on a pipe returned a progress function; want none")
	}
	finish()
	w.Close()
	if b, _ := r.Read(make([]byte, 1)); b != 0 {
		t.Errorf("progressBar on a pipe wrote %d byte(s); want none", b)
	}
}

// A rollout the master halts because a target of its next wave was deleted
// ends the command with the master's reason, naming the target, not with
// a count of failed runs that is not more than --max-failures.
func TestRolloutHaltedOnADeletedTarget(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1", "web2"}})
	gate := filepath.Join(t.TempDir(), "go")
	applyJobs(t, env.Client, shellJob("deploy", "while [ ! -f "+gate+" ]; do sleep 0.05; done", "web1", "web2"))
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- rolloutFlags{batch: "1"}.run(context.Background(), out, env.Client, "deploy", httpapi.StartBody{}, time.Minute)
	}()
	testenv.Eventually(t, 30*time.Second, "wave 1 to be posted", func() bool { return strings.Contains(out.String(), "wave 1/2: web1") })
	if err := env.Client.DeleteTarget(context.Background(), "web2", true); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := <-done
	var exit *exitError
	if !errors.As(err, &exit) || exit.code != 1 || !strings.Contains(err.Error(), "web2 of wave 2 deleted or taken out of the job") ||
		!strings.Contains(err.Error(), "not started: web2") {
		t.Errorf("run: %v, want exit 1 naming web2 as deleted and not started\n%s", err, out.String())
	}
}

// A job deleted while its rollout runs takes the rollout with it: the
// command says the job was deleted, and which targets never started,
// rather than that the job has no such rollout.
func TestRolloutOfADeletedJob(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1", "web2"}})
	gate := filepath.Join(t.TempDir(), "go")
	applyJobs(t, env.Client, shellJob("deploy", "while [ ! -f "+gate+" ]; do sleep 0.05; done", "web1", "web2"))
	t.Cleanup(func() { os.WriteFile(gate, nil, 0o600) })
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- rolloutFlags{batch: "1"}.run(context.Background(), out, env.Client, "deploy", httpapi.StartBody{}, time.Minute)
	}()
	testenv.Eventually(t, 30*time.Second, "wave 1 to be posted", func() bool { return strings.Contains(out.String(), "wave 1/2: web1") })
	if _, err := env.Client.DeleteJob(context.Background(), "deploy"); err != nil {
		t.Fatal(err)
	}
	err := <-done
	var exit *exitError
	if !errors.As(err, &exit) || exit.code != 1 || !strings.Contains(err.Error(), `job "deploy" was deleted during rollout 1, at wave 1/2`) ||
		!strings.Contains(err.Error(), "not started: web2") {
		t.Errorf("run: %v, want exit 1 saying the job was deleted, and web2 not started\n%s", err, out.String())
	}
}

// A start limited to a group takes the targets named with it in any case,
// as a start without --group does: target names are case-insensitive.
func TestGroupStartTakesTargetNamesInAnyCase(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1", "web2"}})
	ctx := context.Background()
	if err := env.Client.CreateGroup(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.GroupMembers(ctx, "web", []string{"web1", "web2"}, false); err != nil {
		t.Fatal(err)
	}
	applyJobs(t, env.Client, shellJob("deploy", "true", "web1", "web2"))
	got, err := rolloutFlags{group: "web"}.targets(ctx, env.Client, "deploy", []string{"WEB2"})
	if err != nil || strings.Join(got, ",") != "web2" {
		t.Errorf("targets(--group web --target WEB2) = %q, %v; want web2", got, err)
	}
}

// A target named with --group that the job does not run on, or that is
// not in the group, is refused, naming it, as a start without --group
// refuses one the job does not run on: it is never left out in silence,
// the others started as if it had not been asked for.
func TestGroupStartRefusesATargetItWouldLeaveOut(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1", "web2"}})
	ctx := context.Background()
	if err := env.Client.CreateGroup(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.GroupMembers(ctx, "web", []string{"web1"}, false); err != nil {
		t.Fatal(err)
	}
	applyJobs(t, env.Client, shellJob("deploy", "true", "web1", "web2"))
	checked := 0
	for _, tc := range []struct {
		named []string
		want  string
	}{
		{[]string{"web1", "wbe2"}, `--target: job "deploy" does not run on "wbe2"; it runs on web1, web2`},
		{[]string{"web1", "WEB2"}, `--target: web2 is not in group web, whose members are web1`},
	} {
		got, err := rolloutFlags{group: "web"}.targets(ctx, env.Client, "deploy", tc.named)
		if err == nil || err.Error() != tc.want {
			t.Errorf("targets(--group web --target %s) = %q, %v; want the error %q", strings.Join(tc.named, " --target "), got, err, tc.want)
		}
		checked++
	}
	if checked != 2 {
		t.Fatalf("checked %d cases, want 2", checked)
	}
}
