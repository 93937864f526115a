package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/musterhq/muster/internal/agentproto"
)

// A run's processes are tracked in one of two ways.
//
// With cgroups, each run has a cgroup v2 of its own, under the daemon's own
// cgroup (<the daemon's cgroup>/muster-<enlistment id>/run-<run id>), and
// every step process is started in it (clone3's CLONE_INTO_CGROUP, so not
// even its first instruction runs outside). No process can leave a cgroup by
// itself, whatever it does: setsid, a double fork, a cleared environment;
// only one that may write the cgroup files can move itself out (a step
// running as root, or as the daemon's user under Delegate=yes; never a
// proxy's, whose user owns none of them). A
// run is stopped by writing cgroup.kill, which kills every process in it at
// once, and what a step leaves behind is killed the same way when it ends.
// After a kill -9 of the daemon, the next start kills whatever the dead
// daemon's run cgroups still hold. This needs a cgroup v2 hierarchy with
// cgroup.kill (Linux 5.14), and the right to create cgroups under the
// daemon's own: root, or a systemd service with Delegate=yes.
//
// Elsewhere a step's processes are its process group and every process whose
// environment carries its run id (MUSTER_RUN_ID), found in /proc. A process
// that leaves both (setsid and env -i) escapes.

// cgroups manages the run cgroups of one target: base is the directory that
// holds them, "" when cgroups are not used.
type cgroups struct {
	base string
}

// processTracking says which way of tracking a run's processes is in use.
func (c *cgroups) processTracking() string {
	if c.base != "" {
		return agentproto.ProcessTrackingCgroup
	}
	return agentproto.ProcessTrackingEnvironment
}

// cgroupBase returns the directory the target with enlistment id uid keeps
// its run cgroups in, under this process's own cgroup v2, creating it. It
// fails, saying why, where cgroups cannot be used.
func cgroupBase(uid string) (string, error) {
	own, err := ownCgroup()
	if err != nil {
		return "", err
	}
	base := filepath.Join(own, "muster-"+uid)
	if err := os.Mkdir(base, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("cannot create cgroups under %s (run as root, or under systemd with Delegate=yes): %w", own, err)
	}
	// (The root cgroup has no cgroup.kill; the ones below it do.)
	if _, err := os.Stat(filepath.Join(base, "cgroup.kill")); err != nil {
		os.Remove(base)
		return "", fmt.Errorf("the kernel has no cgroup.kill (Linux 5.14 or later): %w", err)
	}
	return base, nil
}

// ProcessTracking says how a target daemon started by this process, with
// its rights and in its cgroup, would track its runs' processes
// (agentproto.ProcessTrackingCgroup or ProcessTrackingEnvironment), and,
// for the latter, why.
func ProcessTracking() (string, error) {
	base, err := cgroupBase(fmt.Sprintf("probe-%d", os.Getpid()))
	if err != nil {
		return agentproto.ProcessTrackingEnvironment, err
	}
	return agentproto.ProcessTrackingCgroup, os.Remove(base)
}

// RemoveCgroups kills what the run cgroups of the target with enlistment
// id uid still hold, and removes them: for a daemon that was killed and
// will not start again (its next start would do the same). It does
// nothing where there are none.
func RemoveCgroups(uid string) error {
	own, err := ownCgroup()
	if err != nil {
		return nil
	}
	base := filepath.Join(own, "muster-"+uid)
	if _, err := sweepCgroups(base, func(string) bool { return false }); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	return os.Remove(base)
}

// ownCgroup returns the directory of this process's cgroup v2: its path in
// /proc/self/cgroup, under where the cgroup2 hierarchy is mounted, as
// /proc/self/mountinfo says (it is not always /sys/fs/cgroup: in hybrid
// mode it is often /sys/fs/cgroup/unified).
func ownCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	var path string
	for line := range strings.Lines(string(b)) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "0::"); ok {
			path = p
		}
	}
	if path == "" {
		return "", errors.New("this process is in no cgroup v2 (/proc/self/cgroup has no 0:: line)")
	}
	mi, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer mi.Close()
	sc := bufio.NewScanner(mi)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f := strings.Fields(pre)
		if !ok || len(f) < 5 || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		root, mount := unescapeMount(f[3]), unescapeMount(f[4])
		rel, ok := strings.CutPrefix(path, root)
		if !ok || (rel != "" && !strings.HasPrefix(rel, "/") && root != "/") {
			continue
		}
		return filepath.Join(mount, rel), nil
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("no cgroup2 hierarchy is mounted (/proc/self/mountinfo)")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// runCgroup is the cgroup of one run, with a descriptor of its directory
// that step processes are started into.
type runCgroup struct {
	path string
	fd   int
}

// create makes the cgroup of a run. A cgroup of the same name left by a
// previous process is emptied first.
func (c *cgroups) create(runID string) (*runCgroup, error) {
	path := filepath.Join(c.base, "run-"+runID)
	if err := os.Mkdir(path, 0o755); errors.Is(err, fs.ErrExist) {
		killCgroup(path)
	} else if err != nil {
		return nil, err
	}
	fd, err := syscall.Open(path, syscall.O_DIRECTORY|syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	return &runCgroup{path: path, fd: fd}, nil
}

// signal sends sig to every process in the run's cgroup.
func (rc *runCgroup) signal(sig syscall.Signal) {
	b, err := os.ReadFile(filepath.Join(rc.path, "cgroup.procs"))
	if err != nil {
		return
	}
	for line := range strings.Lines(string(b)) {
		var pid int
		if _, err := fmt.Sscan(line, &pid); err == nil && pid > 0 {
			syscall.Kill(pid, sig)
		}
	}
}

// kill kills every process in the run's cgroup and waits until it is empty.
func (rc *runCgroup) kill() { killCgroup(rc.path) }

// remove kills what is left in the run's cgroup and removes it.
func (rc *runCgroup) remove() error {
	syscall.Close(rc.fd)
	killCgroup(rc.path)
	return removeCgroup(rc.path)
}

// removeCgroup removes an emptied cgroup with the cgroups under it,
// deepest first: a step running as root may have made its own below its
// run's, and a cgroup with one below it cannot be removed.
func removeCgroup(path string) error {
	if entries, err := os.ReadDir(path); err == nil {
		for _, e := range entries {
			if e.IsDir() {
				if err := removeCgroup(filepath.Join(path, e.Name())); err != nil {
					return err
				}
			}
		}
	}
	return os.Remove(path)
}

// cgroupEmptyWait bounds how long a kill waits for a cgroup to empty: the
// kernel kills at once, but a process in uninterruptible sleep dies when
// it wakes.
const cgroupEmptyWait = 5 * time.Second

// killCgroup writes cgroup.kill and waits, within cgroupEmptyWait, until
// the cgroup holds no process. A cgroup that does not exist (a run killed
// before its cgroup was made, or one already removed) holds none.
func killCgroup(path string) {
	if populated(path) != 1 {
		return
	}
	os.WriteFile(filepath.Join(path, "cgroup.kill"), []byte("1"), 0)
	deadline := time.Now().Add(cgroupEmptyWait)
	for populated(path) == 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// populated reads a cgroup's "populated" flag: 1 while a process is in it
// or in a descendant, 0 once none is, -1 when it cannot be read.
func populated(path string) int {
	b, err := os.ReadFile(filepath.Join(path, "cgroup.events"))
	if err != nil {
		return -1
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("populated ")); ok {
			if string(v) == "0" {
				return 0
			}
			return 1
		}
	}
	return -1
}

// sweep kills and removes every run cgroup under base whose run is not
// running in this process: what a daemon killed with SIGKILL left. It
// returns how many it removed.
func sweepCgroups(base string, running func(runID string) bool) (int, error) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, e := range entries {
		id, ok := strings.CutPrefix(e.Name(), "run-")
		if !ok || !e.IsDir() || running(id) {
			continue
		}
		path := filepath.Join(base, e.Name())
		killCgroup(path)
		if err := removeCgroup(path); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
