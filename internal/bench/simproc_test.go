package bench

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/testenv"
)

// A sim process that cannot start its targets says why, and the bench
// process reports it with the process's log instead of waiting for polls.
func TestSimProcessFails(t *testing.T) {
	dir := t.TempDir()
	spec := simSpec{EnlistURL: "https://127.0.0.1:1", Token: "x", CAFile: filepath.Join(dir, "no-ca.crt"),
		Names: []string{"t1", "t2"}, PollURLs: []string{"https://127.0.0.1:1"}, Workers: 1}
	p, err := startSimProcess(testenv.MusterBinary(t), filepath.Join(dir, "sims.log"), spec, newRecorder(), func(int) {})
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = p.waitReady(ctx)
	if err == nil || !strings.Contains(err.Error(), "poll_urls: 1 for 2 names") {
		t.Fatalf("waitReady = %v, want the spec's poll_urls refused", err)
	}
}

func TestSimsPerProcess(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	room := int(min(lim.Max, 1<<30)) - fileMargin
	for _, c := range []struct {
		asked, want int
	}{
		{0, min(defaultSimsPerProcess, room)},
		{7, 7},
		{room + 1, room}, // no more than a child's file limit holds
	} {
		got, err := simsPerProcess(c.asked)
		if err != nil || got != c.want {
			t.Errorf("simsPerProcess(%d) = %d, %v; want %d", c.asked, got, err, c.want)
		}
	}
}
