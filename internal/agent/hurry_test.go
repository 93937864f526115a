package agent

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/musterhq/muster"
)

// Hurry, while the daemon stops its runs (the operator's second signal),
// kills their steps at once instead of giving them the grace between
// SIGTERM and SIGKILL: a step that ignores SIGTERM, given an hour here, is
// killed, and its run recorded canceled as the stop said.
func TestHurryKillsStepsWithoutTheirGrace(t *testing.T) {
	m := newTestMain(t, func(c *Config) { c.KillGrace = time.Hour })
	ready := filepath.Join(t.TempDir(), "ready")
	t.Cleanup(func() { signalRun("r1", syscall.SIGKILL) }) // should the test fail
	startRun(t, m, flowJob("stubborn", muster.Step{Name: "main", Shell: "trap '' TERM; touch '" + ready + "'; sleep 600 & wait"}), "r1")
	waitFor(t, 30*time.Second, "the step to ignore SIGTERM", func() bool { _, err := os.Stat(ready); return err == nil })

	if n := m.exec.stopAll("the target daemon stopped"); n != 1 {
		t.Fatalf("stopAll stopped %d runs, want 1", n)
	}
	m.Hurry()
	waitFor(t, 30*time.Second, "the run to end", func() bool { return localRun(t, m, "r1").Status != muster.RunRunning })
	m.exec.wait()
	r := localRun(t, m, "r1")
	if want := `the target daemon stopped, in step "main"`; r.Status != muster.RunCanceled || r.Message != want {
		t.Errorf("run %s %q, want %s %q", r.Status, r.Message, muster.RunCanceled, want)
	}
}
