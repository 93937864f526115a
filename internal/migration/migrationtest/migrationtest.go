// Package migrationtest helps tests of upgrades make a store as an older
// release left it.
package migrationtest

import (
	"context"
	"database/sql"
	"io/fs"
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
