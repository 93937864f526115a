package sqlitestore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog/sqlitestore"
)

// The catalog holds hashes of secrets: the file, its write-ahead log and
// its shared memory are readable by their owner only, whatever the umask,
// as the master's keys are.
func TestCatalogFilesArePrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "catalog.db")
	s, err := sqlitestore.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	files := []string{path, path + "-wal", path + "-shm"}
	for _, p := range files {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v (the migrations have written to the catalog, so its WAL is there)", filepath.Base(p), err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s: mode %#o, want 0600", filepath.Base(p), mode)
		}
	}
	// An existing catalog made readable to others is made private again
	// when it is opened.
	s.Close()
	for _, p := range files {
		if err := os.Chmod(p, 0o644); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	s, err = sqlitestore.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checked := 0
	for _, p := range files {
		fi, err := os.Stat(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		checked++
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s reopened: mode %#o, want 0600", filepath.Base(p), mode)
		}
	}
	if checked == 0 {
		t.Error("no catalog file was there to check after reopening")
	}
}

// A catalog is used by one master at a time, wherever it is kept: a second
// Store of it is refused, naming the catalog and the process that has it,
// until the first is closed.
func TestCatalogIsLockedWhileOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "elsewhere.db")
	first, err := sqlitestore.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = sqlitestore.Open(context.Background(), path)
	if muster.ErrorCode(err) != muster.ECONFLICT {
		t.Fatalf("a second Open while the first is open: %v, want ECONFLICT", err)
	}
	if want := fmt.Sprintf("catalog %s is in use by process %d", path, os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("refusal %q does not say %q", err, want)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := sqlitestore.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open after the first was closed: %v", err)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
}
