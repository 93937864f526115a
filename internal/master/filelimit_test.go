package master

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// syncBuffer is a log destination safe for the master's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A master raises its soft limit on open files to the hard limit when it
// opens, and logs what it has.
func TestMasterRaisesItsFileLimit(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max < 2048 {
		t.Skipf("the hard limit on open files is %d; the test lowers the soft limit to 1024 below it", lim.Max)
	}
	orig := lim
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
	lim.Cur = 1024
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	testMaster(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&log, nil)) })
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur != lim.Max {
		t.Errorf("the soft limit is %d after the master opened, want the hard limit %d", lim.Cur, lim.Max)
	}
	if want := fmt.Sprintf("limit=%d raised_from=1024", lim.Max); !strings.Contains(log.String(), want) {
		t.Errorf("the log does not say %q:\n%s", want, log.String())
	}
}
