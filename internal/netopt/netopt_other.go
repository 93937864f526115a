//go:build !linux

package netopt

import (
	"syscall"
	"time"
)

// boundUnacked does nothing: TCP_USER_TIMEOUT is Linux's.
func boundUnacked(time.Duration) func(network, address string, rc syscall.RawConn) error { return nil }
