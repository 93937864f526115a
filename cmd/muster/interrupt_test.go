package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/pki"
	"github.com/musterhq/muster/internal/testenv"
)

// Interrupted (Ctrl-C, or SIGTERM from a CI runner's timeout), a command
// that waits stops waiting and says so, and what goes on without it; it
// exits 130 (143 for SIGTERM), neither 0 nor the 1 of a failed run. The
// runs it waited for go on.
func TestInterruptedWaitSaysWhatGoesOn(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	enlist(t, env, "web2") // enlisted, never started: it collects nothing
	applyJobs(t, env.Client, shellJob("long", "sleep 300", "web1"))
	t.Setenv("MUSTER_ADDR", env.Master.URL)
	t.Setenv("MUSTER_TOKEN", env.Master.AdminToken)
	t.Setenv("MUSTER_CACERT", filepath.Join(env.Dir, "master", pki.CACertFile))
	dir := t.TempDir()

	interrupt := func(t *testing.T, sig syscall.Signal, ready string, args ...string) (int, string) {
		t.Helper()
		cmd := startMuster(t, args...)
		out := cmd.Stdout.(*syncBuffer)
		testenv.Eventually(t, 20*time.Second, ready, func() bool { return strings.Contains(out.String(), ready) })
		cmd.Process.Signal(sig)
		err := cmd.Wait()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), out.String()
	}

	code, out := interrupt(t, syscall.SIGINT, "started long on web1: run ", "job", "start", "long", "--wait")
	if code != 130 || !strings.Contains(out, "muster: interrupted: stopped waiting; the runs go on on their targets: `muster job stop long` stops them, `muster job history long` shows how they end\n") {
		t.Errorf("job start --wait, interrupted: exit %d, output\n%s", code, out)
	}
	id := regexp.MustCompile(`started long on web1: run (\S+)`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("no run id in\n%s", out)
	}
	testenv.Eventually(t, 20*time.Second, "the run to be recorded running", func() bool {
		r, ok := runOf(t, env.Client, id[1])
		return ok && r.Status == muster.RunRunning
	})

	code, out = interrupt(t, syscall.SIGTERM, "== step main (attempt 1) ==", "job", "logs", id[1], "-f")
	if code != 143 || !strings.Contains(out, "muster: interrupted: stopped following run "+id[1]+"; it goes on: `muster job stop long --target web1` stops it\n") {
		t.Errorf("job logs -f, terminated: exit %d, output\n%s", code, out)
	}
	if r, _ := runOf(t, env.Client, id[1]); r.Status != muster.RunRunning {
		t.Errorf("the run is %s after the commands that waited for it were interrupted, want running", r.Status)
	}

	code, out = interrupt(t, syscall.SIGINT, id[1], "job", "history", "long", "-f")
	if code != 130 || !strings.Contains(out, "muster: interrupted: stopped following the history of long; its runs go on: `muster job stop long` stops them\n") {
		t.Errorf("job history -f, interrupted: exit %d, output\n%s", code, out)
	}

	file := filepath.Join(dir, "jobs.yaml")
	if err := os.WriteFile(file, []byte("jobs:\n  - name: far\n    targets: [web2]\n    steps: [{name: a, shell: 'true'}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out = interrupt(t, syscall.SIGINT, "waiting for the targets to apply them", "apply", "-f", file, "--wait")
	if code != 130 || !strings.Contains(out, "muster: interrupted: stopped waiting; what was posted stays posted, and the targets apply it when they poll: `muster downloadlist --pending` shows what they have not\n") {
		t.Errorf("apply --wait, interrupted: exit %d, output\n%s", code, out)
	}
}
