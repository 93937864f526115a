package target

import (
	"strings"
	"testing"
	"time"
)

// A data directory is used by one holder at a time. A lock this process
// lets go of is taken as soon as it is free; one it keeps is refused,
// naming the holder.
func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	first, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockDir(dir); err == nil || !strings.Contains(err.Error(), "is in use by process") {
		t.Fatalf("a second lock while the first is held: %v, want in use", err)
	}
	// Released while the second waits, as a forked child's copy of the
	// descriptor is when it execs.
	go func() {
		time.Sleep(100 * time.Millisecond)
		unlockDir(first)
	}()
	second, err := lockDir(dir)
	if err != nil {
		t.Fatalf("after the first let go: %v", err)
	}
	unlockDir(second)
}
