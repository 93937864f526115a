package migrationtest

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
)

// failures is a testing.TB that records how a helper failed.
type failures struct {
	testing.TB
	failed []string
}

func (f *failures) Helper() {}

func (f *failures) Errorf(format string, args ...any) {
	f.failed = append(f.failed, fmt.Sprintf(format, args...))
}

func (f *failures) Fatal(args ...any) {
	f.failed = append(f.failed, fmt.Sprint(args...))
	runtime.Goexit()
}

func (f *failures) Fatalf(format string, args ...any) {
	f.failed = append(f.failed, fmt.Sprintf(format, args...))
	runtime.Goexit()
}

// Stepwise given a directory with no migration in it (a name mistyped)
// fails, rather than passing having applied none.
func TestStepwiseFailsWithoutMigrations(t *testing.T) {
	fsys := fstest.MapFS{"migrations/0001_init.sql": {Data: []byte("CREATE TABLE a (x INTEGER);")}}
	f := &failures{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Stepwise(f, filepath.Join(t.TempDir(), "store.db"), "FULL", fsys, "migration")
	}()
	<-done
	if len(f.failed) != 1 || !strings.Contains(f.failed[0], "no migrations in migration") {
		t.Errorf("Stepwise of a directory without migrations: failed with %q, want one failure saying there are none", f.failed)
	}
	f = &failures{TB: t}
	done = make(chan struct{})
	go func() {
		defer close(done)
		Stepwise(f, filepath.Join(t.TempDir(), "store.db"), "FULL", fsys, "migrations")
	}()
	<-done
	if len(f.failed) != 0 {
		t.Errorf("Stepwise of one migration: %q, want no failure", f.failed)
	}
}
