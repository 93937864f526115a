package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
)

// withCgroups makes m track its runs with cgroups, or skips the test
// saying why it cannot.
func withCgroups(t *testing.T, m *Main) {
	t.Helper()
	base, err := cgroupBase(m.enl.UID)
	if err != nil {
		t.Skipf("runs cannot have cgroups here (%v); what the fallback guarantees is tested elsewhere", err)
	}
	m.cg.base = base
}

// escapee is a step that leaves a process that escapes both its process
// group and its run id (setsid, and env -i), then waits; the process is
// found by its marker, a sleep duration no one else uses.
func escapee() (script, marker string) {
	marker = fmt.Sprintf("%d.%d", 100000+rand.IntN(800000), rand.IntN(1000))
	return fmt.Sprintf("setsid env -i sh -c 'sleep %s' & sleep 1000", marker), marker
}

// withArg returns the live processes with arg in their command line.
func withArg(arg string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte("\x00"+arg+"\x00")) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
				continue // a zombie: it is dead
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

func TestOwnCgroupIsFoundFromMountinfo(t *testing.T) {
	own, err := ownCgroup()
	if err != nil {
		t.Skipf("no cgroup v2 here: %v", err)
	}
	if _, err := os.Stat(filepath.Join(own, "cgroup.procs")); err != nil {
		t.Fatalf("%s is not a cgroup: %v", own, err)
	}
	procs, err := os.ReadFile(filepath.Join(own, "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(append([]byte("\n"), procs...), []byte("\n"+strconv.Itoa(os.Getpid())+"\n")) {
		t.Errorf("this process is not in %s", own)
	}
}

// A step that times out goes with every process it started, even one
// that left its process group and cleared its environment.
func TestTimedOutStepLeavesNoProcess(t *testing.T) {
	m := newTestMain(t)
	withCgroups(t, m)
	script, marker := escapee()
	job := flowJob("hang", muster.Step{Name: "main", Shell: script, Timeout: muster.Duration(time.Second)})
	startRun(t, m, job, "r1")
	waitFor(t, 10*time.Second, "the detached process", func() bool { return len(withArg(marker)) == 1 })
	m.exec.wait()
	if r := localRun(t, m, "r1"); r.Status != muster.RunTimedOut {
		t.Errorf("run %s, want timed_out", r.Status)
	}
	if pids := withArg(marker); len(pids) > 0 {
		t.Errorf("processes of the timed-out step survive: %v", pids)
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(m.cg.base, "run-*")); len(left) > 0 {
		t.Errorf("the run's cgroup is left: %v", left)
	}
	if got := m.cg.processTracking(); got != agentproto.ProcessTrackingCgroup {
		t.Errorf("the heartbeat says %q", got)
	}
}

// targetProcess is a target daemon in its own process (this test binary,
// see TestMain), which a test can kill with SIGKILL.
type targetProcess struct {
	dir string
	cmd *exec.Cmd
	log bytes.Buffer
}

func (p *targetProcess) start(t *testing.T) {
	t.Helper()
	p.cmd = exec.Command(os.Args[0])
	p.cmd.Env = append(os.Environ(), "MUSTER_AGENT_DAEMON="+p.dir)
	p.cmd.Stdout, p.cmd.Stderr = &p.log, &p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

func (p *targetProcess) kill() {
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

// A target killed with SIGKILL mid-run leaves its run's processes running
// (nothing is left to kill them); the next start kills them, even one
// that left its process group and cleared its environment.
func TestKilledTargetLeavesNoProcessAfterRestart(t *testing.T) {
	if tracking, err := ProcessTracking(); tracking != agentproto.ProcessTrackingCgroup {
		t.Skipf("runs cannot have cgroups here (%v); the fault suite's T8 covers the fallback", err)
	}
	tm := startTestMaster(t)
	dir := t.TempDir()
	m := tm.enlistIn(t, "web1", dir)
	m.Close() // the daemon runs in its own process
	p := &targetProcess{dir: dir}
	p.start(t)
	defer func() {
		p.kill()
		if err := RemoveCgroups(m.enl.UID); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", p.log.String())
		}
	}()
	script, marker := escapee()
	tm.apply(t, shellJob("hang", []string{"web1"}, script))
	tm.settled(t)
	id := tm.start(t, "hang")[0]
	waitFor(t, time.Minute, "the detached process", func() bool { return len(withArg(marker)) == 1 })
	p.kill()
	if len(withArg(marker)) != 1 {
		t.Fatal("the detached process died with the target; the test proves nothing")
	}
	p.start(t)
	waitFor(t, time.Minute, "the run recorded abandoned", func() bool {
		runs, err := tm.api.Runs(context.Background(), []muster.RunRef{{RunID: id}}, 0)
		return err == nil && len(runs) == 1 && runs[0].Status == muster.RunAbandoned
	})
	if pids := withArg(marker); len(pids) > 0 {
		t.Errorf("processes of the abandoned run survive the restart: %v", pids)
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// Killing the cgroup of a run that has none (killed before its cgroup was
// made, or whose cgroup is already removed) returns at once: a target
// restarting after SIGKILL does not wait cgroupEmptyWait for each such run
// before it schedules again.
func TestKillMissingCgroupDoesNotWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		killCgroup(filepath.Join(t.TempDir(), "run-none"))
		if waited := time.Since(start); waited != 0 {
			t.Fatalf("killCgroup of a missing cgroup waited %s", waited)
		}
	})
}

// A run's cgroup is removed with the cgroups a step made below it, by the
// run's end and by the sweep after a daemon was killed: a cgroup with
// another below it cannot be removed by itself.
func TestRunCgroupIsRemovedWithTheCgroupsBelowIt(t *testing.T) {
	base, err := cgroupBase(fmt.Sprintf("test-%d", os.Getpid()))
	if err != nil {
		t.Skipf("runs cannot have cgroups here (%v)", err)
	}
	defer os.Remove(base)
	c := &cgroups{base: base}
	for _, how := range []string{"run's end", "sweep"} {
		rc, err := c.create("r-" + strings.ReplaceAll(how, " ", "-"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(rc.path, "step", "below"), 0o755); err != nil {
			t.Fatal(err)
		}
		if how == "run's end" {
			err = rc.remove()
		} else {
			syscall.Close(rc.fd)
			var n int
			n, err = sweepCgroups(base, func(string) bool { return false })
			if err == nil && n != 1 {
				t.Errorf("the sweep removed %d run cgroups, want 1", n)
			}
		}
		if err != nil {
			t.Errorf("%s: %v", how, err)
		}
		if _, err := os.Stat(rc.path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after the %s the run's cgroup %s is still there (%v)", how, rc.path, err)
		}
	}
}
