package catalog

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// The SQLite driver parses a statement each time one is prepared, and a
// query run on a database handle is prepared anew every time. Under load
// the master runs the same few statements thousands of times a second (a
// fan-out to 1,000 targets spent a quarter of its CPU in SQLite's parser),
// so those are prepared once and reused on every connection that runs
// them.

// hotWrites are the statements of the hot write paths (acks, run uploads,
// START posts), prepared when the catalog opens. A transaction finds them
// by their text.
var hotWrites = []string{
	sqlNextSeq, sqlInsertInstruction, sqlAckInstruction, sqlLiftTombstone,
	sqlUpsertRun, sqlRunOutcome, sqlJobSent, sqlSentJob, sqlLastSuccess,
	sqlTargetUID, sqlExpireStarts, sqlFindStart, sqlRecordStart,
}

// prepareWrites prepares hotWrites on the write handle. It must run
// outside any transaction: the handle has a single connection.
func (db *DB) prepareWrites(ctx context.Context) error {
	db.writeStmts = map[string]*sql.Stmt{}
	for _, q := range hotWrites {
		s, err := db.write.PrepareContext(ctx, q)
		if err != nil {
			return err
		}
		db.writeStmts[q] = s
	}
	return nil
}

// stmt returns q prepared for the transaction: the catalog's prepared
// statement if q is one of hotWrites, else a statement prepared now (and
// closed with the transaction).
func (tx *tx) stmt(q string) (*sql.Stmt, error) {
	if s, ok := tx.db.writeStmts[q]; ok {
		return tx.Tx.StmtContext(tx.ctx, s), nil
	}
	return tx.Tx.PrepareContext(tx.ctx, q)
}

// readStmts caches statements prepared on the read handle, by text.
type readStmts struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// readStmt returns q prepared on the read handle, preparing it the first
// time. Only fixed statements are passed here, so the cache stays small.
func (db *DB) readStmt(ctx context.Context, q string) (*sql.Stmt, error) {
	db.reads.mu.Lock()
	defer db.reads.mu.Unlock()
	if s, ok := db.reads.m[q]; ok {
		return s, nil
	}
	s, err := db.read.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if db.reads.m == nil {
		db.reads.m = map[string]*sql.Stmt{}
	}
	db.reads.m[q] = s
	return s, nil
}

// queryRow runs a fixed single-row query on the read handle, prepared once.
func (db *DB) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	s, err := db.readStmt(ctx, q)
	if err != nil {
		return db.read.QueryRowContext(ctx, q, args...) // reports the error
	}
	return s.QueryRowContext(ctx, args...)
}

// query runs a fixed query on the read handle, prepared once.
func (db *DB) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	s, err := db.readStmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// closeStmts closes every prepared statement.
func (db *DB) closeStmts() error {
	var errs []error
	for _, s := range db.writeStmts {
		errs = append(errs, s.Close())
	}
	db.reads.mu.Lock()
	for _, s := range db.reads.m {
		errs = append(errs, s.Close())
	}
	db.reads.m = nil
	db.reads.mu.Unlock()
	return errors.Join(errs...)
}
