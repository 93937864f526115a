package agent

import (
	"os"
	"os/exec"

	"github.com/musterhq/muster"
)

// The first step of a START's run, when it is a shell script, is armed:
// its process is started while the run's record commits, instead of after.
// The shell waits at a gate, a pipe on its descriptor 3, before the step's
// own script: it goes on once the record is durable (release), or, if the
// record is not (the transaction failed, the target died), it reads end of
// file and exits having run nothing. A START still runs at most once across
// a power cut, and the fork and exec, the longest part of a dispatch, no
// longer wait for the commit's fsync. Scheduled fires are not armed: the
// fires due in one second commit together, and as many forks beside that
// commit made them later, not sooner.

// gateScript comes before an armed step's script, on the same line, so the
// script's line numbers are unchanged. It closes the gate's descriptor
// before the script runs; exit status 125 is a step that never began.
const gateScript = "read -r _ <&3 && exec 3<&- || exit 125; "

// armed is a step process started ahead of its release.
type armed struct {
	step    string
	out     *output
	started chan struct{} // closed once the start returned; then:
	cg      *runCgroup    // the cgroup made for it, if any
	cmd     *exec.Cmd     // nil if it was not started
	gate    *os.File      // the pipe's write end, with cmd
	err     error         // the start's, with cmd
}

// arm starts the first step of ar, a run being recorded that will launch
// when its record commits, behind the gate. Runs that queue and steps that
// are not shell scripts are not armed. All but the bookkeeping happens on
// a goroutine of its own, beside the commit: the cgroup, the command, the
// fork and exec. Whatever fails there leaves the step unarmed: it starts
// after the commit as it always did, and reports its own errors.
func (e *executor) arm(ar *activeRun) {
	if ar.run.Message != "" { // queued behind max_concurrent_runs
		return
	}
	step := ar.job.Steps[stepIndex(ar.job, ar.startStep)]
	if step.Shell == "" || step.SQL != "" {
		return
	}
	a := &armed{step: step.Name, out: e.outputFor(ar), started: make(chan struct{})}
	env := e.environment(ar, &ar.run, step)
	ar.armed = a
	go func() {
		defer close(a.started)
		if e.m.cg.base != "" {
			rc, err := e.m.cg.create(ar.run.RunID)
			if err != nil {
				return // execute tries again, and says why
			}
			a.cg = rc
		}
		cmd, err := e.command(step, env)
		if err != nil {
			return
		}
		r, w, err := os.Pipe()
		if err != nil {
			return
		}
		defer r.Close()
		cmd.Args[len(cmd.Args)-1] = gateScript + step.Shell
		cmd.ExtraFiles = []*os.File{r}
		attach(cmd, a.out, a.cg)
		a.cmd, a.gate, a.err = cmd, w, e.procs.start(cmd)
	}()
}

// adopt waits until ar's armed process is started (or not), and makes the
// cgroup made for it the run's.
func (ar *activeRun) adopt() {
	if a := ar.armed; a != nil {
		<-a.started
		if a.cg != nil {
			ar.cg, a.cg = a.cg, nil
		}
	}
}

// takeArmed returns the armed process if it is the one for this attempt of
// step, and hands it over: it is the caller's to release.
func (ar *activeRun) takeArmed(step string, attempt int) *armed {
	a := ar.armed
	if a == nil || a.step != step || attempt != 1 {
		return nil
	}
	<-a.started
	if a.cmd == nil {
		return nil
	}
	ar.armed = nil
	return a
}

// release lets the armed step's script run.
func (a *armed) release() error {
	if a.err != nil {
		a.gate.Close()
		return a.err
	}
	// A failed write means the shell is gone before the gate (killed):
	// its exit status, which Wait returns, says how.
	a.gate.Write([]byte{'\n'})
	a.gate.Close()
	return nil
}

// disarm lets go of ar's armed process, if it has one, without running its
// step: the shell reads end of file at the gate and exits. The process is
// waited for in the background, and then the run's cgroup removed if the
// run will not execute (dropCgroup).
func (e *executor) disarm(ar *activeRun, dropCgroup bool) {
	a := ar.armed
	ar.armed = nil
	var cg *runCgroup
	if dropCgroup {
		cg, ar.cg = ar.cg, nil
	}
	if a == nil && cg == nil {
		return
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if a != nil {
			<-a.started
			if a.cmd != nil {
				a.gate.Close()
				if a.err == nil {
					a.cmd.Wait()
					e.procs.done(a.cmd.Process.Pid)
				}
			}
			if a.cg != nil && cg == nil {
				cg = a.cg
			}
		}
		if cg != nil {
			if err := cg.remove(); err != nil {
				e.m.log.Warn("the cgroup of a run that did not start could not be removed", muster.LogRunID, ar.run.RunID, muster.LogErr, err)
			}
		}
	}()
}
