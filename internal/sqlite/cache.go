package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"reflect"
)

// maxCachedStmts bounds the statements each connection keeps prepared.
// muster runs a few dozen distinct statements; the bound only guards
// against a caller that builds statement text from values.
const maxCachedStmts = 256

// driverOf is modernc's registered SQLite driver.
func driverOf() (driver.Driver, error) {
	db, err := sql.Open("sqlite", "")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return db.Driver(), nil
}

// connector opens connections to dsn that keep each statement they run
// prepared, keyed by its text, for the next time: a statement run by text
// (db.ExecContext, tx.QueryContext, …) is parsed by SQLite once per
// connection, not each time. Callers change nothing; helpers that take a
// *sql.Tx get the cache too, which statements prepared on a *sql.DB cannot
// give them.
type connector struct {
	dsn string
	drv driver.Driver
	// cp, on the write handle, checkpoints in the background as its
	// transactions commit; sql.DB.Close stops it.
	cp *checkpointer
}

func (c connector) Connect(context.Context) (driver.Conn, error) {
	dc, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &cachingConn{inner: dc, stmts: map[string]*cachedStmt{}, cp: c.cp}, nil
}

func (c connector) Driver() driver.Driver { return c.drv }

// Close stops the checkpointer, if the handle has one.
func (c connector) Close() error {
	if c.cp == nil {
		return nil
	}
	return c.cp.Close()
}

// openCached is sql.Open of modernc's SQLite with the statement cache and,
// for a write handle, the background checkpointer (checkpoint is the DSN
// its own connection opens with).
func openCached(dsn, checkpoint string) (*sql.DB, error) {
	drv, err := driverOf()
	if err != nil {
		return nil, err
	}
	c := connector{dsn: dsn, drv: drv}
	if checkpoint != "" {
		c.cp = newCheckpointer(checkpoint, drv)
	}
	return sql.OpenDB(c), nil
}

// cachingConn is one connection with its statements. database/sql uses a
// connection from one goroutine at a time, so it needs no lock.
type cachingConn struct {
	inner driver.Conn
	stmts map[string]*cachedStmt
	cp    *checkpointer
}

// cachedStmt is a prepared statement and whether rows read from it are
// still open: a statement is one cursor, so a second query of the same
// text while the first's rows are open gets a statement of its own.
type cachedStmt struct {
	stmt driver.Stmt
	busy bool
}

// The interfaces database/sql looks for on a connection, all passed on to
// modernc's.
var (
	_ driver.ConnBeginTx                    = (*cachingConn)(nil)
	_ driver.ConnPrepareContext             = (*cachingConn)(nil)
	_ driver.ExecerContext                  = (*cachingConn)(nil)
	_ driver.QueryerContext                 = (*cachingConn)(nil)
	_ driver.Pinger                         = (*cachingConn)(nil)
	_ driver.SessionResetter                = (*cachingConn)(nil)
	_ driver.Validator                      = (*cachingConn)(nil)
	_ driver.RowsColumnTypeScanType         = (*cachedRows)(nil)
	_ driver.RowsColumnTypeDatabaseTypeName = (*cachedRows)(nil)
	_ driver.RowsColumnTypeLength           = (*cachedRows)(nil)
	_ driver.RowsColumnTypeNullable         = (*cachedRows)(nil)
	_ driver.RowsColumnTypePrecisionScale   = (*cachedRows)(nil)
)

// stmt returns the cached statement of query, preparing it the first time.
func (c *cachingConn) stmt(ctx context.Context, query string) (*cachedStmt, error) {
	if s, ok := c.stmts[query]; ok {
		return s, nil
	}
	ds, err := c.inner.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if len(c.stmts) >= maxCachedStmts {
		c.closeStmts()
	}
	s := &cachedStmt{stmt: ds}
	c.stmts[query] = s
	return s, nil
}

// drop forgets query's statement after it failed, so that the next run
// prepares it afresh.
func (c *cachingConn) drop(query string, s *cachedStmt) {
	if c.stmts[query] == s {
		delete(c.stmts, query)
		s.stmt.Close()
	}
}

func (c *cachingConn) closeStmts() error {
	var errs []error
	for q, s := range c.stmts {
		if !s.busy {
			errs = append(errs, s.stmt.Close())
		}
		delete(c.stmts, q)
	}
	return errors.Join(errs...)
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	s, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if s.busy {
		return c.inner.(driver.ExecerContext).ExecContext(ctx, query, args)
	}
	res, err := s.stmt.(driver.StmtExecContext).ExecContext(ctx, args)
	if err != nil {
		c.drop(query, s)
	}
	return res, err
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	s, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if s.busy {
		return c.inner.(driver.QueryerContext).QueryContext(ctx, query, args)
	}
	rows, err := s.stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		c.drop(query, s)
		return nil, err
	}
	s.busy = true
	return &cachedRows{Rows: rows, conn: c, query: query, s: s}, nil
}

func (c *cachingConn) Prepare(query string) (driver.Stmt, error) { return c.inner.Prepare(query) }

func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.inner.(driver.ConnPrepareContext).PrepareContext(ctx, query)
}

func (c *cachingConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	tx, err := c.inner.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil || c.cp == nil {
		return tx, err
	}
	return countingTx{Tx: tx, cp: c.cp}, nil
}

func (c *cachingConn) Close() error {
	return errors.Join(c.closeStmts(), c.inner.Close())
}

func (c *cachingConn) Ping(ctx context.Context) error { return c.inner.(driver.Pinger).Ping(ctx) }

func (c *cachingConn) ResetSession(ctx context.Context) error {
	return c.inner.(driver.SessionResetter).ResetSession(ctx)
}

func (c *cachingConn) IsValid() bool { return c.inner.(driver.Validator).IsValid() }

// cachedRows are rows of a cached statement, which is free again once they
// are closed.
type cachedRows struct {
	driver.Rows
	conn  *cachingConn
	query string
	s     *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.s.busy = false
	if err != nil {
		r.conn.drop(r.query, r.s)
	} else if r.conn.stmts[r.query] != r.s {
		// Dropped from the cache while the rows were open.
		r.s.stmt.Close()
	}
	return err
}

// The column types of modernc's rows, for sql.Rows.ColumnTypes.

func (r *cachedRows) ColumnTypeScanType(i int) reflect.Type {
	return r.Rows.(driver.RowsColumnTypeScanType).ColumnTypeScanType(i)
}

func (r *cachedRows) ColumnTypeDatabaseTypeName(i int) string {
	return r.Rows.(driver.RowsColumnTypeDatabaseTypeName).ColumnTypeDatabaseTypeName(i)
}

func (r *cachedRows) ColumnTypeLength(i int) (int64, bool) {
	return r.Rows.(driver.RowsColumnTypeLength).ColumnTypeLength(i)
}

func (r *cachedRows) ColumnTypeNullable(i int) (bool, bool) {
	return r.Rows.(driver.RowsColumnTypeNullable).ColumnTypeNullable(i)
}

func (r *cachedRows) ColumnTypePrecisionScale(i int) (int64, int64, bool) {
	return r.Rows.(driver.RowsColumnTypePrecisionScale).ColumnTypePrecisionScale(i)
}
