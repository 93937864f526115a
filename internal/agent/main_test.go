package agent

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/musterhq/muster"
)

// Every goroutine the daemon starts has an owner that stops it: none may
// outlive the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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
