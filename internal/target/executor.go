package target

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/musterhq/muster"
)

// outputInterval is how often a running step's output is saved and sent.
const outputInterval = time.Second

// killGrace is how long a step's process group has between SIGTERM and
// SIGKILL when it is stopped.
const killGrace = 5 * time.Second

// executor runs jobs: at most one run per job at a time on this target (SQL
// Server Agent's rule), each step a process in its own process group so
// that the whole tree can be killed.
type executor struct {
	m       *Main
	mu      sync.Mutex
	running map[string]*activeRun // by job name
	wg      sync.WaitGroup
}

// activeRun is a run that has been recorded and is executing, or about to.
type activeRun struct {
	job         muster.Job
	run         muster.Run
	scheduledAt time.Time // zero unless a schedule fired the run
	ctx         context.Context
	cancel      context.CancelCauseFunc
	spawned     chan struct{} // closed once the first step's process started, or the run ended
	spawnOnce   sync.Once
}

// markSpawned closes spawned, once.
func (ar *activeRun) markSpawned() { ar.spawnOnce.Do(func() { close(ar.spawned) }) }

func newExecutor(m *Main) *executor {
	return &executor{m: m, running: map[string]*activeRun{}}
}

// recover records runs a previous process left running as abandoned, and
// kills what is left of their process groups.
func (e *executor) recover(ctx context.Context) error {
	runs, pgids, err := e.m.store.runningRuns(ctx)
	if err != nil {
		return err
	}
	for i, r := range runs {
		if pgids[i] > 0 {
			syscall.Kill(-pgids[i], syscall.SIGKILL)
		}
		// A crash between spawning a step and recording its process group
		// leaves no pgid; every step process carries its run id in its
		// environment, so look for them too.
		killRunProcesses(r.RunID)
		now := e.m.now()
		r.Status = muster.RunAbandoned
		r.Message = "the target stopped while the run was in progress"
		r.FinishedAt = &now
		r.DurationMS = now.Sub(r.StartedAt).Milliseconds()
		for j := range r.Steps {
			if r.Steps[j].Status == muster.AttemptRunning {
				r.Steps[j].Status = muster.AttemptCanceled
				r.Steps[j].Message = "interrupted: the target stopped"
			}
		}
		if err := e.m.store.saveRun(ctx, r, 0); err != nil {
			return err
		}
		e.m.log.Warn("run abandoned by a previous process", "job", r.Job, "run_id", r.RunID)
	}
	return nil
}

// begin records a new run in tx: running, or skipped when the job is
// already running here. The caller launches the returned run after commit.
func (e *executor) begin(ctx context.Context, tx *sql.Tx, job muster.Job, run muster.Run) (*activeRun, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if cur, busy := e.running[job.Name]; busy {
		run.Status = muster.RunSkipped
		run.Message = fmt.Sprintf("already running (run %s)", cur.run.RunID)
		return nil, e.recordSkipped(ctx, tx, run)
	}
	run.Status = muster.RunRunning
	if _, err := putRun(ctx, tx, run, 0); err != nil {
		return nil, err
	}
	if err := e.trim(ctx, tx); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancelCause(context.Background())
	ar := &activeRun{job: job, run: run, ctx: rctx, cancel: cancel, spawned: make(chan struct{})}
	e.running[job.Name] = ar
	return ar, nil
}

// recordSkipped writes a finished, skipped run in tx. The caller wakes the
// uploader after commit.
func (e *executor) recordSkipped(ctx context.Context, tx *sql.Tx, run muster.Run) error {
	run.Status = muster.RunSkipped
	run.FinishedAt = &run.StartedAt
	if _, err := putRun(ctx, tx, run, 0); err != nil {
		return err
	}
	return e.trim(ctx, tx)
}

// trim bounds the spool after a new run is recorded.
func (e *executor) trim(ctx context.Context, tx *sql.Tx) error {
	dropped, err := trimSpool(ctx, tx, e.m.cfg.Settings.SpoolLimit)
	if dropped > 0 {
		e.m.log.Warn("the spool is full: dropped the oldest runs the master has not received", "dropped", dropped, "spool_limit", e.m.cfg.Settings.SpoolLimit)
	}
	return err
}

// forget drops a run whose recording transaction failed.
func (e *executor) forget(ar *activeRun) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running[ar.job.Name] == ar {
		delete(e.running, ar.job.Name)
	}
	ar.cancel(nil)
}

// launch executes a committed run in the background.
func (e *executor) launch(ar *activeRun) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer ar.markSpawned()
		e.execute(ar)
		e.forget(ar)
		e.m.wakeUploader()
	}()
}

// stop cancels the job's running run, if any.
func (e *executor) stop(job, reason string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ar, ok := e.running[job]; ok {
		ar.cancel(errors.New(reason))
	}
	return nil
}

// stopAll cancels every running run and returns how many there were.
func (e *executor) stopAll(reason string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ar := range e.running {
		ar.cancel(errors.New(reason))
	}
	return len(e.running)
}

// wait waits for every launched run to finish.
func (e *executor) wait() { e.wg.Wait() }

// execute runs the steps in order; the first that does not succeed ends the
// run with its status.
func (e *executor) execute(ar *activeRun) {
	run := ar.run
	status := muster.RunSucceeded
	for i, step := range ar.job.Steps {
		attempt := e.runStep(ar, &run, i, step)
		if attempt.Status != muster.AttemptSucceeded {
			status = runStatusOf(attempt.Status)
			run.Message = fmt.Sprintf("step %q %s", step.Name, attempt.Status)
			if attempt.Message != "" {
				run.Message += ": " + attempt.Message
			}
			break
		}
	}
	now := e.m.now()
	run.Status, run.FinishedAt, run.DurationMS = status, &now, now.Sub(run.StartedAt).Milliseconds()
	if err := e.m.store.saveRun(context.Background(), run, 0); err != nil {
		e.m.log.Error("record finished run", "run_id", run.RunID, "err", err)
	}
}

func runStatusOf(a muster.AttemptStatus) muster.RunStatus {
	switch a {
	case muster.AttemptTimedOut:
		return muster.RunTimedOut
	case muster.AttemptCanceled:
		return muster.RunCanceled
	}
	return muster.RunFailed
}

// runStep runs one step as a process group and records the attempt in run.
func (e *executor) runStep(ar *activeRun, run *muster.Run, index int, step muster.Step) muster.StepAttempt {
	attempt := muster.StepAttempt{Name: step.Name, Attempt: 1, Status: muster.AttemptRunning}
	if err := context.Cause(ar.ctx); err != nil {
		attempt.Status, attempt.Message, attempt.StartedAt = muster.AttemptCanceled, err.Error(), e.m.now()
		run.Steps = append(run.Steps, attempt)
		return attempt
	}
	out := newOutput(int(e.m.cfg.Settings.OutputLimit))
	cmd := e.command(step)
	cmd.Env = e.environment(ar, run, step)
	cmd.Dir = e.m.home
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Output pipes stay open while any process of the group holds them;
	// WaitDelay stops Wait from hanging on such leftovers.
	cmd.WaitDelay = 2 * time.Second

	err := cmd.Start()
	attempt.StartedAt = e.m.now()
	ar.markSpawned()
	if err != nil {
		attempt.Status, attempt.Message = muster.AttemptFailed, fmt.Sprintf("cannot start: %v", err)
		run.Steps = append(run.Steps, attempt)
		return attempt
	}
	pgid := cmd.Process.Pid
	run.Steps = append(run.Steps, attempt)
	if err := e.m.store.saveRun(context.Background(), *run, pgid); err != nil {
		e.m.log.Error("record step start", "run_id", run.RunID, "err", err)
	}
	e.m.wakeUploader()

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var waitErr error
	// While the step runs, its output so far is saved and uploaded about
	// once a second, so a long step can be followed on the master.
	tick := time.NewTicker(outputInterval)
	defer tick.Stop()
	var streamed int64
loop:
	for {
		select {
		case <-tick.C:
			if n := out.written(); n != streamed {
				streamed = n
				attempt.Output = out.String()
				run.Steps[len(run.Steps)-1] = attempt
				if err := e.m.store.saveRun(context.Background(), *run, pgid); err != nil {
					e.m.log.Error("record step output", "run_id", run.RunID, "err", err)
				}
				e.m.wakeUploader()
			}
		case waitErr = <-done:
			break loop
		case <-ar.ctx.Done():
			syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case waitErr = <-done:
			case <-time.After(killGrace):
				syscall.Kill(-pgid, syscall.SIGKILL)
				waitErr = <-done
			}
			attempt.Status, attempt.Message = muster.AttemptCanceled, context.Cause(ar.ctx).Error()
			break loop
		}
	}
	// Whatever the step left behind in its group goes with it.
	syscall.Kill(-pgid, syscall.SIGKILL)

	attempt.DurationMS = e.m.now().Sub(attempt.StartedAt).Milliseconds()
	attempt.Output = out.String()
	if cmd.ProcessState != nil && cmd.ProcessState.Exited() {
		code := cmd.ProcessState.ExitCode()
		attempt.ExitCode = &code
	}
	if attempt.Status == muster.AttemptRunning {
		switch {
		case waitErr == nil:
			attempt.Status = muster.AttemptSucceeded
		case attempt.ExitCode != nil:
			attempt.Status, attempt.Message = muster.AttemptFailed, fmt.Sprintf("exit code %d", *attempt.ExitCode)
		default:
			attempt.Status, attempt.Message = muster.AttemptFailed, waitErr.Error()
		}
	}
	run.Steps[len(run.Steps)-1] = attempt
	return attempt
}

// command builds the process for a step.
func (e *executor) command(step muster.Step) *exec.Cmd {
	if step.Shell != "" {
		return exec.Command("/bin/sh", "-c", step.Shell)
	}
	cmd := exec.Command(step.Command[0], step.Command[1:]...)
	// Resolve the program on the step's PATH, not the daemon's.
	if !strings.Contains(step.Command[0], "/") {
		cmd.Path, cmd.Err = stepProgram(step.Command[0])
	}
	return cmd
}

// stepProgram finds name in the directories of stepPath.
func stepProgram(name string) (string, error) {
	for _, dir := range filepath.SplitList(stepPath) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q not found in %s", name, stepPath)
}

// stepPath is the PATH every step gets.
const stepPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// environment is a step's whole environment: a clean, documented set, never
// the daemon's own (no operator keys, no MUSTER_ settings leak into steps).
func (e *executor) environment(ar *activeRun, run *muster.Run, step muster.Step) []string {
	lang := os.Getenv("LANG")
	if lang == "" {
		lang = "C.UTF-8"
	}
	scheduled := ""
	if !ar.scheduledAt.IsZero() {
		scheduled = ar.scheduledAt.In(e.m.loc).Format(time.RFC3339)
	}
	return []string{
		"PATH=" + stepPath,
		"HOME=" + e.m.home,
		"LANG=" + lang,
		"MUSTER_JOB=" + run.Job,
		"MUSTER_TARGET=" + run.Target,
		"MUSTER_RUN_ID=" + run.RunID,
		"MUSTER_STEP=" + step.Name,
		"MUSTER_SCHEDULED_AT=" + scheduled,
	}
}

// killRunProcesses kills the process groups of processes whose environment
// names the run, as every step's does (MUSTER_RUN_ID). It reads /proc and
// does nothing where there is none.
func killRunProcesses(runID string) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	marker := []byte("\x00MUSTER_RUN_ID=" + runID + "\x00")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(append([]byte{0}, env...), marker) {
			continue
		}
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid > 1 {
			syscall.Kill(-pgid, syscall.SIGKILL)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
}
