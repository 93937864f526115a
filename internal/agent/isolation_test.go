package agent

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"
	"unsafe"

	"github.com/musterhq/muster"
)

// proxyTarget is a test target whose settings let jobs run steps as the
// proxy "nob", the OS user nobody; it skips the test where steps cannot
// switch users (not root).
func proxyTarget(t *testing.T, adjust ...func(*Config)) *Main {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running a step as another user needs root")
	}
	return newTestMain(t, append([]func(*Config){func(c *Config) {
		c.Settings.Proxies = map[string]Proxy{"nob": {User: "nobody"}}
		c.Settings.AllowDownloadedJobsToMatchProxyName = true
	}}, adjust...)...)
}

// openDir is a directory every user may enter and list, as a data
// directory made beforehand often is (mkdir, systemd's StateDirectory=).
func openDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "muster-open-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A step running as a proxy cannot read the target's store (the jobs it
// holds, their env included, and every run's output), even where the data
// directory is open to all: the store's files are the daemon user's alone.
func TestProxyStepCannotReadTheStore(t *testing.T) {
	dir := openDir(t)
	m := proxyTarget(t, func(c *Config) { c.DataDir = dir })
	secret := flowJob("secret", muster.Step{Name: "main", Shell: "true"})
	secret.Env = map[string]string{"API_TOKEN": "s3cr3t"}
	if r := runJob(t, m, secret); r.Status != muster.RunSucceeded {
		t.Fatalf("run %s %q", r.Status, r.Message)
	}
	store := filepath.Join(dir, StoreFile)
	for _, f := range []string{store, store + "-wal", store + "-shm"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v, want no access for others than its owner", filepath.Base(f), fi.Mode().Perm())
		}
	}
	script := "for f in " + store + " " + store + "-wal " + store + "-shm; do if cat $f >/dev/null 2>&1; then echo read $f; fi; done"
	r := runJob(t, m, flowJob("spy", muster.Step{Name: "main", Shell: script, RunAs: "nob"}))
	if r.Status != muster.RunSucceeded || r.Steps[0].Output != "" {
		t.Errorf("the proxy step: %s %q, output %q; want it to read none of the store's files", r.Status, r.Message, r.Steps[0].Output)
	}
}

// A step that writes bytes that are not UTF-8 keeps no more than
// output_limit of them, as text: the master takes at most its own limit
// of an attempt's output, and what the target kept beyond it was lost.
func TestBinaryOutputIsKeptWithinOutputLimit(t *testing.T) {
	m := newTestMain(t, func(c *Config) { c.Settings.OutputLimit = 1 << 10 })
	r := runJob(t, m, flowJob("binary", muster.Step{Name: "main", Shell: `yes "$(printf '\377')" | head -c 100000`}))
	out := r.Steps[0].Output
	_, tail, cut := strings.Cut(out, "bytes are kept]\n")
	head, _, _ := strings.Cut(out, "\n[muster: ")
	if !cut || len(head)+len(tail) > 1<<10 || !utf8.ValidString(out) {
		t.Errorf("kept %d bytes (%d and %d around the line about the cut) of a 1 KiB output_limit: %.120q…", len(out), len(head), len(tail), out)
	}
}

// A job the target took while it let jobs run steps as its proxies runs
// none as a proxy once its settings no longer do (restarted with
// allow_downloaded_jobs_to_match_proxy_name off): the step fails, saying
// why, and runs nothing.
func TestProxyStepNeedsProxyMatchingWhenItRuns(t *testing.T) {
	m := proxyTarget(t, func(c *Config) { c.Settings.AllowDownloadedJobsToMatchProxyName = false })
	marker := filepath.Join(openDir(t), "ran")
	r := runJob(t, m, flowJob("held", muster.Step{Name: "main", Shell: "touch " + marker, RunAs: "nob"}))
	a := r.Steps[0]
	if a.Status != muster.AttemptFailed || !strings.Contains(a.Message, "proxy matching is disabled on the target") {
		t.Errorf("the step %s %q; want failed, saying proxy matching is disabled", a.Status, a.Message)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the step ran")
	}
}

// A proxy whose user the system does not have fails its step before
// anything runs, saying where users are looked up.
func TestProxyStepOfAnUnknownUser(t *testing.T) {
	m := proxyTarget(t, func(c *Config) { c.Settings.Proxies = map[string]Proxy{"ghost": {User: "muster-no-such-user"}} })
	marker := filepath.Join(openDir(t), "ran")
	r := runJob(t, m, flowJob("ghost", muster.Step{Name: "main", Shell: "touch " + marker, RunAs: "ghost"}))
	a := r.Steps[0]
	if a.Status != muster.AttemptFailed || !strings.Contains(a.Message, `the proxy's user "muster-no-such-user" is not in /etc/passwd`) {
		t.Errorf("the step %s %q; want failed, saying the user is not in /etc/passwd", a.Status, a.Message)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the step ran")
	}
}

// A step inherits no file descriptor but its standard input, output and
// error: not those the daemon opened (its store, its connections, its
// control socket), nor those it was started with by a parent that did not
// mark them close-on-exec.
func TestStepsInheritNoDescriptor(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	inherited, err := syscall.Dup(int(f.Fd())) // as a parent leaves one: not close-on-exec
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(inherited)
	tm := startTestMaster(t)
	m := tm.enlist(t, "web1")
	runTarget(t, m)
	// ls lists the shell's descriptors (the shell's glob, or ls's of
	// itself, would show the directory being read).
	tm.apply(t, shellJob("fds", []string{"web1"}, `ls /proc/$$/fd`))
	tm.settled(t)
	r := tm.finished(t, tm.start(t, "fds")...)[0]
	if r.Status != muster.RunSucceeded || r.Steps[0].Output != "0\n1\n2\n" {
		t.Errorf("the step: %s %q, its descriptors %q; want 0 1 2 (%d is the daemon's, inherited)", r.Status, r.Message, r.Steps[0].Output, inherited)
	}
}

// A step running as a proxy has its user's uid, primary group and
// supplementary groups, none of the daemon's (root's), and HOME, USER and
// LOGNAME as its user's, which the job's env may still set, as jobs.md
// says: later entries win.
func TestProxyStepRunsAsItsUser(t *testing.T) {
	m := proxyTarget(t)
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip(err)
	}
	r := runJob(t, m, flowJob("who", muster.Step{Name: "main", Shell: `echo "$(id -u) $(id -g) $(id -G) $HOME $USER $LOGNAME"`, RunAs: "nob"}))
	if want := fmt.Sprintf("%s %s %s %s nobody nobody\n", u.Uid, u.Gid, u.Gid, u.HomeDir); r.Status != muster.RunSucceeded || r.Steps[0].Output != want {
		t.Errorf("as nobody: %s %q, output %q; want %q", r.Status, r.Message, r.Steps[0].Output, want)
	}
	j := flowJob("home", muster.Step{Name: "main", Shell: `echo "$HOME $USER"`, RunAs: "nob", Env: map[string]string{"HOME": "/tmp"}})
	if r := runJob(t, m, j); r.Steps[0].Output != "/tmp nobody\n" {
		t.Errorf("with HOME in the step's env: %q, want %q", r.Steps[0].Output, "/tmp nobody\n")
	}
}

// A proxy's user keeps the supplementary groups /etc/group gives it.
func TestProxyStepHasItsUsersGroups(t *testing.T) {
	name, groups := userWithSupplementaryGroups(t)
	m := proxyTarget(t, func(c *Config) { c.Settings.Proxies = map[string]Proxy{"p": {User: name}} })
	r := runJob(t, m, flowJob("groups", muster.Step{Name: "main", Shell: `id -G`, RunAs: "p"}))
	got := strings.Fields(r.Steps[0].Output)
	slices.Sort(got)
	if r.Status != muster.RunSucceeded || !slices.Equal(got, groups) {
		t.Errorf("%s's groups: %s %q, output %q; want %v", name, r.Status, r.Message, r.Steps[0].Output, groups)
	}
}

// userWithSupplementaryGroups finds a user of this system that /etc/group
// names as a member of a group, and its groups, sorted; it skips the test
// when there is none.
func userWithSupplementaryGroups(t *testing.T) (string, []string) {
	t.Helper()
	b, err := os.ReadFile("/etc/group")
	if err != nil {
		t.Skip(err)
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) < 4 || f[3] == "" {
			continue
		}
		name := strings.Split(f[3], ",")[0]
		u, err := user.Lookup(name)
		if err != nil || u.Uid == "0" {
			continue
		}
		groups, err := u.GroupIds()
		if err != nil || len(groups) < 2 {
			continue
		}
		slices.Sort(groups)
		return name, groups
	}
	t.Skip("no user here has a supplementary group")
	return "", nil
}

// A step has no controlling terminal, even when the daemon has one (run in
// a terminal, as `muster dev` does): a step that asks for a password on
// /dev/tty fails at once instead of stopping until its timeout, and a step
// running as a proxy cannot type into the terminal of the user who started
// the daemon (TIOCSTI). The test runs itself again in a session of its own
// whose controlling terminal is a new pseudo-terminal.
func TestStepHasNoControllingTerminal(t *testing.T) {
	if os.Getenv("MUSTER_TEST_IN_TERMINAL") != "" {
		if f, err := os.Open("/dev/tty"); err != nil {
			t.Fatalf("the test has no controlling terminal: %v", err)
		} else {
			f.Close()
		}
		m := newTestMain(t)
		r := runJob(t, m, flowJob("tty", muster.Step{Name: "main", Shell: `(: </dev/tty) 2>/dev/null && echo terminal || echo none`}))
		if r.Status != muster.RunSucceeded || r.Steps[0].Output != "none\n" {
			t.Errorf("the step: %s %q, output %q; want none, no controlling terminal", r.Status, r.Message, r.Steps[0].Output)
		}
		return
	}
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	defer ptmx.Close()
	var unlock, n int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, ptmx.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Skipf("unlock the pseudo-terminal: %v", e)
	}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, ptmx.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Skipf("name the pseudo-terminal: %v", e)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skip(err)
	}
	defer pts.Close()
	go io.Copy(io.Discard, ptmx) // what is written to the terminal
	cmd := exec.Command(os.Args[0], "-test.run=^TestStepHasNoControllingTerminal$", "-test.v")
	cmd.Env = append(os.Environ(), "MUSTER_TEST_IN_TERMINAL=1")
	var out bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Run(); err != nil {
		t.Errorf("in a terminal: %v\n%s", err, out.String())
	}
}

// A command step's program is found in the absolute directories of the
// step's PATH only: a relative entry ("bin", or "" for the current
// directory) would be looked up from the daemon's directory and then run
// from the step's workdir, another program than the one found.
func TestStepProgramSkipsRelativePathEntries(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "tool"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	abs := filepath.Join(dir, "bin")
	if p, err := stepProgram("tool", "bin:/usr/bin"); err == nil || !strings.Contains(err.Error(), `relative entry "bin" is not searched`) {
		t.Errorf("tool on PATH bin:/usr/bin: %q, %v; want refused, naming the relative entry", p, err)
	}
	if p, err := stepProgram("tool", "/usr/bin:"+abs); err != nil || p != filepath.Join(abs, "tool") {
		t.Errorf("tool on an absolute PATH: %q, %v; want %s", p, err, filepath.Join(abs, "tool"))
	}
	if p, err := stepProgram("sh", ":/bin"); err != nil || p != "/bin/sh" {
		t.Errorf("sh on PATH :/bin: %q, %v; want /bin/sh, the empty entry skipped", p, err)
	}
}

// A target daemon that does not run as root cannot switch users: it
// refuses a job that runs a step as a proxy, saying so and naming the
// proxy, and a job it holds from before runs no step as one, failing the
// step, with the same error, before anything runs. The test runs itself
// again as the user daemon.
func TestProxyStepOfADaemonNotRoot(t *testing.T) {
	if os.Getenv("MUSTER_TEST_NOT_ROOT") != "" {
		m := newTestMain(t, func(c *Config) {
			c.Settings.Proxies = map[string]Proxy{"nob": {User: "nobody"}}
			c.Settings.AllowDownloadedJobsToMatchProxyName = true
		})
		marker := filepath.Join(os.Getenv("MUSTER_TEST_OPEN_DIR"), "ran")
		j := flowJob("as-nobody", muster.Step{Name: "main", Shell: "touch " + marker, RunAs: "nob"})
		const want = `run_as "nob": the target daemon runs as user daemon (uid 1), not root, and cannot switch to the proxy's user "nobody"`
		if err := m.canRun(j); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("the INSERT: %v; want it refused, saying %q", err, want)
		}
		a := runJob(t, m, j).Steps[0]
		if a.Status != muster.AttemptFailed || !strings.Contains(a.Message, want) {
			t.Errorf("the step: %s %q; want failed, saying %q", a.Status, a.Message, want)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Error("the step ran")
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("running the test as another user needs root")
	}
	u, err := user.Lookup("daemon")
	if err != nil || u.Uid != "1" {
		t.Skipf("no user daemon (uid 1) here: %v", err)
	}
	if _, err := user.Lookup("nobody"); err != nil {
		t.Skip(err)
	}
	// The test binary, where the user daemon can run it.
	dir := openDir(t)
	bin := filepath.Join(dir, "agent.test")
	copyFile(t, os.Args[0], bin, 0o755)
	if err := os.Chmod(dir, os.ModeSticky|0o777); err != nil { // its temporary directory too
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestProxyStepOfADaemonNotRoot$", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MUSTER_TEST_NOT_ROOT=1", "MUSTER_TEST_OPEN_DIR="+dir, "TMPDIR="+dir, "HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1, Gid: 1}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("as the user daemon: %v\n%s", err, out)
	}
}

// A step run as a proxy in a workdir its user may not enter fails before
// anything runs, naming the workdir and the user, not the shell it would
// have started ("fork/exec /bin/sh: permission denied").
func TestProxyStepWorkdirItsUserMayNotEnter(t *testing.T) {
	m := proxyTarget(t)
	closed := filepath.Join(openDir(t), "closed", "sub") // closed is root's alone
	if err := os.MkdirAll(closed, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(closed), 0o700); err != nil {
		t.Fatal(err)
	}
	r := runJob(t, m, flowJob("closed", muster.Step{Name: "main", Shell: "true", RunAs: "nob", Workdir: closed}))
	a := r.Steps[0]
	want := fmt.Sprintf("workdir %q: the proxy's user \"nobody\" may not enter %s (mode drwx------, owner root, group root)", closed, filepath.Dir(closed))
	if a.Status != muster.AttemptFailed || !strings.Contains(a.Message, want) || a.ExitCode != nil {
		t.Errorf("the step: %s %q (exit code %v); want failed, saying %q", a.Status, a.Message, a.ExitCode, want)
	}
	if r := runJob(t, m, flowJob("open", muster.Step{Name: "main", Shell: "pwd", RunAs: "nob", Workdir: openDir(t)})); r.Status != muster.RunSucceeded {
		t.Errorf("in a directory every user may enter: %s %q", r.Status, r.Message)
	}
}

// A step without a workdir runs in its user's home, or in / when there is
// none, or when its user may not enter it: not failing to start, blaming
// the shell.
func TestDefaultWorkdir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a home its user may not enter needs root to make")
	}
	open := openDir(t)
	closed := filepath.Join(t.TempDir(), "closed")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	cases := 0
	for _, tc := range []struct {
		home string
		cred *syscall.Credential
		want string
	}{
		{open, nil, open},
		{open, nobody, open},
		{closed, nil, closed},
		{closed, nobody, "/"},
		{"/nonexistent", nobody, "/"},
		{"", nil, "/"},
	} {
		cases++
		if got := defaultWorkdir(tc.home, tc.cred); got != tc.want {
			t.Errorf("home %q, as %v: %q, want %q", tc.home, tc.cred, got, tc.want)
		}
	}
	if cases != 6 {
		t.Errorf("%d cases ran, want 6", cases)
	}
}
