package agent

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/musterhq/muster"
)

// outputInterval is how often a running step's output is saved and sent.
const outputInterval = time.Second

// startSaveDelay is how long a step's process runs before its start is
// saved and uploaded. Most steps of most jobs end sooner, and are then
// saved once, ended: one synced commit of the target's store and one
// upload where there were two, each of which the end's had to wait
// behind. The run itself was recorded before its process started (that
// is what keeps a START from running twice); what a power cut within the
// delay loses is only that the step had begun, and the run, found running
// at the next start, is recorded abandoned as it would be anyway.
const startSaveDelay = 50 * time.Millisecond

// Causes a run's context ends with.
var (
	errJobTimeout  = errors.New("the job timed out")
	errStepTimeout = errors.New("the step timed out")
)

// queuedPrefix begins the message of a run recorded while it waits for a
// slot (max_concurrent_runs); the run clears it, and records that, before
// its first step starts.
const queuedPrefix = "queued: "

// executor runs jobs: at most one run per job at a time on this target (SQL
// Server Agent's rule), at most max_concurrent_runs at once (the rest queue
// in the order they were started), each step in its own process group so
// that its whole tree can be killed.
type executor struct {
	m       *Main
	procs   *processes
	sql     *connections
	mu      sync.Mutex
	running map[string]*activeRun // by job name, queued runs included
	queue   []*activeRun          // waiting for a slot, oldest first
	active  int                   // runs holding a slot
	begun   int                   // runs recorded and not yet launched (or forgotten)
	wg      sync.WaitGroup
	burst   atomic.Pointer[burst] // the latest runs launched together (burst.go)
	gc      collector             // held off while a burst spawns (burst.go)
	// hurry is closed when the steps of stopped runs are to be killed
	// without their grace (Main.Hurry).
	hurry     chan struct{}
	hurryOnce sync.Once
	// startSaveDelay is the package's, but for tests.
	startSaveDelay time.Duration
}

// activeRun is a run that has been recorded and is executing, or about to.
type activeRun struct {
	job         muster.Job
	run         muster.Run
	scheduledAt time.Time         // zero unless a schedule fired the run
	startStep   string            // a START's --step: the step to begin at
	env         map[string]string // a START's --env overrides
	ctx         context.Context
	cancel      context.CancelCauseFunc
	spawned     chan struct{} // closed once the first step's process started, or the run ended
	spawnOnce   sync.Once
	cg          *runCgroup  // the run's own cgroup, when cgroups are used
	armed       *armed      // its first step, started behind the gate while the run commits
	burst       *burst      // the fires launched with it, when a schedule fired it
	trace       *StartTrace // a START's hops until its first exec, when traced

	// When the run and its current attempt started, on the monotonic
	// clock: their durations are measured on it (see monotonic).
	began, attemptBegan time.Time

	// The run's output, which only its goroutine touches: what it has
	// kept so far (all attempts, against run_output_limit), where the
	// current attempt's output ends, and the chunks not yet in the store.
	outputKept    int64
	attemptOutput int64
	unsaved       []outputChunk
}

// outputFor returns the output of the run's next attempt: within
// output_limit, and within what the run has left of run_output_limit.
func (e *executor) outputFor(ar *activeRun) *output {
	set := e.m.cfg.Settings
	limit, why := int64(set.OutputLimit), "output_limit "+set.OutputLimit.String()
	if left := int64(set.RunOutputLimit) - ar.outputKept; left < limit {
		limit = max(left, 0)
		why = fmt.Sprintf("run_output_limit %s, of which the run had %s left", set.RunOutputLimit, ByteSize(limit))
	}
	ar.attemptOutput = 0
	return newOutput(int(limit), why)
}

// keep queues a chunk of the current attempt's output, to be stored with
// the run's next state.
func (ar *activeRun) keep(run *muster.Run, data string) {
	if data == "" {
		return
	}
	ar.unsaved = append(ar.unsaved, outputChunk{attempt: len(run.Steps) - 1, offset: ar.attemptOutput, data: data})
	ar.attemptOutput += int64(len(data))
	ar.outputKept += int64(len(data))
}

// markSpawned closes spawned, once, and tells the run's burst.
func (ar *activeRun) markSpawned() {
	ar.spawnOnce.Do(func() {
		close(ar.spawned)
		if ar.burst != nil {
			ar.burst.spawnedOne()
		}
	})
}

func newExecutor(m *Main) *executor {
	return &executor{m: m, procs: newProcesses(), sql: newConnections(m.cfg.Settings.Connections), running: map[string]*activeRun{},
		gc: collector{setPercent: debug.SetGCPercent}, hurry: make(chan struct{}), startSaveDelay: startSaveDelay}
}

// close releases the SQL connection pools.
func (e *executor) close() { e.sql.close() }

// recover records runs a previous process left running as abandoned, and
// kills what is left of their processes.
func (e *executor) recover(ctx context.Context) error {
	runs, err := e.m.store.runningRuns(ctx)
	if err != nil {
		return err
	}
	for _, r := range runs {
		// What is left of the run's processes: its cgroup's (a process
		// group number alone is not trusted: after a reboot it may belong
		// to someone else), and every process whose environment carries
		// its run id (with their groups).
		if e.m.cg.base != "" {
			killCgroup(filepath.Join(e.m.cg.base, "run-"+r.RunID))
		}
		signalRun(r.RunID, syscall.SIGKILL)
		now := e.m.now()
		queued := strings.HasPrefix(r.Message, queuedPrefix)
		r.Status = muster.RunAbandoned
		r.Message = "the target stopped while the run was in progress"
		if queued {
			// Its last recorded state: it leaves the queue, and records
			// that, before its first step starts.
			r.Message = "the target stopped while the run waited in the queue (max_concurrent_runs)"
		}
		// A clock set back across the restart puts now before the run's
		// start: it ends as it started, not before (a negative duration is
		// refused by the master, which would show the run running for ever).
		end := now
		if end.Before(r.StartedAt) {
			end = r.StartedAt
		}
		r.FinishedAt = &end
		r.DurationMS = end.Sub(r.StartedAt).Milliseconds()
		for j := range r.Steps {
			if r.Steps[j].Status == muster.AttemptRunning {
				r.Steps[j].Status = muster.AttemptCanceled
				r.Steps[j].Message = "interrupted: the target stopped"
			}
		}
		if err := e.m.record(ctx, r, nil); isFull(err) {
			// It waits in memory, and is written once space returns, as
			// any run state the full disk refuses: the daemon starts.
			e.m.log.Warn("run abandoned by a previous process; the data directory is full, so it is recorded once space returns",
				muster.LogJob, r.Job, muster.LogRunID, r.RunID, muster.LogErr, err)
			continue
		} else if err != nil {
			return err
		}
		e.m.log.Warn("run abandoned by a previous process", muster.LogJob, r.Job, muster.LogRunID, r.RunID)
	}
	// The run cgroups a daemon killed with SIGKILL left, with whatever is
	// still in them: no run of this process is running yet.
	if e.m.cg.base != "" {
		if n, err := sweepCgroups(e.m.cg.base, func(string) bool { return false }); err != nil {
			e.m.log.Warn("run cgroups left by a previous process could not all be removed", muster.LogErr, err)
		} else if n > 0 {
			e.m.log.Warn("killed what the run cgroups of a previous process still held", "cgroups", n)
		}
	}
	return nil
}

// begin records a new run in tx: running (or queued), or skipped when the
// job is already running here; or nothing, when the spool already has the
// run (a replay). The caller trims the spool (trim) once it has recorded
// its runs, and launches the returned run after commit.
func (e *executor) begin(ctx context.Context, tx *sql.Tx, job muster.Job, run muster.Run) (*activeRun, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if cur, busy := e.running[job.Name]; busy {
		run.Status = muster.RunSkipped
		run.Message = fmt.Sprintf("already running (run %s)", cur.run.RunID)
		return nil, e.recordSkipped(ctx, tx, run)
	}
	run.Status = muster.RunRunning
	// Runs fired together are all begun before any is launched: count
	// them, so that those launch will queue say so.
	if limit := e.m.cfg.Settings.MaxConcurrentRuns; limit > 0 && e.active+len(e.queue)+e.begun >= limit {
		run.Message = fmt.Sprintf(queuedPrefix+"max_concurrent_runs (%d) runs are running", limit)
	}
	if added, err := insertRun(ctx, tx, run); err != nil || !added {
		return nil, err
	}
	rctx, cancel := context.WithCancelCause(context.Background())
	ar := &activeRun{job: job, run: run, ctx: rctx, cancel: cancel, spawned: make(chan struct{}), began: e.m.monotonic(run.StartedAt)}
	e.running[job.Name] = ar
	e.begun++
	return ar, nil
}

// recordSkipped writes a finished, skipped run in tx, unless the spool
// already has the run (a replay). The caller trims the spool (trim) once
// it has recorded its runs, and wakes the uploader after commit.
func (e *executor) recordSkipped(ctx context.Context, tx *sql.Tx, run muster.Run) error {
	run.Status = muster.RunSkipped
	run.FinishedAt = &run.StartedAt
	if added, err := insertRun(ctx, tx, run); err != nil || !added {
		return err
	}
	e.m.counters.runFinished(muster.RunSkipped)
	return nil
}

// trim bounds the spool after new runs are recorded: once a transaction,
// not once a run (counting the unsent runs was a quarter of the time the
// fires of a second took to record).
func (e *executor) trim(ctx context.Context, tx *sql.Tx) error {
	dropped, err := trimSpool(ctx, tx, e.m.cfg.Settings.SpoolLimit)
	if dropped > 0 {
		e.m.log.Warn("the spool is full: dropped the oldest runs the master has not received", "dropped", dropped, "spool_limit", e.m.cfg.Settings.SpoolLimit)
		e.m.events.signal() // spool_full was raised; the forwarder reads through the writer, so after the commit
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
	e.begun--
	ar.cancel(nil)
	e.disarm(ar, true)
}

// launch executes a committed run in the background, at once or, when
// max_concurrent_runs runs are running, when a slot frees (in launch order).
func (e *executor) launch(ar *activeRun) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.wg.Add(1)
	e.begun--
	if limit := e.m.cfg.Settings.MaxConcurrentRuns; limit > 0 && e.active >= limit {
		// Queued: it spawns nothing for now, and nobody should wait for it.
		// (A run armed as it was recorded did not expect to queue; its
		// cgroup stays the run's.)
		ar.adopt()
		e.disarm(ar, false)
		ar.markSpawned()
		if ar.ctx.Err() != nil { // stopped before it was launched
			go e.endUnslotted(ar)
			return
		}
		e.queue = append(e.queue, ar)
		return
	}
	e.active++
	go e.work(ar)
}

// work executes a run, then hands its slot to the next queued run.
func (e *executor) work(ar *activeRun) {
	defer e.wg.Done()
	defer ar.markSpawned()
	e.execute(ar)
	e.release(ar)
	e.mu.Lock()
	ar.cancel(nil)
	if len(e.queue) > 0 {
		next := e.queue[0]
		e.queue = slices.Delete(e.queue, 0, 1)
		go e.work(next)
	} else {
		e.active--
	}
	e.mu.Unlock()
	e.m.wakeUploader()
}

// stop cancels the job's running (or queued) run, if any.
func (e *executor) stop(job, reason string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ar, ok := e.running[job]; ok {
		ar.cancel(errors.New(reason))
		e.dequeue(ar)
	}
	return nil
}

// stopAll cancels every running and queued run and returns how many there
// were.
func (e *executor) stopAll(reason string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ar := range e.running {
		ar.cancel(errors.New(reason))
		e.dequeue(ar)
	}
	return len(e.running)
}

// dequeue takes a canceled run out of the queue, if it waits there, and
// ends it now rather than when a slot frees: until it has ended its job
// stays busy, and every START and fire of it is skipped. The caller holds
// e.mu.
func (e *executor) dequeue(ar *activeRun) {
	if i := slices.Index(e.queue, ar); i >= 0 {
		e.queue = slices.Delete(e.queue, i, i+1)
		go e.endUnslotted(ar)
	}
}

// endUnslotted executes a canceled run without a slot: it ends canceled
// before its first step starts, and is recorded and uploaded as any
// canceled run.
func (e *executor) endUnslotted(ar *activeRun) {
	defer e.wg.Done()
	e.execute(ar)
	e.m.wakeUploader()
}

// wait waits for every launched run to finish.
func (e *executor) wait() { e.wg.Wait() }

// save records the run's current state, with the output kept since the
// last save, and has it uploaded.
func (e *executor) save(ar *activeRun, run *muster.Run) {
	// A run that has spawned lets the spawns of a burst go first; one
	// that has not (a queued run saying it no longer waits) does not wait
	// for its own.
	select {
	case <-ar.spawned:
		e.quiet(ar.ctx)
	default:
	}
	output := ar.unsaved
	ar.unsaved = nil
	if err := e.m.record(context.Background(), *run, output); err != nil {
		e.m.log.Error("record run; its state waits in memory until the store takes it", muster.LogJob, run.Job, muster.LogRunID, run.RunID, muster.LogErr, err)
	}
	e.m.wakeUploader()
}

// execute runs the job's steps, following each step's flow actions, until
// one ends the run. A run never executes more than MaxRunExecutions times
// its number of steps, nor makes more than MaxRunAttempts attempts (retries
// included), so goto loops end.
func (e *executor) execute(ar *activeRun) {
	run := ar.run
	job := ar.job
	ctx := ar.ctx
	e.m.counters.started.Add(1)
	ar.adopt()
	if e.m.cg.base != "" && ar.cg == nil {
		rc, err := e.m.cg.create(run.RunID)
		if err != nil {
			e.m.log.Warn("no cgroup for the run; its processes are tracked by process group and environment", muster.LogRunID, run.RunID, muster.LogErr, err)
		} else {
			ar.cg = rc
		}
	}
	if rc := ar.cg; rc != nil {
		defer func() {
			if err := rc.remove(); err != nil {
				e.m.log.Warn("the run's cgroup could not be removed", muster.LogRunID, run.RunID, muster.LogErr, err)
			}
		}()
	}
	// An armed first step the run never reached (it was stopped first) is
	// let go unrun, before the cgroup goes.
	defer e.disarm(ar, false)
	if job.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, job.Timeout.Std(), errJobTimeout)
		defer cancel()
	}
	if run.Message != "" { // it waited in the queue
		run.Message = ""
		e.save(ar, &run)
	}
	index := 0
	if ar.startStep != "" {
		index = stepIndex(job, ar.startStep)
	}
	limit := muster.MaxRunExecutions * len(job.Steps)
	status := muster.RunSucceeded
	// failure is the last step that did not succeed, in words: a run that
	// fails names it first, whatever step its flow ended at.
	var failure string
	for executions := 0; ; executions++ {
		if len(run.Steps) >= muster.MaxRunAttempts {
			// Retries count: a master takes no more attempts of one run.
			status = muster.RunFailed
			run.Message = fmt.Sprintf("the run made %d step attempts, the most a run may; is a goto looping?", muster.MaxRunAttempts)
			if failure != "" {
				run.Message += " (" + failure + ")"
			}
			break
		}
		if executions == limit {
			status = muster.RunFailed
			run.Message = fmt.Sprintf("the run executed %d steps, the most a job of %d steps may (%d × its steps); is a goto looping?", limit, len(job.Steps), muster.MaxRunExecutions)
			break
		}
		step := job.Steps[index]
		last := e.runStep(ctx, ar, &run, step)
		ok := last.Status == muster.AttemptSucceeded
		action := step.FailureAction()
		if ok {
			action = step.SuccessAction()
		}
		target, isGoto := strings.CutPrefix(action, muster.ActionGoto)
		more := isGoto || action == muster.ActionNext && index < len(job.Steps)-1
		if cause := context.Cause(ctx); cause != nil && (more || !ok) {
			// Stopped by an operator, by the daemon, or by the job timeout:
			// the run ends here whatever the flow says. (A last step that
			// ended on its own, succeeding, as the time ran out ends the
			// run as its flow says: it did all it was to do.)
			status = muster.RunCanceled
			if errors.Is(cause, errJobTimeout) {
				status = muster.RunTimedOut
				run.Message = fmt.Sprintf("the job timed out after %s, in step %q", job.Timeout, step.Name)
			} else {
				run.Message = fmt.Sprintf("%s, in step %q", cause, step.Name)
			}
			break
		}
		if !ok {
			failure = fmt.Sprintf("step %q %s", step.Name, last.Status)
			if last.Message != "" {
				failure += ": " + last.Message
			}
		}
		if isGoto {
			index = stepIndex(job, target)
			continue
		}
		if more {
			index++
			continue
		}
		// quit_success, quit_failure, or next after the last step: the run
		// ends with the outcome the action (or the last step) says.
		switch {
		case action == muster.ActionQuitSuccess, action == muster.ActionNext && ok:
			status, run.Message = muster.RunSucceeded, ""
		case last.Status == muster.AttemptTimedOut:
			status, run.Message = muster.RunTimedOut, failure
		default:
			status, run.Message = muster.RunFailed, failure
			if ok {
				flow := fmt.Sprintf("step %q succeeded and its on_success is quit_failure", step.Name)
				run.Message = strings.TrimPrefix(failure+"; then "+flow, "; then ")
			}
		}
		break
	}
	now := e.m.now()
	run.Status, run.FinishedAt, run.DurationMS = status, &now, time.Since(ar.began).Milliseconds()
	e.m.counters.runFinished(status)
	// The job may run again once its outcome is recorded: the master may
	// post the next START as soon as it has the outcome, which the save
	// has uploaded, before this run's goroutine is done.
	e.release(ar)
	e.save(ar, &run)
}

// isRunning reports whether a run of the job is running (or queued, or
// recorded to be launched).
func (e *executor) isRunning(job string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.running[job]
	return ok
}

// release lets the job of a run that has ended run again.
func (e *executor) release(ar *activeRun) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running[ar.job.Name] == ar {
		delete(e.running, ar.job.Name)
	}
}

func stepIndex(job muster.Job, name string) int {
	for i, s := range job.Steps {
		if s.Name == name {
			return i
		}
	}
	return 0
}

// runStep runs a step's attempts: the first, and as many retries as it
// allows while attempts fail. Each attempt is its own row of the run; a
// failed attempt that will be retried is recorded with status retry.
func (e *executor) runStep(ctx context.Context, ar *activeRun, run *muster.Run, step muster.Step) muster.StepAttempt {
	tries := 1
	var interval time.Duration
	if step.Retry != nil {
		tries += step.Retry.Attempts
		interval = step.Retry.Interval.Std()
	}
	var a muster.StepAttempt
	for n := 1; n <= tries; n++ {
		a = e.runAttempt(ctx, ar, run, step, n)
		if a.Status == muster.AttemptSucceeded || a.Status == muster.AttemptCanceled || n == tries || ctx.Err() != nil {
			return a
		}
		if len(run.Steps) >= muster.MaxRunAttempts {
			a.Message = strings.TrimPrefix(a.Message+"; not retried: the run made its most attempts", "; ")
			run.Steps[len(run.Steps)-1] = a
			return a
		}
		outcome := a
		a.Status = muster.AttemptRetry
		a.Message = strings.TrimSpace(a.Message + fmt.Sprintf("; retry %d of %d in %s", n, tries-1, interval))
		run.Steps[len(run.Steps)-1] = a
		e.save(ar, run)
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			// Stopped, or the job timed out, before the retry: there is
			// none, and the attempt's own outcome is the step's.
			t.Stop()
			outcome.Message = strings.TrimPrefix(outcome.Message+"; not retried: "+context.Cause(ctx).Error(), "; ")
			run.Steps[len(run.Steps)-1] = outcome
			return outcome
		case <-t.C:
		}
	}
	return a
}

// runAttempt runs one attempt of a step and records it in run.
func (e *executor) runAttempt(ctx context.Context, ar *activeRun, run *muster.Run, step muster.Step, n int) muster.StepAttempt {
	attempt := muster.StepAttempt{Name: step.Name, Attempt: n, Status: muster.AttemptRunning, StartedAt: e.m.now()}
	ar.attemptBegan = time.Now()
	run.Steps = append(run.Steps, attempt)
	if err := context.Cause(ctx); err != nil {
		attempt.Status, attempt.Message = muster.AttemptCanceled, err.Error()
		run.Steps[len(run.Steps)-1] = attempt
		return attempt
	}
	actx := ctx
	if step.Timeout > 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeoutCause(ctx, step.Timeout.Std(), errStepTimeout)
		defer cancel()
	}
	env := e.environment(ar, run, step)
	if step.SQL != "" {
		attempt = e.runSQL(actx, ar, run, step, env, attempt)
	} else {
		attempt = e.runProcess(actx, ar, run, step, env, attempt)
	}
	switch cause := context.Cause(actx); {
	case attempt.Status != muster.AttemptRunning:
	case errors.Is(cause, errStepTimeout):
		attempt.Status, attempt.Message = muster.AttemptTimedOut, fmt.Sprintf("timed out after %s", step.Timeout)
	case errors.Is(cause, errJobTimeout):
		attempt.Status, attempt.Message = muster.AttemptTimedOut, "the job timed out"
	case cause != nil:
		attempt.Status, attempt.Message = muster.AttemptCanceled, cause.Error()
	}
	attempt.DurationMS = time.Since(ar.attemptBegan).Milliseconds()
	run.Steps[len(run.Steps)-1] = attempt
	return attempt
}

// bashFunctionPrefix begins the names of the variables bash exports its
// functions in; a step's environment has none.
const bashFunctionPrefix = "BASH_FUNC_"

// stepPath is the PATH every step gets.
const stepPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// environment is a step's whole environment: a clean, documented set, never
// the daemon's own (no operator keys, no MUSTER_ settings leak into steps),
// then the job's env, the step's env and a START's overrides, in that order.
func (e *executor) environment(ar *activeRun, run *muster.Run, step muster.Step) map[string]string {
	lang := e.m.cfg.Settings.Lang
	if lang == "" {
		lang = "C.UTF-8"
	}
	env := map[string]string{"PATH": stepPath, "HOME": e.m.home, "LANG": lang}
	if step.RunAs != "" {
		// The proxy's user's, which the env below may still set (a proxy
		// that cannot be used fails the step in command).
		if u, err := e.m.proxyUser(step.RunAs); err == nil {
			env["HOME"], env["USER"], env["LOGNAME"] = u.HomeDir, u.Username, u.Username
		}
	}
	for _, layer := range []map[string]string{ar.job.Env, step.Env, ar.env} {
		for k, v := range layer {
			// Where /bin/sh is bash, a BASH_FUNC_name%% variable is a
			// function that replaces the command name: read, and with it
			// the gate of an armed step (armed.go), which would run the
			// step before its run is recorded. The master refuses such
			// names; the target does not rely on it.
			if strings.HasPrefix(k, bashFunctionPrefix) {
				continue
			}
			env[k] = v
		}
	}
	scheduled := ""
	if !ar.scheduledAt.IsZero() {
		scheduled = ar.scheduledAt.Format(time.RFC3339) // in the schedule's zone (record)
	}
	env["MUSTER_JOB"] = run.Job
	env["MUSTER_TARGET"] = run.Target
	env["MUSTER_RUN_ID"] = run.RunID
	env["MUSTER_STEP"] = step.Name
	env["MUSTER_SCHEDULED_AT"] = scheduled
	return env
}
