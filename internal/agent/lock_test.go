package agent

import (
	"strings"
	"syscall"
	"testing"
)

// A data directory is used by one holder at a time, and is free as soon as
// its holder lets go, even while a copy of the lock's descriptor lives on
// (as it does in a child being forked at that instant).
func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	first, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockDir(dir); err == nil || !strings.Contains(err.Error(), "is in use by process") {
		t.Fatalf("a second lock while the first is held: %v, want in use", err)
	}
	copyFD, err := syscall.Dup(int(first.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(copyFD)
	if err := unlockDir(first); err != nil {
		t.Fatal(err)
	}
	second, err := lockDir(dir)
	if err != nil {
		t.Fatalf("after the first let go, a copy of its descriptor still open: %v", err)
	}
	unlockDir(second)
}
