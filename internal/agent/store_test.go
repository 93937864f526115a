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

// An unsynced write commits at synchronous=NORMAL, and the write
// connection is back at FULL after it, whether its function commits,
// fails or panics: a synced write after it is synced.
func TestUnsyncedWriteLeavesTheWriterSynced(t *testing.T) {
	m := newTestMain(t)
	ctx := context.Background()
	level := func(q interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}) int {
		t.Helper()
		var n int
		if err := q.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const normal, full = 1, 2
	ends := []struct {
		name string
		end  func(tx *sql.Tx) error
	}{
		{"commits", func(tx *sql.Tx) error { return setState(ctx, tx, keyLocation, "rack 4") }},
		{"fails", func(*sql.Tx) error { return sql.ErrNoRows }},
		{"panics", func(*sql.Tx) error { panic("a bug in a transaction") }},
	}
	for _, e := range ends {
		inside := 0
		func() {
			defer func() { recover() }()
			m.store.updateUnsynced(ctx, func(tx *sql.Tx) error {
				inside = level(tx)
				return e.end(tx)
			})
		}()
		if inside != normal {
			t.Errorf("%s: synchronous %d inside the unsynced write, want %d (NORMAL)", e.name, inside, normal)
		}
		var after int
		if err := m.store.update(ctx, func(tx *sql.Tx) error { after = level(tx); return nil }); err != nil {
			t.Fatal(err)
		}
		if after != full {
			t.Errorf("%s: synchronous %d in the synced write after it, want %d (FULL)", e.name, after, full)
		}
	}
}
