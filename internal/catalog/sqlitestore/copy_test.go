package sqlitestore_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/musterhq/muster/internal/catalog/catalogtest"
	"github.com/musterhq/muster/internal/catalog/pgstore"
	"github.com/musterhq/muster/internal/catalog/sqlitestore"
)

// muster store migrate copies every column of every table: a catalog with
// a row in each table, every column of it set, reads back the same from
// PostgreSQL, and the two schemas have the same tables with the same
// columns. The tables and columns are read from the schemas, so a
// migration that adds one to either engine and not to the other, or a
// table left out of Tables, fails here rather than being lost by a move.
func TestCopyKeepsEveryColumn(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "catalog.db")
	s, err := sqlitestore.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	sqliteCols := map[string][]string{} // by table, in the table's order
	var blobs []string                  // table.column of BLOB columns
	rows, err := db.QueryContext(ctx, `SELECT m.name, p.name, p.type FROM sqlite_schema m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> 'schema_migrations' ORDER BY m.name, p.cid`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var table, col, typ string
		if err := rows.Scan(&table, &col, &typ); err != nil {
			t.Fatal(err)
		}
		sqliteCols[table] = append(sqliteCols[table], col)
		if typ == "BLOB" {
			blobs = append(blobs, table+"."+col)
		}
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	for table := range sqliteCols {
		if !slices.Contains(sqlitestore.Tables, table) {
			t.Errorf("table %s is not in Tables: muster store migrate would not copy it", table)
		}
	}

	// One row in each table, every column set: integers to 1 (every id,
	// and so every reference to one, and every flag, which PostgreSQL
	// holds as a boolean), text to a value naming its column, blobs to
	// bytes naming it. The rows the schema starts with go first.
	for _, table := range slices.Backward(sqlitestore.Tables) {
		if _, err := db.ExecContext(ctx, `DELETE FROM "`+table+`"`); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]any{}
	for _, table := range sqlitestore.Tables {
		cols := sqliteCols[table]
		row := make([]any, len(cols))
		for i, col := range cols {
			var typ string
			if err := db.QueryRowContext(ctx, `SELECT type FROM pragma_table_info(?) WHERE name = ?`, table, col).Scan(&typ); err != nil {
				t.Fatal(err)
			}
			switch typ {
			case "INTEGER":
				row[i] = int64(1)
			case "BLOB":
				row[i] = []byte(table + "." + col + "\x00\xff")
			default:
				row[i] = table + "." + col
			}
		}
		want[table] = row
		q := fmt.Sprintf(`INSERT INTO "%s" ("%s") VALUES (%s)`, table, strings.Join(cols, `", "`), strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", "))
		if _, err := db.ExecContext(ctx, q, row...); err != nil {
			t.Fatalf("fill %s: %v", table, err)
		}
	}
	db.Close()

	src, err := sqlitestore.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	url := catalogtest.PostgresURL(t)
	dst, err := pgstore.Open(ctx, url, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	counts, err := dst.Import(ctx, src, sqlitestore.Tables, nil)
	if err != nil {
		t.Fatalf("copy: %v", err)
	}

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pgCols := map[string][]string{}
	pgRows, err := conn.Query(ctx, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name <> 'schema_migrations' ORDER BY table_name, ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	for pgRows.Next() {
		var table, col string
		if err := pgRows.Scan(&table, &col); err != nil {
			t.Fatal(err)
		}
		pgCols[table] = append(pgCols[table], col)
	}
	if err := pgRows.Err(); err != nil {
		t.Fatal(err)
	}
	for table, cols := range pgCols {
		if _, ok := sqliteCols[table]; !ok {
			t.Errorf("table %s is in the PostgreSQL catalog only: a move from SQLite leaves it empty", table)
			continue
		}
		for _, col := range cols {
			if !slices.Contains(sqliteCols[table], col) {
				t.Errorf("%s.%s is in the PostgreSQL catalog only: a move from SQLite leaves it at its default", table, col)
			}
		}
	}

	for _, table := range sqlitestore.Tables {
		cols := sqliteCols[table]
		if counts[table] != 1 {
			t.Errorf("table %s: %d rows copied, want 1", table, counts[table])
			continue
		}
		got, err := readRow(ctx, conn, fmt.Sprintf(`SELECT "%s" FROM "%s"`, strings.Join(cols, `", "`), table))
		if err != nil {
			t.Errorf("read %s back: %v", table, err)
			continue
		}
		for i, col := range cols {
			if !sameValue(got[i], want[table][i], slices.Contains(blobs, table+"."+col)) {
				t.Errorf("%s.%s: %#v after the copy, want %#v", table, col, got[i], want[table][i])
			}
		}
	}
}

// sameValue reports whether v, read from PostgreSQL, is what SQLite held
// as w: an integer as a number or, for a flag, as true; text as text;
// bytes as bytes.
func sameValue(v, w any, blob bool) bool {
	switch w := w.(type) {
	case int64:
		switch v := v.(type) {
		case int64:
			return v == w
		case int32:
			return int64(v) == w
		case bool:
			return v == (w != 0)
		}
	case string:
		s, ok := v.(string)
		return ok && s == w
	case []byte:
		b, ok := v.([]byte)
		return ok && blob && bytes.Equal(b, w)
	}
	return false
}

// readRow returns the values of the one row query reads.
func readRow(ctx context.Context, conn *pgx.Conn, query string) ([]any, error) {
	rows, err := conn.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, fmt.Errorf("no row: %w", rows.Err())
	}
	return rows.Values()
}
