package catalog

import "context"

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// selectQuery is a SELECT whose filters are added as they are set.
type selectQuery struct {
	sql  string
	args []any
}

// eq adds "AND col = v" unless v is "".
func (q *selectQuery) eq(col, v string) {
	if v != "" {
		q.sql += ` AND ` + col + ` = ?`
		q.args = append(q.args, v)
	}
}

// newest orders the query by col, newest first, and keeps at most limit
// rows (100 when limit is 0).
func (q *selectQuery) newest(col string, limit int) {
	if limit <= 0 {
		limit = 100
	}
	q.sql += ` ORDER BY ` + col + ` DESC LIMIT ?`
	q.args = append(q.args, limit)
}

// queryAll runs q on the read pool and scans every row with scan.
func queryAll[T any](ctx context.Context, db *DB, q selectQuery, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := db.read.QueryContext(ctx, q.sql, q.args...)
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
