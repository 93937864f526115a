package sqlite

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A database's files are its owner's alone, whatever the umask: a new
// one's, and those of one an earlier version made readable by all.
func TestDatabaseFilesAreTheOwnersAlone(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	fresh, made := filepath.Join(dir, "fresh.db"), filepath.Join(dir, "made.db")
	if err := os.WriteFile(made, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{fresh, made} {
		write, read, err := Open(path, "FULL", 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := write.Exec(`CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('secret')`); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if mode := fi.Mode().Perm(); mode != 0o600 {
				t.Errorf("%s: mode %v, want -rw-------", filepath.Base(f), mode)
			}
		}
		write.Close()
		read.Close()
	}
}
