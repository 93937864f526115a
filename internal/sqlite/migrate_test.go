package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// A migration that fails partway leaves the store as the migration before
// it left it, its rows and schema untouched by the statements that ran
// before the one that failed, and the error names the migration: a master
// or target stopped by it starts again on the same store once fixed.
func TestFailedMigrationLeavesThePreviousSchema(t *testing.T) {
	ctx := context.Background()
	write, read, err := Open(filepath.Join(t.TempDir(), "store.db"), "NORMAL", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer read.Close()
	defer write.Close()
	fsys := fstest.MapFS{
		"m/0001_a.sql": {Data: []byte(`CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);`)},
		"m/0002_b.sql": {Data: []byte(`CREATE TABLE b (y INTEGER); UPDATE a SET x = 2; ALTER TABLE a ADD COLUMN z TEXT; INSERT INTO missing VALUES (3);`)},
	}
	err = Migrate(ctx, write, fsys, "m")
	if err == nil || !strings.HasPrefix(err.Error(), "migration 0002_b.sql: ") {
		t.Fatalf("a failing migration: %v, want an error naming migration 0002_b.sql", err)
	}
	var version, tables, x, cols int
	if err := write.QueryRowContext(ctx, `SELECT
		(SELECT MAX(version) FROM schema_migrations),
		(SELECT COUNT(*) FROM sqlite_schema WHERE name = 'b'),
		(SELECT x FROM a),
		(SELECT COUNT(*) FROM pragma_table_info('a'))`).Scan(&version, &tables, &x, &cols); err != nil {
		t.Fatal(err)
	}
	if version != 1 || tables != 0 || x != 1 || cols != 1 {
		t.Errorf("after the failed migration: schema %d, table b made %d times, a.x = %d, a has %d columns; want schema 1, no table b, a.x = 1, 1 column", version, tables, x, cols)
	}
}
