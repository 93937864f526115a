package bench

import (
	"fmt"
	"syscall"
)

// fileMargin is what the bench process keeps open besides its simulated
// targets' connections: its clients, the masters' pipes, logs, the database.
const fileMargin = 256

// ensureOpenFiles makes room in this process's open-file limit for n
// simulated targets, each holding one connection: it raises the soft limit
// up to the hard one, and says so plainly when even the hard limit is too
// low, rather than letting enlistments fail one by one with EMFILE.
func ensureOpenFiles(n int) error {
	need := uint64(n + fileMargin)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur >= need {
		return nil
	}
	if lim.Max < need {
		return fmt.Errorf("%d simulated targets need about %d open files in this process (a connection each), but its limit is %d (ulimit -Hn): raise it, or measure fewer targets", n, need, lim.Max)
	}
	lim.Cur = need
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}
