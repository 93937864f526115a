package agent

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// waitExited blocks until child pid has exited, leaving it a zombie
// (waitid with WNOWAIT), so that reap can find it.
func waitExited(t *testing.T, pid int) {
	t.Helper()
	const pPID, wNOWAIT = 1, 0x01000000
	var info [128]byte
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid), uintptr(unsafe.Pointer(&info[0])), syscall.WEXITED|wNOWAIT, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			t.Fatalf("waitid %d: %v", pid, errno)
		}
		return
	}
}

// Steps start concurrently while the reaper runs, and the reaper never
// takes a step's exit status from os/exec; a child that is not a step is
// reaped.
func TestReap(t *testing.T) {
	p := newProcesses()
	const steps = 30
	stop := make(chan struct{})
	reaped := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				reaped <- n
				return
			default:
				p.reap()
				n++
			}
		}
	}()
	codes := make([]int, steps)
	errs := make([]error, steps)
	var wg sync.WaitGroup
	for i := range steps {
		wg.Go(func() {
			cmd := exec.Command("/bin/sh", "-c", "exit 3")
			if errs[i] = p.start(cmd); errs[i] != nil {
				return
			}
			err := cmd.Wait()
			p.done(cmd.Process.Pid)
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				errs[i] = err
				return
			}
			codes[i] = exit.ExitCode()
		})
	}
	wg.Wait()
	close(stop)
	if n := <-reaped; n == 0 {
		t.Error("the reaper did not run while the steps started")
	}
	for i := range steps {
		if errs[i] != nil || codes[i] != 3 {
			t.Errorf("step %d: exit code %d, err %v; want 3 from os/exec", i, codes[i], errs[i])
		}
	}
	if len(p.pids) != 0 {
		t.Errorf("%d steps still tracked after they ended", len(p.pids))
	}

	// A child started outside the tracker, as an orphan a step leaves is
	// inherited, is reaped once it has exited.
	orphan := exec.Command("/bin/true")
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	waitExited(t, orphan.Process.Pid)
	p.reap()
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(orphan.Process.Pid, &ws, syscall.WNOHANG, nil); !errors.Is(err, syscall.ECHILD) {
		t.Errorf("wait for the untracked child after reap: %v, want ECHILD (reaped)", err)
	}
}

// The reap loop reaps an orphan once it exits: its exit (SIGCHLD) wakes the
// loop, which otherwise reads nothing.
func TestReapLoopWakesWhenAChildExits(t *testing.T) {
	p := newProcesses()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.reapLoop(ctx) }()
	defer func() { cancel(); <-done }()

	orphan := exec.Command("/bin/true")
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	pid := orphan.Process.Pid
	// waitid with WNOWAIT and WNOHANG looks without reaping: ECHILD once
	// the loop has reaped the child.
	const pPID, wNOWAIT = 1, 0x01000000
	waitFor(t, 10*time.Second, "the orphan to be reaped", func() bool {
		var info [128]byte
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid), uintptr(unsafe.Pointer(&info[0])),
			syscall.WEXITED|syscall.WNOHANG|wNOWAIT, 0, 0)
		return errno == syscall.ECHILD
	})
}

// Both ways of finding the children the reaper looks at find a child: the
// children lists of this process's threads, where the kernel has them, and
// the scan of every process, where it does not.
func TestChildrenAreFound(t *testing.T) {
	child := exec.Command("/bin/sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	pid := child.Process.Pid
	if pids, ok := children(os.Getpid()); !ok {
		t.Log("this kernel does not list a thread's children (CONFIG_PROC_CHILDREN)")
	} else if !slices.Contains(pids, pid) {
		t.Errorf("children of this process: %v, want %d among them", pids, pid)
	}
	if pids := allProcesses(); !slices.Contains(pids, pid) {
		t.Errorf("all processes: %d of them, want %d among them", len(pids), pid)
	}
}
