package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pipeline is a write transaction on one connection that saves round
// trips: its BEGIN, and the statements whose results nothing waits for
// (held, see sqlstore.Holder), are sent with the next statement whose
// result is awaited, or with the COMMIT, as one batch. PostgreSQL runs
// them in order, so a later statement sees what a held one wrote; a held
// statement that fails aborts the transaction, and its error is returned
// by the call that sent it, failing the transaction as any error does.
type pipeline struct {
	conn  *pgxpool.Conn
	held  []heldStatement
	begun bool // BEGIN has been sent
}

type heldStatement struct {
	sql  string
	args []any
}

// begin starts a transaction at READ COMMITTED on conn, to be sent with
// the first statement.
func begin(conn *pgxpool.Conn) *pipeline {
	p := &pipeline{conn: conn}
	p.hold(`BEGIN ISOLATION LEVEL READ COMMITTED`)
	return p
}

// hold keeps a statement to be sent with the next one.
func (p *pipeline) hold(sql string, args ...any) {
	p.held = append(p.held, heldStatement{sql, args})
}

// send sends the held statements followed by those of b as one batch,
// and returns b's results once the held statements' have been read.
func (p *pipeline) send(ctx context.Context, b *pgx.Batch) (pgx.BatchResults, error) {
	all := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(p.held)+b.Len())}
	for _, h := range p.held {
		all.Queue(h.sql, h.args...)
	}
	n := len(p.held)
	p.held, p.begun = nil, true
	all.QueuedQueries = append(all.QueuedQueries, b.QueuedQueries...)
	res := p.conn.SendBatch(ctx, all)
	for range n {
		if _, err := res.Exec(); err != nil {
			res.Close()
			return nil, err
		}
	}
	return res, nil
}

// flush sends the held statements, if any.
func (p *pipeline) flush(ctx context.Context) error {
	if len(p.held) == 0 {
		return nil
	}
	res, err := p.send(ctx, &pgx.Batch{})
	if err != nil {
		return err
	}
	return res.Close()
}

// Exec runs a statement, sending the held ones first.
func (p *pipeline) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if len(p.held) == 0 {
		return p.conn.Exec(ctx, sql, args...)
	}
	b := &pgx.Batch{}
	b.Queue(sql, args...)
	res, err := p.send(ctx, b)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := res.Exec()
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

// Query runs a query, sending the held statements first.
func (p *pipeline) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if len(p.held) == 0 {
		return p.conn.Query(ctx, sql, args...)
	}
	b := &pgx.Batch{}
	b.Queue(sql, args...)
	res, err := p.send(ctx, b)
	if err != nil {
		return nil, err
	}
	rows, err := res.Query()
	if err != nil {
		res.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, res: res}, nil
}

// QueryRow runs a query of one row, sending the held statements first.
func (p *pipeline) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if len(p.held) == 0 {
		return p.conn.QueryRow(ctx, sql, args...)
	}
	rows, err := p.Query(ctx, sql, args...)
	return firstRow{rows, err}
}

// CopyFrom sends the held statements, then copies rows.
func (p *pipeline) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, rows pgx.CopyFromSource) (int64, error) {
	if err := p.flush(ctx); err != nil {
		return 0, err
	}
	return p.conn.CopyFrom(ctx, table, columns, rows)
}

// commit sends the held statements and COMMIT together. A transaction
// that ran no statement has nothing to commit.
func (p *pipeline) commit(ctx context.Context) error {
	if p.empty() {
		return nil
	}
	tag, err := p.Exec(ctx, `COMMIT`)
	if err != nil {
		return err
	}
	if tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// rollback sends what a dry run held, so that its errors are seen, then
// rolls back.
func (p *pipeline) rollback(ctx context.Context) error {
	if p.empty() {
		return nil
	}
	if err := p.flush(ctx); err != nil {
		return err
	}
	_, err := p.conn.Exec(ctx, `ROLLBACK`)
	return err
}

// empty reports whether the transaction ran no statement: nothing was
// sent, and only its BEGIN is held.
func (p *pipeline) empty() bool { return !p.begun && len(p.held) == 1 }

// release ends whatever the transaction left open and gives the
// connection back to the pool (which drops it if it is not idle).
func (p *pipeline) release(ctx context.Context) {
	p.held = nil
	if pc := p.conn.Conn().PgConn(); !pc.IsClosed() && !pc.IsBusy() && pc.TxStatus() != 'I' {
		ctx, cancel := context.WithTimeout(ctx, rollbackTimeout)
		if _, err := p.conn.Exec(ctx, `ROLLBACK`); err != nil {
			pc.Close(ctx) // at once if the wait is over; the pool drops it
		}
		cancel()
	}
	p.conn.Release()
}

// rollbackTimeout bounds the ROLLBACK of a transaction that did not
// commit: a connection that stops answering is closed after it, not held
// from the pool until the kernel gives up on it (a quarter of an hour).
var rollbackTimeout = 5 * time.Second

// batchRows are the rows of a query sent in a batch: done with them, the
// batch is closed.
type batchRows struct {
	pgx.Rows
	res pgx.BatchResults
	err error
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.closeBatch()
	return false
}

func (r *batchRows) Close() {
	r.Rows.Close()
	r.closeBatch()
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

func (r *batchRows) closeBatch() {
	if r.res != nil {
		r.err, r.res = r.res.Close(), nil
	}
}

// firstRow is pgx.Row over rows: the first row, or pgx.ErrNoRows.
type firstRow struct {
	rows pgx.Rows
	err  error
}

func (r firstRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}
