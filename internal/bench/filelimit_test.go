package bench

import (
	"strings"
	"syscall"
	"testing"
)

func TestEnsureOpenFiles(t *testing.T) {
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	if orig.Max < 2*fileMargin+100 {
		t.Skipf("the hard open-file limit (%d) is too low to test with", orig.Max)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })

	// A soft limit below what the targets need is raised, up to the hard one.
	low := orig
	low.Cur = fileMargin
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	if err := ensureOpenFiles(100); err != nil {
		t.Fatal(err)
	}
	var got syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &got); err != nil {
		t.Fatal(err)
	}
	if got.Cur != 100+fileMargin {
		t.Errorf("soft limit = %d, want %d", got.Cur, 100+fileMargin)
	}

	// Past the hard limit, the error says what is needed and what to do.
	n := int(orig.Max)
	err := ensureOpenFiles(n)
	if err == nil || !strings.Contains(err.Error(), "ulimit -Hn") || !strings.Contains(err.Error(), "open files") {
		t.Fatalf("ensureOpenFiles(%d) = %v, want the limit named", n, err)
	}
}
