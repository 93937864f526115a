// Package migrationtest helps tests of upgrades make a store as an older
// release left it.
package migrationtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/musterhq/muster/internal/migration"
	"github.com/musterhq/muster/internal/sqlite"
)

// Before returns the migrations in dir of fsys numbered below version, in
// a file system of their own: what a store of an older release was made
// with (for tests of upgrades).
func Before(fsys fs.FS, dir string, version int) (fs.FS, error) {
	files, err := migration.List(fsys, dir)
	if err != nil {
		return nil, err
	}
	before := fstest.MapFS{}
	for _, f := range files {
		if f.Version >= version {
			continue
		}
		body, err := fs.ReadFile(fsys, f.Path)
		if err != nil {
			return nil, err
		}
		before[f.Path] = &fstest.MapFile{Data: body}
	}
	return before, nil
}

// OpenBefore opens the SQLite file (with the synchronous setting given),
// migrated by the migrations in dir of fsys numbered below version: the
// store, or catalog, an older release left.
func OpenBefore(t testing.TB, file, synchronous string, fsys fs.FS, dir string, version int) (write, read *sql.DB) {
	t.Helper()
	before, err := Before(fsys, dir, version)
	if err != nil {
		t.Fatal(err)
	}
	write, read, err = sqlite.Open(file, synchronous, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { write.Close(); read.Close() })
	if err := sqlite.Migrate(context.Background(), write, before, dir); err != nil {
		t.Fatal(err)
	}
	return write, read
}

// Stepwise applies the migrations in dir of fsys to a new SQLite file, one
// at a time, and before each one gives every table that has no rows one
// (FillEmpty): every migration then runs on a store with something in
// each of its tables, as an upgraded store has, not on an empty one. A
// migration that fails on it, leaves a table it had rows in with fewer,
// or rebuilds a table and changes a value of a column it keeps, fails t,
// naming the migration.
func Stepwise(t testing.TB, file, synchronous string, fsys fs.FS, dir string) {
	t.Helper()
	ctx := context.Background()
	files, err := migration.List(fsys, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 { // a directory mistyped holds none, and List says nothing
		t.Fatalf("no migrations in %s", dir)
	}
	write, read, err := sqlite.Open(file, synchronous, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer read.Close()
	defer write.Close()
	for _, f := range files {
		if err := FillEmpty(ctx, write); err != nil {
			t.Fatalf("before migration %s: %v", f.Name, err)
		}
		before, err := Counts(ctx, write)
		if err != nil {
			t.Fatal(err)
		}
		kept, err := columnValues(ctx, write)
		if err != nil {
			t.Fatal(err)
		}
		upTo, err := Before(fsys, dir, f.Version+1)
		if err != nil {
			t.Fatal(err)
		}
		if err := sqlite.Migrate(ctx, write, upTo, dir); err != nil {
			t.Fatalf("migration %s on a store with a row in each table: %v", f.Name, err)
		}
		after, err := Counts(ctx, write)
		if err != nil {
			t.Fatal(err)
		}
		for table, n := range before {
			if m, ok := after[table]; ok && m < n {
				t.Errorf("migration %s: table %s has %d rows, %d before it", f.Name, table, m, n)
			}
		}
		// A migration that rebuilds a table (SQLite's way to change a
		// column or a constraint) copies its rows: every value of a column
		// it keeps is as it was. (Others may change values on purpose.)
		text, err := fs.ReadFile(fsys, path.Join(dir, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		if upper := strings.ToUpper(string(text)); !strings.Contains(upper, "DROP TABLE") && !strings.Contains(upper, "RENAME") {
			continue
		}
		now, err := columnValues(ctx, write)
		if err != nil {
			t.Fatal(err)
		}
		for col, was := range kept {
			if is, ok := now[col]; ok && before[strings.SplitN(col, ".", 2)[0]] == after[strings.SplitN(col, ".", 2)[0]] && !slices.Equal(is, was) {
				t.Errorf("migration %s: %s holds %q, %q before it", f.Name, col, is, was)
			}
		}
	}
	if err := FillEmpty(ctx, write); err != nil {
		t.Fatalf("after the last migration: %v", err)
	}
}

// FillEmpty inserts a row in each table of the SQLite database db that has
// none (but schema_migrations): every integer column 1 (an id, a reference
// to one, a flag), every other column '{}' (text that is also a JSON
// object, for migrations that read JSON out of a column). Tables are
// filled in whatever order lets each row's references find theirs.
func FillEmpty(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, `SELECT m.name, p.name, p.type FROM sqlite_schema m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> 'schema_migrations' ORDER BY m.name, p.cid`)
	if err != nil {
		return err
	}
	cols := map[string][]string{}
	var values = map[string][]any{}
	var tables []string
	for rows.Next() {
		var table, col, typ string
		if err := rows.Scan(&table, &col, &typ); err != nil {
			rows.Close()
			return err
		}
		if _, ok := cols[table]; !ok {
			tables = append(tables, table)
		}
		cols[table] = append(cols[table], `"`+col+`"`)
		if strings.Contains(strings.ToUpper(typ), "INT") {
			values[table] = append(values[table], int64(1))
		} else {
			values[table] = append(values[table], "{}")
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	var empty []string
	for _, table := range tables {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM "`+table+`"`).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			empty = append(empty, table)
		}
	}
	// A table whose row refers to one not made yet goes again after the
	// others, for as long as a round fills one.
	for len(empty) > 0 {
		var left []string
		var errs []error
		for _, table := range empty {
			q := fmt.Sprintf(`INSERT INTO "%s" (%s) VALUES (%s)`, table, strings.Join(cols[table], ", "),
				strings.TrimSuffix(strings.Repeat("?, ", len(cols[table])), ", "))
			if _, err := db.ExecContext(ctx, q, values[table]...); err != nil {
				left = append(left, table)
				errs = append(errs, fmt.Errorf("fill %s: %w", table, err))
			}
		}
		if len(left) == len(empty) {
			return errors.Join(errs...)
		}
		empty = left
	}
	return nil
}

// Counts returns the number of rows of each table of the SQLite database
// db (but schema_migrations).
func Counts(ctx context.Context, db *sql.DB) (map[string]int, error) {
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'`)
	if err != nil {
		return nil, err
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return nil, err
		}
		tables = append(tables, name)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, table := range tables {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM "`+table+`"`).Scan(&n); err != nil {
			return nil, err
		}
		counts[table] = n
	}
	return counts, nil
}

// columnValues returns the values of each column of each table of the
// SQLite database db (but schema_migrations), by table.column, written as
// text and sorted: a migration that rebuilds a table must keep them.
func columnValues(ctx context.Context, db *sql.DB) (map[string][]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT m.name, p.name FROM sqlite_schema m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> 'schema_migrations'`)
	if err != nil {
		return nil, err
	}
	var cols [][2]string
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			rows.Close()
			return nil, err
		}
		cols = append(cols, [2]string{table, col})
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	values := map[string][]string{}
	for _, c := range cols {
		rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT quote("%s") FROM "%s"`, c[1], c[0]))
		if err != nil {
			return nil, err
		}
		var vs []string
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return nil, err
			}
			vs = append(vs, v)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, err
		}
		slices.Sort(vs)
		values[c[0]+"."+c[1]] = vs
	}
	return values, nil
}
