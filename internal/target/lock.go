package target

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// LockFile guards a target's data directory.
const LockFile = "lock"

// lockDir takes an exclusive lock on dir, so that two processes never use
// one data directory at once. The lock goes with the process, however it
// ends.
//
// A lock this process let go of can linger for a moment: a child being
// forked at the instant holds a copy of the lock's descriptor until it
// execs. So when the holder on record is this process, lockDir tries again
// for a short while before it gives up.
func lockDir(dir string) (*os.File, error) {
	deadline := time.Now().Add(selfLockWait)
	for {
		f, holder, err := tryLockDir(dir)
		if err == nil || holder != strconv.Itoa(os.Getpid()) || time.Now().After(deadline) {
			return f, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// selfLockWait bounds how long lockDir waits for a lock this process had.
const selfLockWait = 2 * time.Second

// tryLockDir makes one attempt; when the directory is in use, it also
// returns the process id on record ("" if none).
func tryLockDir(dir string) (*os.File, string, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, "", err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := strings.TrimSpace(string(b))
			who := "another process"
			if holder != "" {
				who = "process " + holder
			}
			return nil, holder, fmt.Errorf("data directory %s is in use by %s; stop it first", dir, who)
		}
		return nil, "", fmt.Errorf("lock %s: %w", path, err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, "", nil
}

// unlockDir releases the lock.
func unlockDir(f *os.File) error {
	if f == nil {
		return nil
	}
	return f.Close()
}
