package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/musterhq/muster"
)

// Every goroutine the daemon starts has an owner that stops it: none may
// outlive the tests. With MUSTER_AGENT_DAEMON=DIR set, the test binary is
// instead the target daemon of the data directory DIR, until SIGTERM: tests
// that kill a target with SIGKILL start it so.
func TestMain(m *testing.M) {
	if dir := os.Getenv("MUSTER_AGENT_DAEMON"); dir != "" {
		os.Exit(daemon(dir))
	}
	goleak.VerifyTestMain(m)
}

// daemon runs the target daemon of dir as `muster target` does.
func daemon(dir string) int {
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Subreaper = dir, true
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	m, err := New(cfg)
	if err == nil {
		err = m.Open(context.Background())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer m.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// newTestMain returns a target daemon enlisted (in no master) as web1, with
// its store open in a temporary directory and nothing running: enough to
// apply instructions, fire schedules and execute runs. adjust, when given,
// changes the configuration first.
func newTestMain(t testing.TB, adjust ...func(*Config)) *Main {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, fn := range adjust {
		fn(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if m.store, err = openStore(context.Background(), filepath.Join(m.cfg.DataDir, StoreFile), m.cfg.Now); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	m.enl = enlistment{Name: "web1", UID: "uid-web1", PollInterval: muster.DefaultPollInterval, MasterURL: "https://127.0.0.1:1"}
	m.loc, m.tzName, m.home = time.UTC, "UTC", t.TempDir()
	m.exec, m.sched = newExecutor(m), newScheduler(m)
	return m
}
