package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// The SQLite driver parses a statement each time one is prepared, and a
// query run on a database handle is prepared anew every time: under load the
// same few statements run thousands of times a second, and the parser was a
// quarter of the CPU. A Stmts prepares each statement once per handle.

// maxStmts bounds a cache: statements built with a varying number of
// parameters are not kept beyond it.
const maxStmts = 512

// Stmts caches the statements prepared on one database handle, by text.
type Stmts struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// NewStmts returns an empty cache of statements prepared on db.
func NewStmts(db *sql.DB) *Stmts { return &Stmts{db: db, m: map[string]*sql.Stmt{}} }

// Lookup returns query if it is prepared.
func (c *Stmts) Lookup(query string) (*sql.Stmt, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.m[query]
	return s, ok
}

// Get returns query prepared on the handle, preparing it the first time.
// It must not be called inside a transaction of a handle with a single
// connection (the write handle): preparing needs the connection. Use
// Lookup there, and Prepare once the transaction is over. When the cache is
// full, the statement returned is not kept: keep is false and the caller
// closes it.
func (c *Stmts) Get(ctx context.Context, query string) (s *sql.Stmt, keep bool, err error) {
	if s, ok := c.Lookup(query); ok {
		return s, true, nil
	}
	if s, err = c.db.PrepareContext(ctx, query); err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.m[query]; ok { // prepared meanwhile
		s.Close()
		return prev, true, nil
	}
	if len(c.m) >= maxStmts {
		return s, false, nil
	}
	c.m[query] = s
	return s, true, nil
}

// Prepare prepares the queries that are not prepared yet, while there is
// room.
func (c *Stmts) Prepare(ctx context.Context, queries []string) error {
	for _, q := range queries {
		s, keep, err := c.Get(ctx, q)
		if err != nil {
			return err
		}
		if !keep {
			return s.Close()
		}
	}
	return nil
}

// Close closes every statement.
func (c *Stmts) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, s := range c.m {
		errs = append(errs, s.Close())
	}
	c.m = map[string]*sql.Stmt{}
	return errors.Join(errs...)
}
