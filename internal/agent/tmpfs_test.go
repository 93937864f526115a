package agent

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
)

// mountTmpfs mounts a tmpfs of the given size on a new directory, unmounted
// when the test ends. Mounting needs root: the test is skipped otherwise.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a small tmpfs as a full data directory needs root to mount; the tests that inject SQLITE_FULL cover the same paths")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// backlogged returns a run's state as it waits in the backlog.
func backlogged(m *Main, runID string) (muster.Run, bool) {
	m.backlog.mu.Lock()
	defer m.backlog.mu.Unlock()
	p, ok := m.backlog.runs[runID]
	if !ok {
		return muster.Run{}, false
	}
	return p.run, true
}

// A target whose data directory (a 3 MiB tmpfs) fills up during a run
// records that run's true outcome once space returns, and the fires that
// could not start meanwhile as skipped; while the disk is full it says so.
func TestDataDirectoryFillsUpDuringARun(t *testing.T) {
	dir := mountTmpfs(t, "3m")
	tm := startTestMaster(t)
	// Polls held a second at most: each says whether the disk is full.
	m := tm.enlistIn(t, "web1", dir, func(c *Config) { c.PollWait = time.Second })
	runTarget(t, m)
	filler := filepath.Join(dir, "filler")
	fill := shellJob("fill", []string{"web1"}, "cat /dev/zero > '"+filler+"' 2>/dev/null; echo side effect done")
	tick := shellJob("tick", []string{"web1"}, "true")
	tick.Schedules = []muster.Schedule{{Name: "every-second", Cron: "* * * * * *"}}
	tm.apply(t, fill, tick)
	waitFor(t, time.Minute, "web1 to hold both jobs", func() bool { jobs, _ := m.Jobs(context.Background()); return len(jobs) == 2 })

	id := tm.start(t, "fill")[0]
	waitFor(t, time.Minute, "the run to end on the full disk", func() bool {
		r, ok := backlogged(m, id)
		return ok && r.Status.Finished()
	})
	waitFor(t, time.Minute, "scheduled fires refused by the full disk", func() bool { return m.sched.refused.Load() >= 2 })
	if !m.diskFull() {
		t.Error("the target does not say its disk is full")
	}
	// The master shows it: `muster target list` says disk_full, and
	// `--status disk_full` selects the target.
	waitFor(t, time.Minute, "the master to show web1 disk_full", func() bool { return diskFullShown(t, tm) })
	runs, err := tm.api.Runs(context.Background(), []muster.RunRef{{RunID: id}}, 0)
	if err != nil || len(runs) != 1 || runs[0].Status != muster.RunRunning {
		t.Fatalf("while the disk is full the master holds %+v (%v), want the run still running", runs, err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	r := tm.finished(t, id)[0]
	if r.Status != muster.RunSucceeded || r.Steps[0].Output != "side effect done\n" {
		t.Errorf("once space returned the master holds %s %q, want succeeded with the step's output", r.Status, r.Steps[0].Output)
	}
	waitFor(t, time.Minute, "the refused fires recorded as skipped on the master", func() bool {
		history, err := tm.api.History(context.Background(), "tick", "", 1000)
		if err != nil {
			return false
		}
		for _, h := range history {
			if h.Status == muster.RunSkipped && strings.Contains(h.Message, "could not start") && strings.Contains(h.Message, "data directory is full") {
				return true
			}
		}
		return false
	})
	waitFor(t, time.Minute, "the disk no longer said full", func() bool { return !m.diskFull() })
	waitFor(t, time.Minute, "the master to show web1 without disk_full", func() bool { return diskFullCleared(t, tm) })
}

// diskFullShown reports whether the master shows web1 as disk_full both
// in its list of targets and in the list filtered by the flag.
func diskFullShown(t *testing.T, tm *testMaster) bool {
	t.Helper()
	all, err := tm.api.Targets(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	flagged, err := tm.api.Targets(context.Background(), muster.FlagDiskFull)
	if err != nil {
		t.Fatal(err)
	}
	return len(all) == 1 && slices.Contains(all[0].Flags, muster.FlagDiskFull) && len(flagged) == 1
}

// diskFullCleared reports whether the master shows web1 without the flag,
// in both lists.
func diskFullCleared(t *testing.T, tm *testMaster) bool {
	t.Helper()
	all, err := tm.api.Targets(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	flagged, err := tm.api.Targets(context.Background(), muster.FlagDiskFull)
	if err != nil {
		t.Fatal(err)
	}
	return len(all) == 1 && !slices.Contains(all[0].Flags, muster.FlagDiskFull) && len(flagged) == 0
}

// A target killed mid-run whose data directory is full when it starts
// again starts all the same: the run it finds running is recorded
// abandoned in memory, and written and sent once space returns, as any
// run state the full disk refuses. (It refused to start, "the data
// directory is full", and a service manager restarting it met the same
// until someone freed space.)
func TestTargetRestartsOnAFullDisk(t *testing.T) {
	dir := mountTmpfs(t, "3m")
	tm := startTestMaster(t)
	m := tm.enlistIn(t, "web1", dir)
	m.Close() // the daemon runs in its own process
	p := &targetProcess{dir: dir}
	p.start(t)
	defer func() {
		p.kill()
		if t.Failed() {
			t.Logf("daemon log:\n%s", p.log.String())
		}
	}()
	tm.apply(t, shellJob("hang", []string{"web1"}, "sleep 600"))
	tm.settled(t)
	id := tm.start(t, "hang")[0]
	waitFor(t, time.Minute, "the run to be running on the master", func() bool {
		runs, err := tm.api.Runs(context.Background(), []muster.RunRef{{RunID: id}}, 0)
		return err == nil && len(runs) == 1 && runs[0].Status == muster.RunRunning && len(runs[0].Steps) == 1
	})
	p.kill()
	filler := filepath.Join(dir, "filler")
	exec.Command("sh", "-c", "cat /dev/zero > '"+filler+"'").Run() // fails, the disk full

	m = openTarget(t, dir)
	if r, ok := backlogged(m, id); !ok || r.Status != muster.RunAbandoned {
		t.Fatalf("the run left running waits in memory as %+v (%v), want abandoned", r.Status, ok)
	}
	runTarget(t, m)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if r := tm.finished(t, id)[0]; r.Status != muster.RunAbandoned {
		t.Errorf("once space returned the master holds the run %s, want abandoned", r.Status)
	}
}
