package e2e_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/testenv"
)

// startRunning starts the job and waits until the master shows its first
// step running.
func startRunning(t *testing.T, env *testenv.Env, job string) []muster.RunRef {
	t.Helper()
	ctx := context.Background()
	res, err := env.Client.StartJob(ctx, job, httpapi.StartBody{})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, "the first step to run", func() bool {
		runs, _ := env.Client.Runs(ctx, res.Refs(), 0)
		return len(runs) == 1 && len(runs[0].Steps) == 1 && runs[0].Steps[0].Status != ""
	})
	return res.Refs()
}

// finished waits until the master has the runs' outcomes.
func finished(t *testing.T, env *testenv.Env, refs []muster.RunRef) []muster.Run {
	t.Helper()
	var runs []muster.Run
	testenv.Eventually(t, wait, "the runs to finish", func() bool {
		runs, _ = env.Client.Runs(context.Background(), refs, 0)
		return len(runs) == len(refs) && allDone(runs)
	})
	return runs
}

// outputs lists a run's attempts as "name:status:output".
func outputs(r muster.Run) string {
	var out []string
	for _, a := range r.Steps {
		out = append(out, a.Name+":"+string(a.Status)+":"+strings.TrimSpace(a.Output))
	}
	return strings.Join(out, " ")
}

// A run keeps the definition it started with: a job changed while it runs
// changes its next run, and a job deleted while it runs lets it end, and
// keeps its history. A disabled job still starts by hand.
func TestRunKeepsItsDefinition(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	ctx := context.Background()
	gate := filepath.Join(t.TempDir(), "gate")
	v1 := steps(sh("a", fmt.Sprintf("while [ ! -f %s ]; do sleep 0.05; done; echo v1", gate)), sh("b", "echo v1"))
	v2 := steps(sh("a", "echo v2"), sh("b", "echo v2"))

	apply(t, env, v1)
	settled(t, env)
	refs := startRunning(t, env, "flow")
	apply(t, env, v2)
	settled(t, env)
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := finished(t, env, refs)[0]; r.Status != muster.RunSucceeded || outputs(r) != "a:succeeded:v1 b:succeeded:v1" {
		t.Errorf("changed while running: %s [%s], want the old definition's", r.Status, outputs(r))
	}
	if r := startAndWait(t, env, "flow")[0]; outputs(r) != "a:succeeded:v2 b:succeeded:v2" {
		t.Errorf("the next run: [%s], want the new definition's", outputs(r))
	}

	os.Remove(gate)
	apply(t, env, v1)
	settled(t, env)
	refs = startRunning(t, env, "flow")
	if _, err := env.Client.DeleteJob(ctx, "flow"); err != nil {
		t.Fatal(err)
	}
	settled(t, env)
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := finished(t, env, refs)[0]; r.Status != muster.RunSucceeded || outputs(r) != "a:succeeded:v1 b:succeeded:v1" {
		t.Errorf("deleted while running: %s [%s], want it run to its end", r.Status, outputs(r))
	}

	off := steps(sh("a", "echo by hand"))
	off.Enabled = false
	apply(t, env, off)
	settled(t, env)
	if r := startAndWait(t, env, "flow")[0]; r.Status != muster.RunSucceeded || outputs(r) != "a:succeeded:by hand" {
		t.Errorf("a disabled job started by hand: %s [%s] %q", r.Status, outputs(r), r.Message)
	}
}

// A STOP while a failed step waits for its retry ends the run there; the
// attempt keeps its own outcome and says it was not retried.
func TestStopWhileAStepWaitsForItsRetry(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	ctx := context.Background()
	apply(t, env, steps(muster.Step{Name: "a", Shell: "exit 3", Retry: &muster.Retry{Attempts: 2, Interval: muster.Duration(time.Hour)}}))
	settled(t, env)
	res, err := env.Client.StartJob(ctx, "flow", httpapi.StartBody{})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, "the step to wait for its retry", func() bool {
		runs, _ := env.Client.Runs(ctx, res.Refs(), 0)
		return len(runs) == 1 && len(runs[0].Steps) == 1 && runs[0].Steps[0].Status == muster.AttemptRetry
	})
	if _, err := env.Client.StopJob(ctx, "flow", nil); err != nil {
		t.Fatal(err)
	}
	r := finished(t, env, res.Refs())[0]
	if r.Status != muster.RunCanceled || len(r.Steps) != 1 {
		t.Fatalf("run %s [%s] %q, want canceled after one attempt", r.Status, attempts(r), r.Message)
	}
	a := r.Steps[0]
	if want := "exit code 3; not retried: stopped by the operator"; a.Status != muster.AttemptFailed || a.Message != want || a.ExitCode == nil || *a.ExitCode != 3 {
		t.Errorf("the attempt: %s %q exit %v, want failed %q exit 3", a.Status, a.Message, a.ExitCode, want)
	}
}

// How a step that cannot run, or is killed, is recorded: a shell's own
// 127 and 126 are exit codes; a program not found, a workdir that does not
// exist and a signal have none, and say why.
func TestStepsThatCannotRun(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	var jobs []muster.Job
	cases := []struct {
		step     muster.Step
		exitCode int // -1: none
		message  string
	}{
		{muster.Step{Shell: "no-such-program"}, 127, "exit code 127"},
		{muster.Step{Shell: "/etc/passwd"}, 126, "exit code 126"},
		{muster.Step{Command: []string{"no-such-program"}}, -1,
			`"no-such-program" not found in /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`},
		{muster.Step{Command: []string{"/no/such/program"}}, -1, "cannot start: fork/exec /no/such/program: no such file or directory"},
		{muster.Step{Shell: "true", Workdir: "/no/such/dir"}, -1, `workdir "/no/such/dir": not a directory on this target`},
		{muster.Step{Shell: "kill -KILL $$"}, -1, "signal: killed"},
		{muster.Step{Command: []string{"sh", "-c", "kill -TERM $$"}}, -1, "signal: terminated"},
	}
	for i, tc := range cases {
		tc.step.Name = "s"
		j := steps(tc.step)
		j.Name = fmt.Sprintf("case%d", i)
		jobs = append(jobs, j)
	}
	apply(t, env, jobs...)
	settled(t, env)
	for i, tc := range cases {
		r := startAndWait(t, env, jobs[i].Name)[0]
		a := r.Steps[0]
		code := -1
		if a.ExitCode != nil {
			code = *a.ExitCode
		}
		if r.Status != muster.RunFailed || a.Status != muster.AttemptFailed || code != tc.exitCode || a.Message != tc.message {
			t.Errorf("%v: run %s, attempt %s exit %d %q; want failed, exit %d %q", tc.step, r.Status, a.Status, code, a.Message, tc.exitCode, tc.message)
		}
	}
}

// A step's environment, later layers winning: the job's env, target_env,
// the target's override, the step's env, then a START's --env; muster's
// own variables last.
func TestEnvironmentPrecedence(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	ctx := context.Background()
	j := steps(muster.Step{Name: "show", Shell: "echo $A $B $C $D $E $MUSTER_JOB $MUSTER_TARGET $MUSTER_STEP $MUSTER_SCHEDULED_AT.",
		Env: map[string]string{"D": "step", "E": "step"}})
	j.Env = map[string]string{"A": "job", "B": "job", "C": "job", "D": "job", "E": "job"}
	j.TargetEnv = map[string]map[string]string{"web1": {"B": "target_env", "C": "target_env", "D": "target_env"}}
	j.Overrides = []muster.Override{{Target: "web1", Env: map[string]string{"C": "override", "D": "override"}}}
	apply(t, env, j)
	settled(t, env)
	res, err := env.Client.StartJob(ctx, "flow", httpapi.StartBody{Env: map[string]string{"E": "start"}})
	if err != nil {
		t.Fatal(err)
	}
	r := finished(t, env, res.Refs())[0]
	if want := "job target_env override step start flow web1 show ."; strings.TrimSpace(r.Steps[0].Output) != want {
		t.Errorf("got %q, want %q", r.Steps[0].Output, want)
	}
}
