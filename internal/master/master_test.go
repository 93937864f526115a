package master

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/musterhq/muster"
)

// A master's data directory is locked while it runs: a second master on it
// is refused, naming the first, and starts once the first has closed.
func TestDataDirectoryIsLocked(t *testing.T) {
	dir := t.TempDir()
	open := func() (*Main, error) {
		cfg := DefaultConfig()
		cfg.DataDir, cfg.Listen = dir, "127.0.0.1:0"
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		m, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return m, m.Open(context.Background())
	}
	first, err := open()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open(); muster.ErrorCode(err) != muster.ECONFLICT {
		t.Fatalf("a second master on the same directory: %v, want refused as a conflict", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := open()
	if err != nil {
		t.Fatalf("a master on the directory once the first closed: %v", err)
	}
	again.Close()
}
