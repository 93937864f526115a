// Package netopt makes the dialers of muster's long-lived connections: a
// target's to its master, a master's to its PostgreSQL catalog. A peer can
// vanish without a word (a link down, a firewall or NAT dropping the
// connection's state); with no bound, a request in flight on such a
// connection waits until the kernel gives up, about 15 minutes.
package netopt

import (
	"net"
	"time"
)

// DeadPeerDialer returns a dialer whose TCP connections are closed within
// about bound of their peer going silent, and that gives up connecting
// after connect. Keep-alive probes find a silent connection while a reply
// is awaited (the peer's kernel answers them while it lives): one after
// half the bound in silence, another a quarter later, and the connection
// is closed when neither is answered. TCP_USER_TIMEOUT closes one whose
// sent data stays unacknowledged for the bound. A slow peer that still
// makes progress is not affected. Other connections (a Unix socket) are
// dialed as they are, and so are all elsewhere than on Linux but for the
// keep-alive probes.
func DeadPeerDialer(connect, bound time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout: connect,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable: true, Idle: bound / 2, Interval: bound / 4, Count: 2,
		},
		Control: boundUnacked(bound),
	}
}
