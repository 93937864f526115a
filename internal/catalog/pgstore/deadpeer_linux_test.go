package pgstore_test

import (
	"context"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/musterhq/muster/internal/catalog/catalogtest"
	"github.com/musterhq/muster/internal/catalog/pgstore"
)

// The store's connections to the database are closed within about 20 s of
// it going silent (TCP_USER_TIMEOUT and keep-alive probes): a statement
// waiting on a database whose link went down fails, and the master says
// 503, rather than wait for the kernel's quarter of an hour.
func TestConnectionsToTheDatabaseBoundASilentPeer(t *testing.T) {
	ctx := context.Background()
	s := catalogtest.OpenPostgres(t, catalogtest.PostgresURL(t))
	c, release, err := pgstore.PoolConn(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatalf("the catalog's connection is not a socket of its own (%T)", c)
	}
	var timeout, keepalive int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		if timeout, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT); gerr == nil {
			keepalive, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE)
		}
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if timeout != 20000 || keepalive != 1 {
		t.Errorf("TCP_USER_TIMEOUT %d ms and SO_KEEPALIVE %d, want 20000 and 1", timeout, keepalive)
	}
}
