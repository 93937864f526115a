package netopt

import (
	"context"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A TCP connection the dialer makes carries the bound: unacknowledged data
// for it, or keep-alive probes unanswered after half of it and a quarter
// more, close it. A Unix socket is dialed as it is.
func TestDeadPeerDialerBoundsTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := DeadPeerDialer(time.Second, 20*time.Second).DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := map[string]int{
		"TCP_USER_TIMEOUT (ms)": 20000,
		"SO_KEEPALIVE":          1,
		"TCP_KEEPIDLE (s)":      10,
		"TCP_KEEPINTVL (s)":     5,
		"TCP_KEEPCNT":           2,
	}
	for name, got := range options(t, c) {
		if got != want[name] {
			t.Errorf("%s = %d, want %d", name, got, want[name])
		}
	}

	sock := filepath.Join(t.TempDir(), "s")
	uln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer uln.Close()
	uc, err := DeadPeerDialer(time.Second, 20*time.Second).DialContext(context.Background(), "unix", sock)
	if err != nil {
		t.Fatalf("a Unix socket: %v", err)
	}
	uc.Close()
}

// options reads, from a TCP connection, the options DeadPeerDialer sets.
func options(t testing.TB, c net.Conn) map[string]int {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	opts := map[string][2]int{
		"TCP_USER_TIMEOUT (ms)": {unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT},
		"SO_KEEPALIVE":          {unix.SOL_SOCKET, unix.SO_KEEPALIVE},
		"TCP_KEEPIDLE (s)":      {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE},
		"TCP_KEEPINTVL (s)":     {unix.IPPROTO_TCP, unix.TCP_KEEPINTVL},
		"TCP_KEEPCNT":           {unix.IPPROTO_TCP, unix.TCP_KEEPCNT},
	}
	out := map[string]int{}
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		for name, o := range opts {
			v, err := unix.GetsockoptInt(int(fd), o[0], o[1])
			if err != nil {
				gerr = err
				return
			}
			out[name] = v
		}
	}); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	if len(out) != len(opts) {
		t.Fatalf("read %d options, want %d", len(out), len(opts))
	}
	return out
}
