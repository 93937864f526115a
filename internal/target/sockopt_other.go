//go:build !linux

package target

import (
	"syscall"
	"time"
)

// boundUnacked has no portable equivalent of Linux's TCP_USER_TIMEOUT;
// keep-alive probes alone find a silent master.
func boundUnacked(time.Duration) func(network, address string, rc syscall.RawConn) error {
	return nil
}
