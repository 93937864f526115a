package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/pki"
	"github.com/musterhq/muster/internal/testenv"
)

// A command that waits (job start --wait, apply --wait) carries on across
// a restart of the master, whatever it was waiting on then: here a target
// that has not collected what was posted to it, which the wait checks on
// the download list. It says once that the master does not answer, and
// once that it does again. It exited 1 saying the master could not be
// reached.
func TestWaitCarriesOnAcrossAMasterRestart(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	applyJobs(t, env.Client, shellJob("quick", "echo ok", "web1"))
	t.Setenv("MUSTER_ADDR", env.Master.URL)
	t.Setenv("MUSTER_TOKEN", env.Master.AdminToken)
	t.Setenv("MUSTER_CACERT", filepath.Join(env.Dir, "master", pki.CACertFile))
	file := filepath.Join(t.TempDir(), "jobs.yaml")
	if err := os.WriteFile(file, []byte("jobs:\n  - name: later\n    targets: [web1]\n    steps: [{name: a, shell: 'true'}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		args  []string
		ready string
	}{
		{[]string{"job", "start", "quick", "--wait", "--timeout", "1m"}, "started quick on web1"},
		{[]string{"apply", "-f", file, "--wait", "--timeout", "1m"}, "waiting for the targets to apply them"},
	} {
		env.Target("web1").Stop(t) // what is posted waits for it
		var stdout, stderr syncBuffer
		done := make(chan int, 1)
		go func() { done <- run(c.args, &stdout, &stderr) }()
		testenv.Eventually(t, 20*time.Second, "the command to wait", func() bool { return strings.Contains(stdout.String(), c.ready) })
		addr := strings.TrimPrefix(env.Master.URL, "https://")
		env.StopMaster()
		// What the master's going says depends on the moment it met the
		// command's request (refused, or cut short as it stopped): each
		// says the master does not answer, and why.
		noticed := func() bool { return strings.Contains(stderr.String(), "the master does not answer; waiting for it (") }
		for deadline := time.Now().Add(60 * time.Second); !noticed(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("muster %s: the master at %s stopped 60s ago, and the command has not said it does not answer\nstdout:\n%s\nstderr:\n%s",
					strings.Join(c.args, " "), addr, stdout.String(), stderr.String())
			}
		}
		env.StartMaster(addr)
		env.StartTarget("web1")
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("muster %s: exit %d across a master restart, want 0\nstdout:\n%s\nstderr:\n%s", strings.Join(c.args, " "), code, stdout.String(), stderr.String())
			}
			if n := strings.Count(stderr.String(), "the master does not answer"); n != 1 || strings.Count(stderr.String(), "the master answers again") != 1 {
				t.Errorf("muster %s: stderr says %d time(s) that the master does not answer, want once each way:\n%s", strings.Join(c.args, " "), n, stderr.String())
			}
		case <-time.After(90 * time.Second):
			t.Fatalf("muster %s did not end", strings.Join(c.args, " "))
		}
	}
}

// job logs -f and job history -f follow on across a restart of the
// master, saying that it does not answer meanwhile; they ended with an
// error.
func TestFollowCarriesOnAcrossAMasterRestart(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	flag := filepath.Join(t.TempDir(), "go-on")
	applyJobs(t, env.Client, shellJob("slow", "echo one; while [ ! -e "+flag+" ]; do sleep 0.1; done; echo two", "web1"))
	res, err := env.Client.StartJob(context.Background(), "slow", httpapi.StartBody{})
	if err != nil {
		t.Fatal(err)
	}
	id := res.Runs[0].RunID
	var out, note, hout, hnote syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := followRun(ctx, &out, &note, env.Client, id, true)
		done <- err
	}()
	hdone := make(chan error, 1)
	go func() { hdone <- followHistory(ctx, &hout, &hnote, env.Client, "slow", "") }()
	testenv.Eventually(t, 20*time.Second, "the run's output", func() bool {
		return strings.Contains(out.String(), "one\n") && strings.Contains(hout.String(), "web1 | one\n")
	})
	addr := strings.TrimPrefix(env.Master.URL, "https://")
	env.StopMaster()
	testenv.Eventually(t, 20*time.Second, "the followers to notice", func() bool {
		return strings.Contains(note.String(), "the master does not answer; waiting for it") &&
			strings.Contains(hnote.String(), "the master does not answer; waiting for it")
	})
	env.StartMaster(addr)
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil || !strings.Contains(out.String(), "two\n") || !strings.Contains(note.String(), "the master answers again") {
			t.Errorf("followRun: %v\noutput:\n%s\nnoted:\n%s", err, out.String(), note.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("followRun did not end")
	}
	testenv.Eventually(t, 20*time.Second, "job history -f to print the outcome", func() bool {
		return strings.Contains(hout.String(), ": succeeded in ")
	})
	cancel()
	if err := <-hdone; err != nil {
		t.Errorf("followHistory: %v", err)
	}
}
