package master

import (
	"log/slog"
	"syscall"

	"github.com/musterhq/muster"
)

// spareFiles are the open files a master needs for everything but its
// targets, each of which holds one connection open with its long poll:
// operators, the catalog, and room for enlistments and reconnections.
const spareFiles = 1024

// RaiseFileLimit raises this process's soft limit on open files to its hard
// limit, so that it (and the processes it starts, which inherit it) can
// hold a connection per target, and returns the limit before and after.
// (Go raises it at start already, but a process may have lowered it since,
// and saying what the master has is part of its start.)
func RaiseFileLimit() (before, after uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, err
	}
	before = lim.Cur
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return before, before, err
		}
	}
	return before, lim.Cur, nil
}

// logFileLimit raises the open-file limit and says what the master has: a
// limit too low for the fleet shows as refused connections long after
// start, where nobody looks for it.
func logFileLimit(log *slog.Logger) {
	before, after, err := RaiseFileLimit()
	if err != nil {
		log.Warn("cannot read or raise the open-file limit", muster.LogErr, err, "soft", before)
		return
	}
	attrs := []any{"limit", after, "raised_from", before, "targets", max(int64(after)-spareFiles, 0)}
	if after < 16384 {
		log.Warn("the open-file limit is low for a master: each target holds a connection; raise it (LimitNOFILE= in a systemd unit, ulimit -n)", attrs...)
		return
	}
	log.Info("open-file limit", attrs...)
}
