package pgstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/musterhq/muster"
)

// Source is a catalog to copy from: its tables, in an order that copies
// every row after the rows it refers to, each read row by row.
type Source interface {
	Dump(ctx context.Context, table string, fn func(cols []string, row []any) error) error
}

// Import copies a whole catalog into this one, which must be empty, in one
// transaction: every table's rows with their ids, then the identity
// counters past them. meta adds (or replaces) values of the meta table, such
// as the CA. It returns how many rows each table received.
func (s *Store) Import(ctx context.Context, src Source, tables []string, meta map[string]string) (map[string]int64, error) {
	counts := map[string]int64{}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Empty but for what its schema starts with: a catalog a master
		// started on holds that master's admin key, audit log and row,
		// whose ids the copy's would clash with.
		for _, t := range tables {
			if t == "meta" || t == "operators" {
				continue
			}
			var n int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM `+t).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return muster.Errorf(muster.EPRECONDITION, "--to: the catalog there is not empty (%d rows in %s); migrate into a new database or schema", n, t)
			}
		}
		// The rows a new catalog starts with come from the source.
		for _, t := range []string{"operators", "meta"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+t); err != nil {
				return err
			}
		}
		for _, table := range tables {
			types, err := columnTypes(ctx, tx, table)
			if err != nil {
				return err
			}
			// The rows go in batches of bounded size, each copied as the
			// source is read: a table (the runs' output, say) may hold
			// more than the memory of the machine doing the copy.
			var cols []string
			var rows [][]any
			var size int
			flush := func() error {
				if len(rows) == 0 {
					return nil
				}
				for _, c := range cols {
					if _, ok := types[c]; !ok {
						return fmt.Errorf("%s.%s: the column is not in the PostgreSQL catalog; upgrade this muster", table, c)
					}
				}
				n, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(rows))
				if err != nil {
					return fmt.Errorf("copy %s: %w", table, err)
				}
				counts[table] += n
				rows, size = rows[:0], 0
				return nil
			}
			err = src.Dump(ctx, table, func(c []string, row []any) error {
				cols = c
				for i, v := range row {
					var cerr error
					if row[i], cerr = convert(v, types[c[i]]); cerr != nil {
						return fmt.Errorf("%s.%s: %w", table, c[i], cerr)
					}
					switch x := row[i].(type) {
					case string:
						size += len(x)
					case []byte:
						size += len(x)
					}
				}
				rows = append(rows, row)
				if size += 8 * len(row); len(rows) >= importBatchRows || size >= importBatchBytes {
					return flush()
				}
				return nil
			})
			if err == nil {
				err = flush()
			}
			if err != nil {
				return err
			}
			if types["id"] == "bigint" {
				if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence($1, 'id'), GREATEST(COALESCE(MAX(id), 0), 1), MAX(id) IS NOT NULL) FROM `+table, table); err != nil {
					return err
				}
			}
		}
		for k, v := range meta {
			if _, err := tx.Exec(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, k, v); err != nil {
				return err
			}
		}
		return nil
	})
	return counts, classify(err)
}

// An import copies a table's rows in batches of at most importBatchRows
// rows or about importBatchBytes.
var (
	importBatchRows  = 10000
	importBatchBytes = 32 << 20
)

// columnTypes returns the data type of each column of a table.
func columnTypes(ctx context.Context, tx pgx.Tx, table string) (map[string]string, error) {
	rows, err := tx.Query(ctx, `SELECT column_name, data_type FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	types := map[string]string{}
	for rows.Next() {
		var c, t string
		if err := rows.Scan(&c, &t); err != nil {
			return nil, err
		}
		types[c] = t
	}
	if len(types) == 0 {
		return nil, fmt.Errorf("table %s: not in the PostgreSQL catalog", table)
	}
	return types, rows.Err()
}

// convert turns a value as SQLite holds it into one for a PostgreSQL column:
// SQLite keeps booleans as 0 and 1, may hand text back as bytes, and keeps
// in text what PostgreSQL's cannot hold.
func convert(v any, pgType string) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []byte:
		if pgType == "bytea" {
			return x, nil
		}
		v = string(x)
	case string:
		if pgType == "bytea" {
			return []byte(x), nil
		}
	}
	switch pgType {
	case "boolean":
		switch x := v.(type) {
		case int64:
			return x != 0, nil
		case bool:
			return x, nil
		}
		return nil, fmt.Errorf("%v is not a boolean", v)
	case "bigint", "integer":
		if _, ok := v.(int64); !ok {
			return nil, fmt.Errorf("%v is not an integer", v)
		}
	case "text":
		// PostgreSQL's text holds neither invalid UTF-8 nor NUL, which
		// SQLite's does.
		if s, ok := v.(string); ok {
			return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD"), nil
		}
		return fmt.Sprint(v), nil
	}
	return v, nil
}
