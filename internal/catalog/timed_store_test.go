package catalog_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestTimedStoreGenerated checks that timed_store.go is what timedgen
// makes of store.go now: a method added to the Store is timed too.
func TestTimedStoreGenerated(t *testing.T) {
	out := filepath.Join(t.TempDir(), "timed_store.go")
	cmd := exec.Command("go", "run", "./internal/timedgen", "store.go", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("timedgen: %v\n%s", err, b)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("timed_store.go")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatal("timed_store.go is out of date: run go generate ./internal/catalog")
	}
}
