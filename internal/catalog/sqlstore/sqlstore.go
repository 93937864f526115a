// Package sqlstore is the catalog's store in the SQL that SQLite and
// PostgreSQL both speak: the statements written once for both engines.
// internal/catalog/sqlitestore and internal/catalog/pgstore run it on their
// engine, each through a Querier, and override the few operations where the
// engines differ (batching, row locks, notification).
//
// Statements use $1-style parameters, which both engines take; times are
// Unix milliseconds in BIGINT columns; booleans are compared with TRUE and
// FALSE, which SQLite stores as 1 and 0.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/musterhq/muster/internal/catalog"
)

// Querier runs statements on one connection or transaction of an engine.
// Errors it returns have been through the engine's Classify.
type Querier interface {
	Exec(ctx context.Context, query string, args ...any) (rowsAffected int64, err error)
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// Holder is a Querier that can hold a statement whose result nothing
// waits for, to send it with the next statement (PostgreSQL's pipeline):
// one round trip for both. The held statement's error, if any, comes back
// from a later call of the transaction, which then fails as a whole.
type Holder interface {
	Hold(ctx context.Context, query string, args ...any) error
}

// execHeld runs a write whose result nothing waits for: held when the
// Querier is a Holder, else at once.
func (s *Queries) execHeld(ctx context.Context, query string, args ...any) error {
	if h, ok := s.Q.(Holder); ok {
		return h.Hold(ctx, query, args...)
	}
	_, err := s.Q.Exec(ctx, query, args...)
	return err
}

// Rows is the result of a query.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Row is the result of a single-row query; Scan returns an error wrapping
// sql.ErrNoRows when there is none.
type Row interface {
	Scan(dest ...any) error
}

// Dialect says how the engine differs in the shared statements.
type Dialect struct {
	// ArrayParams: a list is passed as one array parameter (col = ANY($n))
	// rather than one parameter per element (col IN ($n, $n+1, …)).
	ArrayParams bool
}

// Queries runs the shared statements on a Querier. It implements
// catalog.Tx (and so catalog.Reads); an engine embeds it and overrides what
// it does differently.
type Queries struct {
	Q Querier
	D Dialect
}

// New returns the shared statements on q.
func New(q Querier, d Dialect) *Queries { return &Queries{Q: q, D: d} }

// args collects the parameters of a statement being built, numbering their
// placeholders.
type args struct {
	d    Dialect
	vals []any
}

// add appends v and returns its placeholder.
func (a *args) add(v any) string {
	a.vals = append(a.vals, v)
	return fmt.Sprintf("$%d", len(a.vals))
}

// inJSON is in for a list of any length: where the engine takes no array
// parameter (SQLite), the list is one JSON parameter,
// "col IN (SELECT value FROM json_each($n))". The statement's text is the
// same for every length, so it stays prepared, and it binds in constant
// time, where a placeholder each costs the driver, at every bind, a
// search of the names of all those before it.
func inJSON[T any](a *args, col string, vals []T) (string, error) {
	if a.d.ArrayParams {
		return in(a, col, vals), nil
	}
	b, err := json.Marshal(vals)
	if err != nil {
		return "", err
	}
	return col + " IN (SELECT value FROM json_each(" + a.add(string(b)) + "))", nil
}

// in returns "col IN (…)" (or "col = ANY($n)") for the values.
func in[T any](a *args, col string, vals []T) string {
	if len(vals) == 0 {
		return "FALSE"
	}
	if a.d.ArrayParams {
		return col + " = ANY(" + a.add(vals) + ")"
	}
	ph := make([]string, len(vals))
	for i, v := range vals {
		ph[i] = a.add(v)
	}
	return col + " IN (" + strings.Join(ph, ", ") + ")"
}

// ms converts a time to Unix milliseconds.
func ms(t time.Time) int64 { return t.UnixMilli() }

// nullMS converts an optional time to a nullable column.
func nullMS(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

// fromMS converts Unix milliseconds to a UTC time.
func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// fromNullMS converts a nullable column to an optional time.
func fromNullMS(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMS(v.Int64)
	return &t
}

// noRows reports whether err says a single-row query found none.
func noRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// collect runs a query and scans every row with scan.
func collect[T any](ctx context.Context, q Querier, scan func(Rows) (T, error), query string, params ...any) ([]T, error) {
	rows, err := q.Query(ctx, query, params...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// nameIDs runs a query of (name, id) rows into a map.
func nameIDs(ctx context.Context, q Querier, query string, params ...any) (map[string]int64, error) {
	rows, err := q.Query(ctx, query, params...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var n string
		var id int64
		if err := rows.Scan(&n, &id); err != nil {
			return nil, err
		}
		out[n] = id
	}
	return out, rows.Err()
}

// strings runs a query of one text column.
func texts(ctx context.Context, q Querier, query string, params ...any) ([]string, error) {
	return collect(ctx, q, func(r Rows) (s string, err error) { return s, r.Scan(&s) }, query, params...)
}

// split turns a comma-separated aggregate into a list ([] when NULL).
func split(s sql.NullString) []string {
	if !s.Valid || s.String == "" {
		return []string{}
	}
	return strings.Split(s.String, ",")
}

var _ catalog.Tx = (*Queries)(nil)
