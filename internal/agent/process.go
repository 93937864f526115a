package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/musterhq/muster"
)

// runProcess runs a shell or command attempt as its own process group, in
// the run's cgroup when there is one, and records it in run. When ctx ends
// (timeout, STOP, the daemon stopping) the whole tree is killed: the run's
// cgroup, or else the process group and every process whose environment
// carries the run's id (see cgroup.go).
func (e *executor) runProcess(ctx context.Context, ar *activeRun, run *muster.Run, step muster.Step, env map[string]string, attempt muster.StepAttempt) muster.StepAttempt {
	var cmd *exec.Cmd
	var out *output
	var err error
	if a := ar.takeArmed(step.Name, attempt.Attempt); a != nil {
		cmd, out = a.cmd, a.out
		err = a.release()
	} else {
		out = e.outputFor(ar)
		if cmd, err = e.command(step, env); err != nil {
			attempt.Status, attempt.Message = muster.AttemptFailed, err.Error()
			return attempt
		}
		attach(cmd, out, ar.cg)
		err = e.procs.start(cmd)
	}
	attempt.StartedAt, ar.attemptBegan = e.m.now(), time.Now()
	ar.markSpawned()
	if err == nil {
		if terr := e.m.trace.execReturned(ar, attempt.StartedAt); terr != nil {
			e.m.log.Warn("the dispatch trace could not be written", muster.LogRunID, run.RunID, muster.LogErr, terr)
		}
	}
	if err != nil {
		attempt.Status, attempt.Message = muster.AttemptFailed, fmt.Sprintf("cannot start: %v", err)
		return attempt
	}
	pgid := cmd.Process.Pid
	run.Steps[len(run.Steps)-1] = attempt

	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		e.procs.done(cmd.Process.Pid)
		done <- err
	}()
	// The attempt's start is saved and uploaded once it has run for
	// startSaveDelay; a step that ends sooner is saved once, ended. While
	// it runs, the head of its output is stored and uploaded as it comes,
	// about once a second, so a long step can be followed on the master;
	// each byte is stored and sent once.
	started := time.NewTimer(e.startSaveDelay)
	defer started.Stop()
	tick := time.NewTicker(outputInterval)
	defer tick.Stop()
	var waitErr error
	stopped := false // signalled for the context's end
loop:
	for {
		select {
		case <-started.C:
			e.save(ar, run)
		case <-tick.C:
			if chunk := out.take(); chunk != "" {
				ar.keep(run, chunk)
				e.save(ar, run)
			}
		case waitErr = <-done:
			break loop
		case <-ctx.Done():
			select {
			case waitErr = <-done:
				// It ended on its own as its time ran out: its exit
				// status stands, not the timeout.
				break loop
			default:
			}
			stopped = true
			ar.signal(pgid, syscall.SIGTERM)
			grace := time.NewTimer(e.m.cfg.KillGrace)
			if started.Stop() {
				// Stopped before its start was saved: it is saved now, as
				// the step may take its whole grace to end.
				e.save(ar, run)
			}
			select {
			case waitErr = <-done:
			case <-grace.C:
				ar.signal(pgid, syscall.SIGKILL)
				waitErr = <-done
			case <-e.hurry:
				ar.signal(pgid, syscall.SIGKILL)
				waitErr = <-done
			}
			grace.Stop()
			// Children that ignored SIGTERM, or outlived their parent.
			ar.signal(pgid, syscall.SIGKILL)
			break loop
		}
	}
	// Whatever the step left behind goes with it: in its process group,
	// and, with a cgroup, wherever it went.
	syscall.Kill(-pgid, syscall.SIGKILL)
	if ar.cg != nil {
		ar.cg.kill()
	}

	ar.keep(run, out.final())
	if cmd.ProcessState != nil && cmd.ProcessState.Exited() {
		code := cmd.ProcessState.ExitCode()
		attempt.ExitCode = &code
	}
	switch {
	case stopped:
		// runAttempt records timed_out or canceled from the cause.
	case waitErr == nil, errors.Is(waitErr, exec.ErrWaitDelay):
		// ErrWaitDelay: the step exited 0, and something it started
		// (`daemon &`) held its output open past stepWaitDelay. The step
		// succeeded; what it left was killed above, and its output up to
		// then is kept.
		attempt.Status = muster.AttemptSucceeded
	case attempt.ExitCode != nil:
		attempt.Status, attempt.Message = muster.AttemptFailed, fmt.Sprintf("exit code %d", *attempt.ExitCode)
	default:
		attempt.Status, attempt.Message = muster.AttemptFailed, waitErr.Error()
	}
	return attempt
}

// attach gives a step's process its output and, with a cgroup, its place.
func attach(cmd *exec.Cmd, out *output, cg *runCgroup) {
	cmd.Stdout, cmd.Stderr = out, out
	if cg != nil {
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, cg.fd
	}
	cmd.WaitDelay = stepWaitDelay
}

// stepWaitDelay bounds how long Wait waits for a step's output pipes after
// it exited: they stay open while any process holds them.
const stepWaitDelay = 2 * time.Second

// signal sends sig to a step's process group and to every other process
// of the run: those in its cgroup (SIGKILL kills the cgroup), or without
// one, those whose environment carries its run id.
func (ar *activeRun) signal(pgid int, sig syscall.Signal) {
	syscall.Kill(-pgid, sig)
	switch {
	case ar.cg != nil && sig == syscall.SIGKILL:
		ar.cg.kill()
	case ar.cg != nil:
		ar.cg.signal(sig)
	default:
		signalRun(ar.run.RunID, sig)
	}
}

// command builds the process for a shell or command step: its program, a
// new session, its environment, its directory, and the proxy user it
// runs as.
func (e *executor) command(step muster.Step, env map[string]string) (*exec.Cmd, error) {
	var cmd *exec.Cmd
	if step.Shell != "" {
		cmd = exec.Command("/bin/sh", "-c", step.Shell)
	} else {
		cmd = exec.Command(step.Command[0], step.Command[1:]...)
		// Resolve the program on the step's PATH, not the daemon's.
		if !strings.Contains(step.Command[0], "/") {
			path, err := stepProgram(step.Command[0], env["PATH"])
			if err != nil {
				return nil, err
			}
			cmd.Path, cmd.Err = path, nil
		}
	}
	// A session of its own, and so a process group of its own, without a
	// controlling terminal: a step of a daemon started in a terminal
	// neither stops reading it (SIGTTIN) nor, as a proxy, types into it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = step.Workdir
	home := env["HOME"]
	var proxy *user.User
	if step.RunAs != "" {
		u, err := e.m.proxyUser(step.RunAs)
		if err != nil {
			return nil, err
		}
		proxy = u
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		var groups []uint32
		if ids, err := u.GroupIds(); err == nil {
			for _, g := range ids {
				if n, err := strconv.ParseUint(g, 10, 32); err == nil {
					groups = append(groups, uint32(n))
				}
			}
		}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}
		home = u.HomeDir
	}
	if cmd.Dir == "" {
		cmd.Dir = defaultWorkdir(home, cmd.SysProcAttr.Credential)
	} else if fi, err := os.Stat(cmd.Dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("workdir %q: not a directory on this target", cmd.Dir)
	} else if proxy != nil {
		// The daemon sees it; the proxy's user may not. The start would
		// then fail blaming the program ("fork/exec /bin/sh: permission
		// denied"), not the directory.
		if closed, fi := closedTo(cmd.Dir, cmd.SysProcAttr.Credential); closed != "" {
			st := fi.Sys().(*syscall.Stat_t)
			return nil, fmt.Errorf("workdir %q: the proxy's user %q may not enter %s (mode %s, owner %s, group %s)",
				cmd.Dir, proxy.Username, closed, fi.Mode(), userArg(int(st.Uid)), groupArg(st.Gid))
		}
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	return cmd, nil
}

// defaultWorkdir is where a step without a workdir runs: the home
// directory, or / for a user without one (nobody's is /nonexistent), or
// with one it may not enter (cred, a proxy's, nil for the daemon's own).
func defaultWorkdir(home string, cred *syscall.Credential) string {
	if fi, err := os.Stat(home); err != nil || !fi.IsDir() {
		return "/"
	}
	if cred != nil {
		if closed, _ := closedTo(home, cred); closed != "" {
			return "/"
		}
	}
	return home
}

// closedTo returns the first of dir and the directories above it that a
// process with cred may not enter (search), as their modes say, and its
// mode; "" when it may enter them all, or when a directory has an access
// control list, which the start then judges.
func closedTo(dir string, cred *syscall.Credential) (string, os.FileInfo) {
	if cred.Uid == 0 {
		return "", nil
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", nil
	}
	var paths []string
	for p := real; ; p = filepath.Dir(p) {
		paths = append(paths, p)
		if p == filepath.Dir(p) {
			break
		}
	}
	for _, p := range slices.Backward(paths) {
		fi, err := os.Stat(p)
		if err != nil {
			return "", nil
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return "", nil
		}
		if n, err := syscall.Getxattr(p, "system.posix_acl_access", nil); err == nil && n > 0 {
			return "", nil
		}
		var bit uint32 = 0o001
		switch {
		case st.Uid == cred.Uid:
			bit = 0o100
		case st.Gid == cred.Gid || slices.Contains(cred.Groups, st.Gid):
			bit = 0o010
		}
		if st.Mode&bit == 0 {
			return p, fi
		}
	}
	return "", nil
}

// groupArg is a gid as chgrp takes it: its name, or its number.
func groupArg(gid uint32) string {
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10)); err == nil {
		return g.Name
	}
	return strconv.FormatUint(uint64(gid), 10)
}

// keepDescriptorsFromSteps marks every descriptor of this process but
// standard input, output and error close-on-exec. Go opens its own so, but
// not those a parent left the daemon open, which every step would
// otherwise inherit: a step, even one running as a proxy, could read or
// write what the daemon's parent holds. It reads /proc and does nothing
// where there is none.
func keepDescriptorsFromSteps() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

// proxyUser resolves a proxy of the settings to its OS user, when the
// settings let jobs run steps as proxies and the daemon, as root, can
// switch users: a job the target took before they stopped letting them (and
// a restart) runs none.
func (m *Main) proxyUser(name string) (*user.User, error) {
	if !m.cfg.Settings.AllowDownloadedJobsToMatchProxyName {
		return nil, fmt.Errorf("run_as %q: the job step requires a proxy, but proxy matching is disabled on the target (allow_downloaded_jobs_to_match_proxy_name in its settings)", name)
	}
	p, ok := m.cfg.Settings.Proxies[name]
	if !ok {
		return nil, fmt.Errorf("run_as %q: proxy not found", name)
	}
	// Only root may set a process's user and groups (setgroups fails even
	// for the daemon's own user): without this, a daemon that is not root
	// takes the job and fails each run with "operation not permitted".
	if uid := os.Geteuid(); uid != 0 {
		return nil, fmt.Errorf("run_as %q: the target daemon runs as %s, not root, and cannot switch to the proxy's user %q: run the target as root to run steps as proxies", name, userName(uid), p.User)
	}
	u, err := user.Lookup(p.User)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		// The binary is static: os/user reads the files, and asks no
		// name service.
		return nil, fmt.Errorf("run_as %q: the proxy's user %q is not in /etc/passwd (users known only to LDAP or SSSD are not seen): give the proxy a local user", name, p.User)
	}
	if err != nil {
		return nil, fmt.Errorf("run_as %q: user %q: %v", name, p.User, err)
	}
	return u, nil
}

// stepProgram finds name in the absolute directories of path.
func stepProgram(name, path string) (string, error) {
	relative := ""
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			// An entry such as "bin", or "" (the current directory),
			// would be looked up from the daemon's directory, then run
			// from the step's workdir: another program than the one
			// found. It is not searched, as os/exec refuses it (ErrDot).
			if relative == "" {
				relative = fmt.Sprintf("%q", dir)
			}
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if relative != "" {
		return "", fmt.Errorf("%q not found in the absolute directories of PATH %s (the relative entry %s is not searched: give the program's path, or an absolute directory)", name, path, relative)
	}
	return "", fmt.Errorf("%q not found in %s", name, path)
}

// signalRun signals every process whose environment names the run, as every
// step's does (MUSTER_RUN_ID), and its process group. It reads /proc and
// does nothing where there is none.
func signalRun(runID string, sig syscall.Signal) {
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
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid > 1 && pgid != syscall.Getpgrp() {
			syscall.Kill(-pgid, sig)
		}
		syscall.Kill(pid, sig)
	}
}

// processes tracks the step processes this daemon started, so that, as a
// child subreaper, it reaps only the orphans it inherits and never a step
// whose exit status os/exec is waiting for. Steps start concurrently (the
// fires of one second start together, as fast as the machine forks); the
// reaper waits until no start is under way before it reaps.
type processes struct {
	// spawning is held for reading by each start, from before its fork
	// until its pid is tracked, and for writing by the reaper: a child
	// the reaper finds untracked is then never a step just started.
	spawning sync.RWMutex
	mu       sync.Mutex // guards pids
	pids     map[int]bool
}

func newProcesses() *processes { return &processes{pids: map[int]bool{}} }

// start starts cmd and tracks it.
func (p *processes) start(cmd *exec.Cmd) error {
	p.spawning.RLock()
	defer p.spawning.RUnlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	p.mu.Lock()
	p.pids[cmd.Process.Pid] = true
	p.mu.Unlock()
	return nil
}

func (p *processes) done(pid int) {
	p.mu.Lock()
	delete(p.pids, pid)
	p.mu.Unlock()
}

// prSetChildSubreaper is prctl's PR_SET_CHILD_SUBREAPER.
const prSetChildSubreaper = 36

// becomeSubreaper makes this process the parent of orphaned descendants, so
// processes a step leaves behind (even in sessions of their own) stay in
// its tree, where they can be found and reaped.
func becomeSubreaper() error {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return errno
	}
	return nil
}

// reap waits for inherited orphans that have exited, so they do not stay
// zombies. Step processes are left to os/exec. The scan of /proc takes no
// lock, so steps start meanwhile; only the wait for the zombies it found
// excludes starts, and skips those that are tracked steps.
func (p *processes) reap() {
	zombies := zombieChildren()
	if len(zombies) == 0 {
		return
	}
	p.spawning.Lock()
	defer p.spawning.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pid := range zombies {
		if p.pids[pid] {
			continue
		}
		// A child that is not a tracked step, while no start is under
		// way: an inherited orphan (or, its pid reused since the scan,
		// another that WNOHANG leaves alone while it runs).
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
	}
}

// zombieChildren lists the children of this process that have exited and
// not been waited for. It reads the state of its children alone, which
// each of its threads lists (/proc/self/task/TID/children); on a kernel
// without those lists (CONFIG_PROC_CHILDREN), of every process.
func zombieChildren() []int {
	self := os.Getpid()
	candidates, ok := children(self)
	if !ok {
		candidates = allProcesses()
	}
	ppid := strconv.Itoa(self)
	var pids []int
	for _, pid := range candidates {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name: state, ppid, …
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) > 1 && fields[0] == "Z" && fields[1] == ppid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// children lists the children of process self's threads; ok is false on a
// kernel that does not list them.
func children(self int) (pids []int, ok bool) {
	if _, err := os.Stat("/proc/self/task/" + strconv.Itoa(self) + "/children"); err != nil {
		return nil, false
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, false
	}
	for _, t := range tasks {
		list, err := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
		if err != nil {
			continue // the thread has exited
		}
		for _, f := range strings.Fields(string(list)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids, true
}

// allProcesses lists every process on the server.
func allProcesses() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// reapInterval is the least time between two scans for orphans, however
// often children exit.
const reapInterval = 2 * time.Second

// reapLoop reaps inherited orphans until ctx is done: once at the start,
// then when a child has exited (SIGCHLD), at most once every reapInterval. A
// target whose children do not exit reads nothing: a scan every 2 s was
// most of an idle target's CPU and allocations.
func (p *processes) reapLoop(ctx context.Context) {
	exited := make(chan os.Signal, 1)
	signal.Notify(exited, syscall.SIGCHLD)
	defer signal.Stop(exited)
	for {
		p.reap()
		if !sleep(ctx, reapInterval) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-exited: // kept while the loop slept
		}
	}
}
