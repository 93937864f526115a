package master

import (
	"errors"
	"net"
	"syscall"
)

// peek is how a parked poll notices its target going away, and how an
// answered poll's connection waits for its next request: it waits until conn has something to read, or its read deadline
// passes, and returns how many bytes wait to be read (at most 1): 0 with
// a nil error when the peer closed the connection. It takes nothing from
// the connection: the bytes stay for whoever reads it next.
func peek(conn net.Conn) (int, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return 0, errors.New("peek: not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var b [1]byte
	var n int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return rerr != syscall.EAGAIN && rerr != syscall.EINTR // else wait until readable
	})
	if err != nil {
		return 0, err
	}
	return n, rerr
}
