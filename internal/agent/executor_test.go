package agent

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/musterhq/muster"
)

// startRun records a run of job as an operator's START does and launches
// it; wait for it with m.exec.wait.
func startRun(t testing.TB, m *Main, job muster.Job, runID string) {
	t.Helper()
	ctx := context.Background()
	if err := job.Validate(); err != nil {
		t.Fatal(err)
	}
	var ar *activeRun
	err := m.store.update(ctx, func(tx *sql.Tx) error {
		var err error
		ar, err = m.exec.begin(ctx, tx, job, muster.Run{Job: job.Name, Target: m.enl.Name, RunID: runID,
			Trigger: muster.TriggerOperator, StartedAt: m.now(), Steps: []muster.StepAttempt{}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if ar == nil {
		t.Fatalf("run %s of %s was not begun", runID, job.Name)
	}
	m.exec.launch(ar)
}

// runJob executes one run of job to its end and returns it as the spool
// holds it.
func runJob(t testing.TB, m *Main, job muster.Job) muster.Run {
	t.Helper()
	startRun(t, m, job, "run-"+job.Name)
	m.exec.wait()
	return localRun(t, m, "run-"+job.Name)
}

// localRun returns a run from the spool.
func localRun(t testing.TB, m *Main, runID string) muster.Run {
	t.Helper()
	runs, err := m.store.localRuns(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if r.RunID == runID {
			return r.Run
		}
	}
	t.Fatalf("run %s is not in the spool", runID)
	return muster.Run{}
}

// flowJob is a job of shell steps built from name, script and flow
// actions.
func flowJob(name string, steps ...muster.Step) muster.Job {
	j := muster.NewJob()
	j.Name, j.Steps = name, steps
	return j
}

func TestRunOutcomeNamesTheFailingStep(t *testing.T) {
	for _, tc := range []struct {
		name    string
		steps   []muster.Step
		status  muster.RunStatus
		message string
	}{
		{"the last step fails", []muster.Step{{Name: "a", Shell: "true"}, {Name: "b", Shell: "exit 3"}},
			muster.RunFailed, `step "b" failed: exit code 3`},
		{"the flow ends it after a failure", []muster.Step{
			{Name: "risky", Shell: "exit 2", OnFailure: "goto:cleanup"},
			{Name: "cleanup", Shell: "true", OnSuccess: muster.ActionQuitFailure}},
			muster.RunFailed, `step "risky" failed: exit code 2; then step "cleanup" succeeded and its on_success is quit_failure`},
		{"the flow ends it with nothing failed", []muster.Step{{Name: "gate", Shell: "true", OnSuccess: muster.ActionQuitFailure}},
			muster.RunFailed, `step "gate" succeeded and its on_success is quit_failure`},
		{"a handled failure succeeds", []muster.Step{
			{Name: "risky", Shell: "exit 2", OnFailure: "goto:cleanup"},
			{Name: "cleanup", Shell: "true"}},
			muster.RunSucceeded, ""},
		{"a step times out", []muster.Step{{Name: "slow", Shell: "sleep 10", Timeout: muster.Duration(100 * time.Millisecond)}},
			muster.RunTimedOut, `step "slow" timed_out: timed out after 100ms`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestMain(t)
			r := runJob(t, m, flowJob("j", tc.steps...))
			if r.Status != tc.status || r.Message != tc.message {
				t.Errorf("got %s %q, want %s %q", r.Status, r.Message, tc.status, tc.message)
			}
		})
	}
}

// A failed step is tried again as often as its retry says, each attempt a
// row of the run, the failed ones that are retried marked retry.
func TestStepRetries(t *testing.T) {
	m := newTestMain(t)
	r := runJob(t, m, flowJob("flaky", muster.Step{Name: "main", Shell: "exit 1",
		Retry: &muster.Retry{Attempts: 2, Interval: muster.Duration(10 * time.Millisecond)}}))
	var got []string
	for _, a := range r.Steps {
		got = append(got, fmt.Sprintf("%s#%d:%s", a.Name, a.Attempt, a.Status))
	}
	if want := "main#1:retry main#2:retry main#3:failed"; strings.Join(got, " ") != want || r.Status != muster.RunFailed {
		t.Errorf("%s [%s], want failed [%s]", r.Status, strings.Join(got, " "), want)
	}
}

// With max_concurrent_runs 1, a second run waits, saying so, until the
// first ends.
func TestMaxConcurrentRunsQueues(t *testing.T) {
	m := newTestMain(t, func(c *Config) { c.Settings.MaxConcurrentRuns = 1 })
	startRun(t, m, flowJob("first", muster.Step{Name: "main", Shell: "sleep 0.2"}), "r1")
	startRun(t, m, flowJob("second", muster.Step{Name: "main", Shell: "true"}), "r2")
	queued := localRun(t, m, "r2")
	if !strings.HasPrefix(queued.Message, "queued: max_concurrent_runs (1)") {
		t.Errorf("the second run, while the first runs: %q", queued.Message)
	}
	m.exec.wait()
	first, second := localRun(t, m, "r1"), localRun(t, m, "r2")
	if first.Status != muster.RunSucceeded || second.Status != muster.RunSucceeded || second.Message != "" {
		t.Fatalf("runs %s, %s %q", first.Status, second.Status, second.Message)
	}
	if !second.Steps[0].StartedAt.After(first.FinishedAt.Add(-time.Millisecond)) {
		t.Errorf("the second run started at %s, before the first ended at %s", second.Steps[0].StartedAt, first.FinishedAt)
	}
}

// A step that exits 0 leaving a background child that holds its output
// open succeeds, stepWaitDelay after it exited, with the output it wrote;
// the child is killed with whatever else the step left.
func TestStepLeavingABackgroundChildSucceeds(t *testing.T) {
	m := newTestMain(t)
	r := runJob(t, m, flowJob("bg", muster.Step{Name: "main", Shell: "sleep 30 & echo started"}))
	if r.Status != muster.RunSucceeded || r.Message != "" {
		t.Errorf("run %s %q, want succeeded", r.Status, r.Message)
	}
	a := r.Steps[0]
	code := -1 // none
	if a.ExitCode != nil {
		code = *a.ExitCode
	}
	if a.Status != muster.AttemptSucceeded || a.Message != "" || code != 0 || a.Output != "started\n" {
		t.Errorf("step %s %q, exit code %d, output %q; want succeeded, exit code 0, output %q", a.Status, a.Message, code, a.Output, "started\n")
	}
}

// A STOP of a run queued behind max_concurrent_runs ends it at once,
// canceled before its step started, and frees its job, without waiting
// for a slot.
func TestStopQueuedRun(t *testing.T) {
	m := newTestMain(t, func(c *Config) { c.Settings.MaxConcurrentRuns = 1 })
	startRun(t, m, flowJob("long", muster.Step{Name: "main", Shell: "sleep 60"}), "r1")
	startRun(t, m, flowJob("queued", muster.Step{Name: "main", Shell: "true"}), "r2")
	if err := m.exec.stop("queued", "stopped by the operator"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the queued run to end", func() bool { return localRun(t, m, "r2").Status != muster.RunRunning })
	r2, r1, busy := localRun(t, m, "r2"), localRun(t, m, "r1"), m.exec.isRunning("queued")
	m.exec.stop("long", "cleanup")
	m.exec.wait()
	if want := `stopped by the operator, in step "main"`; r2.Status != muster.RunCanceled || r2.Message != want {
		t.Errorf("the stopped run is %s %q, want canceled %q", r2.Status, r2.Message, want)
	}
	if len(r2.Steps) != 1 || r2.Steps[0].Status != muster.AttemptCanceled || r2.Steps[0].ExitCode != nil {
		t.Errorf("its steps %+v, want one canceled that never started", r2.Steps)
	}
	if r1.Status != muster.RunRunning || busy {
		t.Errorf("the run holding the slot is %s, want still running; the stopped run's job busy: %v", r1.Status, busy)
	}
}

// The wall clock stepped back a minute while a step runs (NTP correcting a
// clock that was ahead) changes neither its duration nor its run's.
func TestDurationsAcrossAClockStep(t *testing.T) {
	clk := &clock{}
	m := newTestMain(t, func(c *Config) { c.Now = clk.Now })
	// The step waits until the test writes to the FIFO, after the step.
	fifo := filepath.Join(t.TempDir(), "go")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	startRun(t, m, flowJob("slow", muster.Step{Name: "main", Shell: "read -r _ < " + fifo}), "r1")
	m.exec.mu.Lock()
	ar := m.exec.running["slow"]
	m.exec.mu.Unlock()
	<-ar.spawned
	clk.Advance(-time.Minute)
	if err := os.WriteFile(fifo, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m.exec.wait()
	r := localRun(t, m, "r1")
	if r.Status != muster.RunSucceeded || r.Steps[0].DurationMS < 0 || r.DurationMS < r.Steps[0].DurationMS || r.DurationMS >= time.Minute.Milliseconds() {
		t.Errorf("run %s, %d ms, its step %d ms; want succeeded, 0 ≤ the step's ≤ the run's < 60000 ms", r.Status, r.DurationMS, r.Steps[0].DurationMS)
	}
}

// A step's environment has no exported bash functions (BASH_FUNC_…), from
// the job, the step or a START: where /bin/sh is bash, one named read
// would open an armed step's gate.
func TestStepEnvironmentDropsBashFunctions(t *testing.T) {
	m := newTestMain(t, func(c *Config) { c.Settings.Lang = "C.UTF-8" })
	j := flowJob("j", muster.Step{Name: "main", Shell: "true", Env: map[string]string{"BASH_FUNC_true%%": "() { :; }", "STEP": "s"}})
	j.Env = map[string]string{"BASH_FUNC_read%%": "() { :; }", "JOB": "j"}
	ar := &activeRun{job: j, env: map[string]string{"BASH_FUNC_exit%%": "() { :; }", "BASH_FUNC_X": "x", "START": "1"}}
	run := muster.Run{Job: "j", Target: "web1", RunID: "r1"}
	env := m.exec.environment(ar, &run, j.Steps[0])
	var got []string
	for k := range env {
		if !strings.HasPrefix(k, "MUSTER_") {
			got = append(got, k+"="+env[k])
		}
	}
	slices.Sort(got)
	want := []string{"HOME=" + m.home, "JOB=j", "LANG=C.UTF-8", "PATH=" + stepPath, "START=1", "STEP=s"}
	if !slices.Equal(got, want) {
		t.Errorf("environment %q, want %q", got, want)
	}
}

// A run stopped, or timed out, while a failed step waits to be retried
// ends there, and the step's last attempt says what it was, not retry: no
// retry came.
func TestRunEndedWhileAStepWaitsForItsRetry(t *testing.T) {
	m := newTestMain(t)
	j := flowJob("flaky", muster.Step{Name: "main", Shell: "exit 3",
		Retry: &muster.Retry{Attempts: 2, Interval: muster.Duration(time.Hour)}})
	j.Timeout = muster.Duration(200 * time.Millisecond)
	r := runJob(t, m, j)
	if r.Status != muster.RunTimedOut || len(r.Steps) != 1 {
		t.Fatalf("run %s with %d attempts, want timed_out after one", r.Status, len(r.Steps))
	}
	a := r.Steps[0]
	if want := "exit code 3; not retried: the job timed out"; a.Status != muster.AttemptFailed || a.Message != want {
		t.Errorf("the last attempt: %s %q, want failed %q", a.Status, a.Message, want)
	}
}

// Retries count towards a run's bound: a goto loop over a step that is
// retried ends once the run has made muster.MaxRunAttempts attempts, which
// the master takes in one report, and not after 10 × (retries + 1) of
// them, which it refuses.
func TestRetriesInAGotoLoopAreBounded(t *testing.T) {
	m := newTestMain(t)
	// A program that does not exist fails at once, without a fork.
	r := runJob(t, m, flowJob("loop", muster.Step{Name: "main", Command: []string{"no-such-program"}, OnFailure: "goto:main",
		Retry: &muster.Retry{Attempts: muster.MaxRetryAttempts}}))
	if len(r.Steps) != muster.MaxRunAttempts {
		t.Errorf("%d attempts, want %d", len(r.Steps), muster.MaxRunAttempts)
	}
	want := fmt.Sprintf("the run made %d step attempts, the most a run may; is a goto looping?", muster.MaxRunAttempts)
	if r.Status != muster.RunFailed || !strings.HasPrefix(r.Message, want) {
		t.Errorf("run %s %q, want failed %q…", r.Status, r.Message, want)
	}
	last := r.Steps[len(r.Steps)-1]
	if last.Status != muster.AttemptFailed || !strings.HasSuffix(last.Message, "not retried: the run made its most attempts") {
		t.Errorf("the last attempt: %s %q", last.Status, last.Message)
	}
}
