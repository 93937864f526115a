package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agent"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/master"
	"github.com/musterhq/muster/internal/pki"
	"github.com/musterhq/muster/internal/testenv"
)

// These tests run muster as real processes (this test binary, re-executed
// as the CLI; see TestMain), to kill them for real.

// startMuster starts this binary as the muster CLI.
func startMuster(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "MUSTER_TEST_MAIN=1")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	t.Cleanup(func() {
		if v, ok := awaited.Load(cmd); ok {
			// waitFor waits for it: it is stopped the same way, and its
			// end read from there.
			exited := v.(chan struct{})
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		} else if cmd.Process != nil && cmd.ProcessState == nil {
			// Stopped as a service manager would, so that a daemon
			// removes what it made outside its data directory (a
			// target's cgroups); killed if it does not stop.
			cmd.Process.Signal(syscall.SIGTERM)
			stopped := make(chan struct{})
			go func() { cmd.Wait(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-stopped
			}
		}
		if t.Failed() {
			t.Logf("muster %s:\n%s", strings.Join(args, " "), out.String())
		}
	})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func enlist(t *testing.T, env *testenv.Env, name string) string {
	t.Helper()
	dir := filepath.Join(env.Dir, "target-"+name)
	if _, err := agent.Enlist(context.Background(), agent.EnlistOptions{
		MasterURL: env.Master.URL, Token: env.Token(name), Name: name, DataDir: dir,
	}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func applyJobs(t *testing.T, c *httpapi.Client, jobs ...muster.Job) {
	t.Helper()
	if _, err := c.Apply(context.Background(), httpapi.ApplyRequest{Jobs: jobs}); err != nil {
		t.Fatal(err)
	}
}

func shellJob(name, script string, targets ...string) muster.Job {
	j := muster.NewJob()
	j.Name, j.Targets = name, targets
	j.Steps = []muster.Step{{Name: "main", Shell: script}}
	return j
}

func runOf(t *testing.T, c *httpapi.Client, id string) (muster.Run, bool) {
	runs, err := c.Runs(context.Background(), []muster.RunRef{{RunID: id}}, 0)
	if err != nil || len(runs) == 0 {
		return muster.Run{}, false
	}
	return runs[0], true
}

// kill -9 of a target mid-run: while it is away the run shows as running
// on a suspected offline target; on restart the run is recorded abandoned,
// the step's processes (including a background child) are gone, and the
// target carries on.
func TestTargetKilledMidRun(t *testing.T) {
	clock := &testenv.Clock{}
	env := testenv.New(t, testenv.Options{Master: func(c *master.Config) { c.Now = clock.Now }})
	dir := enlist(t, env, "web1")
	daemon := startMuster(t, "target", "--data", dir, "--log-level", "warn")
	ctx := context.Background()
	applyJobs(t, env.Client, shellJob("long", "sleep 300 & sleep 300", "web1"), shellJob("quick", "echo ok", "web1"))

	var res muster.StartResult
	testenv.Eventually(t, 20*time.Second, "the START to be accepted", func() bool {
		var err error
		res, err = env.Client.StartJob(ctx, "long", httpapi.StartBody{})
		return err == nil
	})
	id := res.Runs[0].RunID
	testenv.Eventually(t, 20*time.Second, "the run to be running with its processes", func() bool {
		r, ok := runOf(t, env.Client, id)
		return ok && r.Status == muster.RunRunning && len(testenv.RunProcesses(id)) >= 3
	})
	daemon.Process.Signal(syscall.SIGKILL)
	daemon.Wait()
	if n := len(testenv.RunProcesses(id)); n == 0 {
		t.Fatal("the step processes died with the daemon; the test proves nothing")
	}
	// Three poll intervals pass on the master's clock without a poll.
	clock.Advance(4 * time.Minute)
	if r, _ := runOf(t, env.Client, id); r.Status != muster.RunRunning || !r.TargetOffline {
		t.Errorf("run %s, target_offline %v: want running on a suspected offline target", r.Status, r.TargetOffline)
	}

	startMuster(t, "target", "--data", dir, "--log-level", "warn")
	testenv.Eventually(t, 20*time.Second, "the run recorded abandoned", func() bool {
		r, ok := runOf(t, env.Client, id)
		return ok && r.Status == muster.RunAbandoned
	})
	if pids := testenv.RunProcesses(id); len(pids) > 0 {
		t.Errorf("processes of the abandoned run survive: %v", pids)
	}
	quick, err := env.Client.StartJob(ctx, "quick", httpapi.StartBody{})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "the next run to succeed", func() bool {
		r, ok := runOf(t, env.Client, quick.Runs[0].RunID)
		return ok && r.Status == muster.RunSucceeded
	})
}

// A master stopped with SIGTERM answers held polls at once and exits
// within seconds; its targets reconnect when it returns, and nothing is
// lost: an instruction posted before the stop and runs made while it was
// down all arrive.
func TestMasterSIGTERMWithTargetsPolling(t *testing.T) {
	dataDir := t.TempDir()
	m := startMuster(t, "master", "--data", dataDir, "--listen", "127.0.0.1:0", "--log-level", "warn")
	url := waitForURL(t, m)
	token, err := os.ReadFile(filepath.Join(dataDir, master.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	roots, err := pki.LoadPool(filepath.Join(dataDir, pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	c, err := httpapi.NewClient(url, strings.TrimSpace(string(token)), roots)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var daemons []*exec.Cmd
	var targetDirs []string
	for _, name := range []string{"web1", "web2"} {
		tok, err := c.CreateToken(ctx, name, 15*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		tdir := filepath.Join(t.TempDir(), name)
		if _, err := agent.Enlist(ctx, agent.EnlistOptions{MasterURL: url, Token: tok.Token, Name: name, DataDir: tdir}); err != nil {
			t.Fatal(err)
		}
		daemons = append(daemons, startMuster(t, "target", "--data", tdir, "--log-level", "warn"))
		targetDirs = append(targetDirs, tdir)
	}
	// Each run appends a line to its target's file: an independent record
	// of what ran, readable while the daemons hold their stores.
	ticks := t.TempDir()
	tick := shellJob("tick", fmt.Sprintf("echo $MUSTER_RUN_ID >> '%s/'$MUSTER_TARGET", ticks), "web1", "web2")
	tick.Schedules = []muster.Schedule{{Cron: "* * * * * *"}}
	ran := func(target string) int {
		b, _ := os.ReadFile(filepath.Join(ticks, target))
		return strings.Count(string(b), "\n")
	}
	applyJobs(t, c, tick)
	testenv.Eventually(t, 20*time.Second, "both targets polling with the job", func() bool {
		list, err := c.DownloadList(ctx, httpapi.DownloadListFilter{Pending: true})
		hist, _ := c.History(ctx, "tick", "", 10)
		return err == nil && len(list) == 0 && len(hist) >= 2
	})

	start := time.Now()
	m.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- m.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the master exited with %v after SIGTERM", err)
		}
		t.Logf("master exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Fatal("the master did not exit after SIGTERM")
	}
	// The targets run their schedule with the master away.
	before := []int{ran("web1"), ran("web2")}
	testenv.Eventually(t, 20*time.Second, "two runs on each target with the master away", func() bool {
		return ran("web1") >= before[0]+2 && ran("web2") >= before[1]+2
	})

	m2 := startMuster(t, "master", "--data", dataDir, "--listen", strings.TrimPrefix(url, "https://"), "--log-level", "warn")
	waitForURL(t, m2)
	if _, err := c.SetJobEnabled(ctx, "tick", false); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "both targets to hold the disabled job", func() bool {
		list, err := c.DownloadList(ctx, httpapi.DownloadListFilter{Pending: true})
		return err == nil && len(list) == 0
	})
	// Stop the targets (their last act is to send the spool), then check
	// that every run each recorded is on the master, once.
	for _, d := range daemons {
		d.Process.Signal(syscall.SIGTERM)
		d.Wait()
	}
	hist, err := c.History(ctx, "tick", "", 10000)
	if err != nil {
		t.Fatal(err)
	}
	onMaster := map[string]int{}
	for _, r := range hist {
		onMaster[r.RunID]++
	}
	total := 0
	for i, tdir := range targetDirs {
		cfg := agent.DefaultConfig()
		cfg.DataDir = tdir
		tm, err := agent.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := tm.Open(ctx); err != nil {
			t.Fatal(err)
		}
		local, err := tm.LocalRuns(ctx)
		tm.Close()
		if err != nil {
			t.Fatal(err)
		}
		total += len(local)
		for _, r := range local {
			if onMaster[r.RunID] != 1 || !r.Uploaded {
				t.Errorf("target %d run %s (%s at %s): on the master %d times, uploaded %v", i, r.RunID, r.Status, r.StartedAt.Format(time.RFC3339Nano), onMaster[r.RunID], r.Uploaded)
			}
		}
	}
	if total != len(hist) || total < 6 {
		t.Errorf("the targets recorded %d runs, the master has %d; want the same, and a run a second", total, len(hist))
	}
	t.Logf("%d runs across the outage, all on the master once", total)
}

// waitForURL reads the master's URL from its first line of output.
func waitForURL(t *testing.T, m *exec.Cmd) string {
	t.Helper()
	out := m.Stdout.(*syncBuffer)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(out.String()))
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "muster master listening on "); ok {
				return u
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the master printed no URL:\n%s", out.String())
	return ""
}

// syncBuffer is a bytes.Buffer safe for a process to write while a test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// muster master --also-target runs jobs on the master's own server.
func TestMasterAlsoTarget(t *testing.T) {
	_, c := startAlsoTarget(t, t.TempDir())
	res := startOn(t, c, shellJob("local", "echo on the master", "hub"))
	testenv.Eventually(t, 20*time.Second, "the run on the master's target", func() bool {
		r, ok := runOf(t, c, res.Runs[0].RunID)
		return ok && r.Status == muster.RunSucceeded && r.Steps[0].Output == "on the master\n"
	})
}

// SIGHUP stops a master that also runs a target as SIGTERM does: its
// target's runs are stopped and recorded canceled, their processes are
// gone, and the master exits 0. (It died at once, its steps left behind
// and their runs recorded running.)
func TestMasterAlsoTargetSIGHUPStopsGracefully(t *testing.T) {
	hangUpsReachChildren(t)
	dataDir := t.TempDir()
	m, c := startAlsoTarget(t, dataDir)
	done := waitFor(m)
	id := startOn(t, c, shellJob("long", "sleep 300 & sleep 300", "hub")).Runs[0].RunID
	testenv.Eventually(t, 20*time.Second, "the run to be running with its processes", func() bool {
		r, ok := runOf(t, c, id)
		return ok && r.Status == muster.RunRunning && len(testenv.RunProcesses(id)) >= 3
	})

	m.Process.Signal(syscall.SIGHUP)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the master exited with %v after SIGHUP; want exit status 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the master did not exit after SIGHUP")
	}
	if pids := testenv.RunProcesses(id); len(pids) > 0 {
		t.Errorf("processes of the stopped run survive: %v", pids)
	}
	// Started again on its data, the master has the run recorded canceled.
	m = startMuster(t, "master", "--data", dataDir, "--listen", "127.0.0.1:0", "--log-level", "warn")
	c = masterClient(t, dataDir, waitForURL(t, m))
	if r, _ := runOf(t, c, id); r.Status != muster.RunCanceled {
		t.Errorf("the run is %s %q after the master's SIGHUP, want %s", r.Status, r.Message, muster.RunCanceled)
	}
}

// startAlsoTarget starts a master on dataDir that also runs a target,
// hub, and returns it with a client of its admin key once hub is enlisted.
func startAlsoTarget(t *testing.T, dataDir string) (*exec.Cmd, *httpapi.Client) {
	t.Helper()
	m := startMuster(t, "master", "--data", dataDir, "--listen", "127.0.0.1:0", "--also-target", "hub", "--log-level", "warn")
	c := masterClient(t, dataDir, waitForURL(t, m))
	testenv.Eventually(t, 20*time.Second, "the master's own target", func() bool {
		tg, err := c.Target(context.Background(), "hub")
		return err == nil && tg.Status == muster.StatusNormal
	})
	return m, c
}

// masterClient is a client of the admin key of the master on dataDir,
// listening at url.
func masterClient(t *testing.T, dataDir, url string) *httpapi.Client {
	t.Helper()
	token, _ := os.ReadFile(filepath.Join(dataDir, master.AdminTokenFile))
	roots, _ := pki.LoadPool(filepath.Join(dataDir, pki.CACertFile))
	c, err := httpapi.NewClient(url, strings.TrimSpace(string(token)), roots)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startOn applies job and starts it once the target has it.
func startOn(t *testing.T, c *httpapi.Client, job muster.Job) muster.StartResult {
	t.Helper()
	applyJobs(t, c, job)
	var res muster.StartResult
	testenv.Eventually(t, 20*time.Second, "the job to start", func() bool {
		var err error
		res, err = c.StartJob(context.Background(), job.Name, httpapi.StartBody{})
		return err == nil
	})
	return res
}
