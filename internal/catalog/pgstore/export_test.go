package pgstore

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/sqlstore"
	"github.com/musterhq/muster/internal/migration"
)

// SetRollbackTimeout sets how long the ROLLBACK of a transaction that did
// not commit may take, until restore is called.
func SetRollbackTimeout(d time.Duration) (restore func()) {
	old := rollbackTimeout
	rollbackTimeout = d
	return func() { rollbackTimeout = old }
}

// PoolConn is one of the pool's connections to the database, until
// release.
func PoolConn(ctx context.Context, s *Store) (c net.Conn, release func(), err error) {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	return pc.Conn().PgConn().Conn(), pc.Release, nil
}

// SetImportBatch sets the bounds of an import's batches, until restore is
// called.
func SetImportBatch(rows, bytes int) (restore func()) {
	oldRows, oldBytes := importBatchRows, importBatchBytes
	importBatchRows, importBatchBytes = rows, bytes
	return func() { importBatchRows, importBatchBytes = oldRows, oldBytes }
}

// MigrateBefore migrates the catalog at url with the migrations whose
// files' names sort before version: the catalog an older muster left.
func MigrateBefore(ctx context.Context, url, version string) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	s := &Store{pool: pool}
	return s.migrateWhile(ctx, func(name string) bool { return name < version })
}

// Explained returns reads on s's pool that ask PostgreSQL for the plan of
// each statement whose text holds from, before running it, and add the
// plan's lines to plans.
func Explained(t testing.TB, s *Store, from string, plans *[]string) catalog.Reads {
	return sqlstore.New(&explainer{querier: querier{s.pool}, t: t, from: from, plans: plans}, dialect)
}

// Exec runs a statement on s's pool.
func Exec(ctx context.Context, s *Store, query string) error {
	_, err := s.pool.Exec(ctx, query)
	return err
}

// explainer is a Querier that asks PostgreSQL for the plan of each
// statement whose text holds from before running it, and keeps the plans.
type explainer struct {
	querier
	t     testing.TB
	from  string
	plans *[]string
}

func (e *explainer) explain(ctx context.Context, query string, args []any) {
	if !strings.Contains(query, e.from) {
		return
	}
	rows, err := e.q.Query(ctx, "EXPLAIN "+query, args...)
	if err != nil {
		e.t.Fatalf("EXPLAIN: %v\n%s", err, query)
	}
	defer rows.Close()
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			e.t.Fatal(err)
		}
		*e.plans = append(*e.plans, line)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *explainer) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	e.explain(ctx, query, args)
	return e.querier.Query(ctx, query, args...)
}

func (e *explainer) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	e.explain(ctx, query, args)
	return e.querier.QueryRow(ctx, query, args...)
}

// Migrate applies the migrations the catalog at url has not seen, as a
// master opening it with opts does.
func Migrate(ctx context.Context, url string, opts Options) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	s := &Store{pool: pool, opts: opts, log: opts.Logger}
	return s.migrate(ctx)
}

// LeasePID is the backend pid of s's lease session while it holds the
// singleton duties, 0 otherwise.
func LeasePID(s *Store) int32 {
	if me := s.holder.Load(); me != nil {
		return me.pid
	}
	return 0
}

// Channel is the name of the catalog's notification channel.
func Channel(s *Store) string { return s.channel }

// MigrationNames returns the names of the catalog's migrations, in order.
func MigrationNames() ([]string, error) {
	files, err := migration.List(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name
	}
	return names, nil
}

// MigrateWith applies to the catalog at url, as the migration numbered
// version named name, the statements in body: a migration this build does
// not have (one that fails, for tests).
func MigrateWith(ctx context.Context, url string, version int, name, body string) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	s := &Store{pool: pool}
	return s.migrateOne(ctx, migration.File{Name: name, Version: version}, body, version)
}
