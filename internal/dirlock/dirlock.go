// Package dirlock takes an exclusive lock on a data directory, so that two
// processes never use one at once (a master's or a target's), or on a file
// standing for something else two must not share (a master's SQLite
// catalog kept outside its data directory).
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/musterhq/muster"
)

// File is the lock file in a data directory.
const File = "lock"

// Lock is a data directory (or what a file stands for) held by this
// process.
type Lock struct{ f *os.File }

// Acquire locks dir. The lock goes with the process, however it ends; one
// held elsewhere is refused (ECONFLICT), naming the process that holds it.
func Acquire(dir string) (*Lock, error) {
	return AcquireFile(filepath.Join(dir, File), "data directory "+dir)
}

// AcquireFile locks the file at path (made if need be), which stands for
// what, as Acquire locks a data directory: a refusal says that what is in
// use, and by which process.
func AcquireFile(path, what string) (*Lock, error) {
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
			return nil, muster.Errorf(muster.ECONFLICT, "%s is in use by %s; stop it first", what, holder)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &Lock{f: f}, nil
}

// Release lets the directory go. It unlocks before closing: a child being
// forked at the instant holds a copy of the descriptor until it execs, and
// the lock, which belongs to the open file all copies share, would stay
// held until then. Release of a nil Lock does nothing.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	err := l.f.Close()
	l.f = nil
	return err
}
