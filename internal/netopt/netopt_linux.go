package netopt

import (
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// boundUnacked sets TCP_USER_TIMEOUT on a TCP socket: the kernel closes the
// connection when data it sent stays unacknowledged for d.
func boundUnacked(d time.Duration) func(network, address string, rc syscall.RawConn) error {
	return func(network, _ string, rc syscall.RawConn) error {
		if !strings.HasPrefix(network, "tcp") {
			return nil
		}
		var err error
		if cerr := rc.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d.Milliseconds()))
		}); cerr != nil {
			return cerr
		}
		return err
	}
}
