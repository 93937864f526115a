package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
)

func openTest(tb testing.TB) (write, read *sql.DB) {
	tb.Helper()
	write, read, err := Open(filepath.Join(tb.TempDir(), "test.db"), "FULL", 2)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { write.Close(); read.Close() })
	if _, err := write.Exec(`CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`); err != nil {
		tb.Fatal(err)
	}
	return write, read
}

// cached returns the statements the write handle's one connection holds.
func cached(t *testing.T, db *sql.DB) map[string]*cachedStmt { return connOf(t, db).stmts }

// connOf returns a connection of db, as the statement cache wraps it.
func connOf(t *testing.T, db *sql.DB) *cachingConn {
	t.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var cc *cachingConn
	c.Raw(func(dc any) error {
		cc = dc.(*cachingConn)
		return nil
	})
	return cc
}

func TestStatementCache(t *testing.T) {
	ctx := context.Background()
	write, _ := openTest(t)
	const insert = `INSERT INTO kv (k, v) VALUES (?, ?)`
	for i := range 3 {
		tx, err := write.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, insert, fmt.Sprintf("k%d", i), i); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	first := cached(t, write)[insert]
	if first == nil {
		t.Fatalf("the insert is not cached: %v", cached(t, write))
	}

	t.Run("a failed statement is prepared afresh and runs again", func(t *testing.T) {
		_, err := write.ExecContext(ctx, insert, "k0", 9)
		if !IsUniqueViolation(err) {
			t.Fatalf("err = %v, want a unique violation", err)
		}
		if _, err := write.ExecContext(ctx, insert, "k3", 3); err != nil {
			t.Fatal(err)
		}
		if got := cached(t, write)[insert]; got == nil || got == first {
			t.Errorf("cached %p after the failure, want a new statement (was %p)", got, first)
		}
	})

	t.Run("the same query inside its own open rows", func(t *testing.T) {
		const q = `SELECT k, v FROM kv WHERE v >= ? ORDER BY k`
		// In a transaction: its one connection runs both cursors.
		tx, err := write.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		rows, err := tx.QueryContext(ctx, q, 0)
		if err != nil {
			t.Fatal(err)
		}
		outer, inner := 0, 0
		for rows.Next() {
			var k string
			var v int
			if err := rows.Scan(&k, &v); err != nil {
				t.Fatal(err)
			}
			outer++
			// A second cursor of the same text, while the first is open,
			// on the one connection of the write handle.
			inRows, err := tx.QueryContext(ctx, q, v)
			if err == nil {
				for inRows.Next() {
					inner++
				}
				err = inRows.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		// 4 rows (v 0..3); from each, the rows at or above it: 4+3+2+1.
		if outer != 4 || inner != 10 {
			t.Errorf("read %d rows and %d inner rows, want 4 and 10", outer, inner)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		if s := cached(t, write)[q]; s == nil || s.busy {
			t.Errorf("after the rows closed the query's statement is %+v, want it cached and free", s)
		}
	})

	t.Run("bounded", func(t *testing.T) {
		for i := range maxCachedStmts + 10 {
			var v int
			if err := write.QueryRowContext(ctx, fmt.Sprintf(`SELECT %d`, i)).Scan(&v); err != nil || v != i {
				t.Fatalf("SELECT %d: %d, %v", i, v, err)
			}
		}
		if n := len(cached(t, write)); n > maxCachedStmts {
			t.Errorf("%d statements cached, want at most %d", n, maxCachedStmts)
		}
	})
}

// BenchmarkExec is a one-row upsert by text in a transaction, with the
// statement cache (sqlite.Open) and without it (modernc's driver as is).
func BenchmarkExec(b *testing.B) {
	const upsert = `INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v`
	run := func(b *testing.B, db *sql.DB) {
		ctx := context.Background()
		i := 0
		for b.Loop() {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, upsert, "k", i); err != nil {
				b.Fatal(err)
			}
			if err := tx.Rollback(); err != nil {
				b.Fatal(err)
			}
			i++
		}
	}
	b.Run("cached", func(b *testing.B) {
		write, _ := openTest(b)
		run(b, write)
	})
	b.Run("uncached", func(b *testing.B) {
		db, err := sql.Open("sqlite", dsn(filepath.Join(b.TempDir(), "test.db"), "FULL", true))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		if _, err := db.Exec(`CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`); err != nil {
			b.Fatal(err)
		}
		run(b, db)
	})
}
