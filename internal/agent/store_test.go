package agent

import (
	"context"
	"database/sql"
	"testing"
	"time"
)

// A transaction whose function panics gives the single write connection
// back: every later write still goes through.
func TestUpdateReleasesTheWriterOnPanic(t *testing.T) {
	m := newTestMain(t)
	ctx := context.Background()
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic did not reach the caller")
			}
		}()
		m.store.update(ctx, func(tx *sql.Tx) error {
			if err := setState(ctx, tx, keyLocation, "lost"); err != nil {
				return err
			}
			panic("a bug in a transaction")
		})
	}()
	// Bounded: without the rollback, the next write waits for a
	// connection that never comes back.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := m.store.setState(wctx, keyLocation, "rack 4"); err != nil {
		t.Fatalf("a write after the panic: %v", err)
	}
	st, err := m.store.state(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := st[keyLocation]; got != "rack 4" {
		t.Errorf("location %q, want the later write's \"rack 4\" (the panicking one rolled back)", got)
	}
}
