// Package netopt makes the dialers of muster's long-lived connections: a
// target's to its master, a master's to its PostgreSQL catalog. A peer can
// vanish without a word (a link down, a firewall or NAT dropping the
// connection's state); with no bound, a request in flight on such a
// connection waits until the kernel gives up, about 15 minutes.
package netopt

import (
	"net"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DeadPeerDialer returns a dialer whose TCP connections are closed within
// about bound of their peer going silent, and that gives up connecting
// after connect. Keep-alive probes find a silent connection while a reply
// is awaited (the peer's kernel answers them while it lives): one after
// half the bound in silence, another a quarter later, and the connection
// is closed when neither is answered. TCP_USER_TIMEOUT closes one whose
// sent data stays unacknowledged for the bound. A slow peer that still
// makes progress is not affected. Other connections (a Unix socket) are
// dialed as they are.
func DeadPeerDialer(connect, bound time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout: connect,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable: true, Idle: bound / 2, Interval: bound / 4, Count: 2,
		},
		Control: boundUnacked(bound),
	}
}

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
