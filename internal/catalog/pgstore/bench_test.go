package pgstore_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// The store talks to PostgreSQL through pgx's own pool, not through
// database/sql with pgx's driver: this measures the two on the statements a
// poll makes (a target's row, then its pending instructions), prepared by
// each the way it prepares them.
func BenchmarkPollQueries(b *testing.B) {
	url := catalogtest.PostgresURL(b)
	catalogtest.OpenPostgres(b, url) // the catalog's tables
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `INSERT INTO targets (uid, name, enlisted_at, last_seq) VALUES ('u1', 'web1', 0, 0)`); err != nil {
		b.Fatal(err)
	}
	const row = `SELECT last_seq, paused FROM targets WHERE id = $1`
	const pending = `SELECT seq, operation, job_name, payload FROM instructions WHERE target_id = $1 AND seq > $2 AND status = 'pending' ORDER BY seq LIMIT $3`
	b.Run("pgxpool", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var seq int64
			var paused bool
			if err := pool.QueryRow(ctx, row, 1).Scan(&seq, &paused); err != nil {
				b.Fatal(err)
			}
			rows, err := pool.Query(ctx, pending, 1, seq, 500)
			if err != nil {
				b.Fatal(err)
			}
			rows.Close()
		}
	})
	b.Run("database-sql", func(b *testing.B) {
		db, err := sql.Open("pgx", url)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		rowStmt, err := db.PrepareContext(ctx, row)
		if err != nil {
			b.Fatal(err)
		}
		pendingStmt, err := db.PrepareContext(ctx, pending)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			var seq int64
			var paused bool
			if err := rowStmt.QueryRowContext(ctx, 1).Scan(&seq, &paused); err != nil {
				b.Fatal(err)
			}
			rows, err := pendingStmt.QueryContext(ctx, 1, seq, 500)
			if err != nil {
				b.Fatal(err)
			}
			rows.Close()
		}
	})
}

// The floor under a write on PostgreSQL, to set beside BenchmarkStartJob
// and BenchmarkUpsertRuns (package catalog) run at the same time: one
// round trip on a held connection, and the smallest durable write (BEGIN,
// a row inserted and COMMIT, sent as one batch: one round trip and the
// commit's WAL flush).
func BenchmarkFloor(b *testing.B) {
	url := catalogtest.PostgresURL(b)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE floor (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at BIGINT NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	b.Run("round-trip", func(b *testing.B) {
		for b.Loop() {
			var one int
			if err := conn.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("commit", func(b *testing.B) {
		for b.Loop() {
			batch := &pgx.Batch{}
			batch.Queue(`BEGIN`)
			batch.Queue(`INSERT INTO floor (at) VALUES ($1)`, time.Now().UnixMilli())
			batch.Queue(`COMMIT`)
			if err := conn.SendBatch(ctx, batch).Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A commit that notifies, as a START's does, while a master listens: told
// that other masters serve the catalog, and told it is alone, when it
// sends no notification. The listener is a second store, as a master's
// own listening connection is: PostgreSQL delivers to it either way.
func BenchmarkNotifiedCommit(b *testing.B) {
	url := catalogtest.PostgresURL(b)
	s, listener := catalogtest.OpenPostgres(b, url), catalogtest.OpenPostgres(b, url)
	ctx, cancel := context.WithCancel(context.Background())
	heard := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		listener.Listen(ctx, func(catalog.Commit, bool) {
			select {
			case heard <- struct{}{}:
			default:
			}
		})
	}()
	defer func() { cancel(); <-done }()
	commit := func() {
		err := s.Update(ctx, func(tx catalog.Tx) error {
			if err := tx.SetMeta(ctx, "bench", time.Now().String()); err != nil {
				return err
			}
			return tx.Notify(ctx, catalog.Commit{Targets: []int64{1}})
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	// Listening starts asynchronously: commit until it hears.
	for listening := false; !listening; {
		commit()
		select {
		case <-heard:
			listening = true
		case <-time.After(100 * time.Millisecond):
		}
	}
	for _, c := range []struct {
		name   string
		others bool
	}{{"others", true}, {"alone", false}} {
		b.Run(c.name, func(b *testing.B) {
			s.SetPeers(c.others)
			for b.Loop() {
				commit()
			}
		})
	}
}
