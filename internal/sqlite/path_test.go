package sqlite

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A database is kept in the file its path names, whatever characters the
// path holds: SQLite reads its name as a URI, where '?' starts the
// parameters, '#' a fragment and '%' an escape, so a data directory named
// "muster#2" would otherwise put the database in a file "muster", made with
// SQLite's default mode rather than the owner's alone, and leave the file
// named empty.
func TestDatabaseIsKeptAtAPathWithURICharacters(t *testing.T) {
	names := []string{"a#1", "a?mode=ro", "a%41", "a b", "a&b=c", "?", "#"}
	for i, name := range names {
		t.Run(fmt.Sprint(i), func(t *testing.T) { // the name of a test is a directory's
			dir := t.TempDir()
			sub := filepath.Join(dir, name)
			if err := os.Mkdir(sub, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(sub, "test.db")
			write, read, err := Open(path, "FULL", 1)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := write.Exec(`CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('kept')`); err != nil {
				t.Fatal(err)
			}
			var x string
			if err := read.QueryRow(`SELECT x FROM t`).Scan(&x); err != nil {
				t.Fatalf("read back: %v", err)
			}
			write.Close()
			read.Close()
			if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
				t.Errorf("%s: %v, want the database there", path, err)
			}
			if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v, want -rw-------", path, fi.Mode().Perm())
			}
			for _, d := range []string{dir, sub} {
				entries, err := os.ReadDir(d)
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				want := []string{name}
				if d == sub {
					want = []string{"test.db"} // its log goes with the last connection
				}
				slices.Sort(names)
				if !slices.Equal(names, want) {
					t.Errorf("%s holds %q, want %q", d, names, want)
				}
			}
		})
	}
}
