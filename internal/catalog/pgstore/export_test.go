package pgstore

import (
	"context"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
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
