package bench

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"
)

// daemon is a muster daemon running as a child process: started from the
// muster executable with its output appended to a log file, and killed if
// this process dies.
type daemon struct {
	exe  string
	args []string
	// Wrap, when set, is a command that runs the daemon from its next
	// start: the process started is Wrap followed by exe and args (e.g. ip
	// netns exec NS). It must exec the daemon in its own process, so that
	// signals reach it.
	Wrap []string
	log  string // file that receives stdout and stderr
	cmd  *exec.Cmd
	done chan struct{}
}

// stopTimeout bounds a graceful stop before the process is killed.
const stopTimeout = 30 * time.Second

func (d *daemon) start() error {
	if d.Running() {
		return fmt.Errorf("%s is already running (pid %d)", d.exe, d.Pid())
	}
	out, err := os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	argv := append(append(slices.Clone(d.Wrap), d.exe), d.args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		out.Close()
		close(done)
	}()
	d.cmd, d.done = cmd, done
	return nil
}

// Pid is the process id, or 0 before the first start.
func (d *daemon) Pid() int {
	if d.cmd == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// Running reports whether the process has been started and not exited.
func (d *daemon) Running() bool {
	if d.done == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// Exited is closed when the process exits.
func (d *daemon) Exited() <-chan struct{} { return d.done }

// Kill sends SIGKILL and waits for the process to go.
func (d *daemon) Kill() error {
	if !d.Running() {
		return nil
	}
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-d.done
	return nil
}

// Stop sends SIGTERM and waits for the process to exit, killing it after
// stopTimeout.
func (d *daemon) Stop() error { return d.signal(syscall.SIGTERM) }

// signal sends sig and waits for the process to exit, killing it after
// stopTimeout.
func (d *daemon) signal(sig syscall.Signal) error {
	if !d.Running() {
		return nil
	}
	if err := d.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-d.done:
		return nil
	case <-time.After(stopTimeout):
		d.Kill()
		return fmt.Errorf("%s did not exit within %s of %s; killed", d.exe, stopTimeout, sig)
	}
}

// ExitCode is the exit code of the last run, -1 while it runs or when a
// signal ended it.
func (d *daemon) ExitCode() int {
	if d.Running() || d.cmd == nil || d.cmd.ProcessState == nil {
		return -1
	}
	return d.cmd.ProcessState.ExitCode()
}

// Dump asks the process for a dump of its goroutines (SIGQUIT: the Go
// runtime writes every goroutine's stack to the log, then exits) and waits
// for it to go. It is for a test that found the daemon stuck.
func (d *daemon) Dump() error { return d.signal(syscall.SIGQUIT) }

// LogFile is the file that receives what the process writes.
func (d *daemon) LogFile() string { return d.log }

// Log returns what the process has written so far.
func (d *daemon) Log() string {
	b, _ := os.ReadFile(d.log)
	return string(b)
}
