package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile guards a target's data directory.
const LockFile = "lock"

// lockDir takes an exclusive lock on dir, so that two processes never use
// one data directory at once. The lock goes with the process, however it
// ends.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := strings.TrimSpace(string(b))
			if holder == "" {
				holder = "another process"
			} else {
				holder = "process " + holder
			}
			return nil, fmt.Errorf("data directory %s is in use by %s; stop it first", dir, holder)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// unlockDir releases the lock. It unlocks before closing: a child being
// forked at the instant holds a copy of the descriptor until it execs,
// and the lock, which belongs to the open file all copies share, would
// stay held until then.
func unlockDir(f *os.File) error {
	if f == nil {
		return nil
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return f.Close()
}

// holderGone reports whether the process that dir's lock file names (the
// daemon that holds the directory, or held it last) has exited. It takes
// no lock, so that asking never keeps a daemon from starting. A file that
// names no process yet (its holder writes its pid just after it locks)
// says nothing: the holder is taken to be there.
func holderGone(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, LockFile))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
