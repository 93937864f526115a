package main

import (
	"context"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/testenv"
)

// startLongRun starts a job whose step and its background child run until
// stopped, and waits until they run on the target.
func startLongRun(t *testing.T, env *testenv.Env, job string) string {
	t.Helper()
	applyJobs(t, env.Client, shellJob(job, "sleep 300 & sleep 300", "web1"))
	var res muster.StartResult
	testenv.Eventually(t, 20*time.Second, "the START to be accepted", func() bool {
		var err error
		res, err = env.Client.StartJob(context.Background(), job, httpapi.StartBody{})
		return err == nil
	})
	id := res.Runs[0].RunID
	testenv.Eventually(t, 20*time.Second, "the run to be running with its processes", func() bool {
		r, ok := runOf(t, env.Client, id)
		return ok && r.Status == muster.RunRunning && len(testenv.RunProcesses(id)) >= 3
	})
	return id
}

// awaited holds, for each process waitFor waits for, a channel closed
// once it has exited, which startMuster's cleanup waits on rather than
// waiting for the process a second time.
var awaited sync.Map // *exec.Cmd → chan struct{}

// waitFor waits for the process in the background.
func waitFor(cmd *exec.Cmd) <-chan error {
	done, exited := make(chan error, 1), make(chan struct{})
	awaited.Store(cmd, exited)
	go func() {
		err := cmd.Wait()
		close(exited)
		done <- err
	}()
	return done
}

// hangUpsReachChildren makes the processes this test starts take SIGHUP's
// default action, stopping, even when the test runs with SIGHUP ignored
// (under nohup), which children would inherit: a signal this process
// catches is reset to its default in a child, one it ignores stays
// ignored.
func hangUpsReachChildren(t *testing.T) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	t.Cleanup(func() { signal.Stop(c) })
}

// exitedCleanly waits for the daemon and fails unless it exited with 0.
func exitedCleanly(t *testing.T, done <-chan error, sig string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the target exited with %v after %s; want exit status 0", err, sig)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the target did not exit after %s", sig)
	}
}

// SIGHUP (the terminal the daemon was started from hung up, or an operator
// sending it) stops a target as SIGTERM does: its runs are stopped and
// recorded canceled on the master, their processes are gone, and the daemon
// exits 0. (It used to die at once, leaving its runs running on the master
// and their processes behind.)
func TestTargetSIGHUPStopsGracefully(t *testing.T) {
	hangUpsReachChildren(t)
	env := testenv.New(t, testenv.Options{})
	dir := enlist(t, env, "web1")
	daemon := startMuster(t, "target", "--data", dir, "--log-level", "warn")
	id := startLongRun(t, env, "long")

	daemon.Process.Signal(syscall.SIGHUP)
	exitedCleanly(t, waitFor(daemon), "SIGHUP")
	r, _ := runOf(t, env.Client, id)
	if want := `the target daemon stopped, in step "main"`; r.Status != muster.RunCanceled || r.Message != want {
		t.Errorf("run %s %q, want %s %q", r.Status, r.Message, muster.RunCanceled, want)
	}
	if pids := testenv.RunProcesses(id); len(pids) > 0 {
		t.Errorf("processes of the stopped run survive: %v", pids)
	}
}

// A target started with SIGHUP ignored (nohup) keeps ignoring it, and
// stops on SIGTERM.
func TestTargetUnderNohupIgnoresSIGHUP(t *testing.T) {
	if _, err := exec.LookPath("nohup"); err != nil {
		t.Skip("no nohup here")
	}
	env := testenv.New(t, testenv.Options{})
	dir := enlist(t, env, "web1")
	daemon := exec.Command("nohup", os.Args[0], "target", "--data", dir, "--log-level", "warn")
	daemon.Env = append(os.Environ(), "MUSTER_TEST_MAIN=1")
	out := &syncBuffer{}
	daemon.Stdout, daemon.Stderr = out, out
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		daemon.Process.Kill() // if it still runs
		if t.Failed() {
			t.Logf("muster target:\n%s", out.String())
		}
	})
	done := waitFor(daemon)
	id := startLongRun(t, env, "long")

	daemon.Process.Signal(syscall.SIGHUP)
	// The daemon still answers: a STOP reaches it and stops the run.
	if _, err := env.Client.StopJob(context.Background(), "long", nil); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "the run stopped by the operator", func() bool {
		r, ok := runOf(t, env.Client, id)
		return ok && r.Status == muster.RunCanceled && strings.Contains(r.Message, "operator")
	})
	select {
	case err := <-done:
		t.Fatalf("the target exited on SIGHUP under nohup: %v", err)
	default:
	}
	daemon.Process.Signal(syscall.SIGTERM)
	exitedCleanly(t, done, "SIGTERM")
}

// A second signal while the target stops kills the steps of its runs at
// once, without their grace after SIGTERM; the runs are recorded canceled
// all the same and the daemon exits 0. Each signal is logged.
func TestTargetSecondSignalKillsStepsAtOnce(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	dir := enlist(t, env, "web1")
	daemon := startMuster(t, "target", "--data", dir, "--log-level", "info")
	done := waitFor(daemon)
	applyJobs(t, env.Client, shellJob("stubborn", "trap '' TERM; sleep 300 & wait", "web1"))
	var res muster.StartResult
	testenv.Eventually(t, 20*time.Second, "the START to be accepted", func() bool {
		var err error
		res, err = env.Client.StartJob(context.Background(), "stubborn", httpapi.StartBody{})
		return err == nil
	})
	id := res.Runs[0].RunID
	testenv.Eventually(t, 20*time.Second, "the run to be running with its processes", func() bool {
		r, ok := runOf(t, env.Client, id)
		return ok && r.Status == muster.RunRunning && len(testenv.RunProcesses(id)) >= 2
	})
	out := daemon.Stdout.(*syncBuffer)

	daemon.Process.Signal(syscall.SIGTERM)
	testenv.Eventually(t, 20*time.Second, "the daemon to say it stops", func() bool {
		return strings.Contains(out.String(), `msg="stopping: runs in progress are stopped`)
	})
	daemon.Process.Signal(syscall.SIGINT)
	exitedCleanly(t, done, "SIGTERM, then SIGINT")
	if !strings.Contains(out.String(), `msg="stopping at once: killing the steps of the runs in progress" signal=interrupt`) {
		t.Errorf("the second signal is not logged:\n%s", out)
	}
	r, _ := runOf(t, env.Client, id)
	if want := `the target daemon stopped, in step "main"`; r.Status != muster.RunCanceled || r.Message != want {
		t.Errorf("run %s %q, want %s %q", r.Status, r.Message, muster.RunCanceled, want)
	}
	if pids := testenv.RunProcesses(id); len(pids) > 0 {
		t.Errorf("processes of the stopped run survive: %v", pids)
	}
}
