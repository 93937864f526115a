package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestCheckpointInBackground(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "test.db")
	write, read, err := Open(path, "FULL", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer read.Close()
	if _, err := write.Exec(`CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	var backstop int
	if err := write.QueryRow(`PRAGMA wal_autocheckpoint`).Scan(&backstop); err != nil || backstop != checkpointBackstop {
		t.Fatalf("wal_autocheckpoint = %d (%v), want %d", backstop, err, checkpointBackstop)
	}
	if cp := connOf(t, read).cp; cp != nil {
		t.Fatal("the read handle has a checkpointer; only the write handle checkpoints")
	}
	cp := connOf(t, write).cp
	if cp == nil {
		t.Fatal("the write handle has no checkpointer")
	}
	done := make(chan error, 1)
	cp.checkpointed = func(err error) { done <- err }

	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size()
	// One commit short of a checkpoint: everything is still in the log,
	// for a commit never copies it back below the backstop.
	commit := func(i int) {
		tx, err := write.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES (?, zeroblob(4096))`, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for ; n < checkpointEvery-1; n++ {
		commit(n)
	}
	if got := size(); got != before {
		t.Fatalf("the database file went from %d to %d bytes before any checkpoint was due", before, got)
	}
	select {
	case err := <-done:
		t.Fatalf("a checkpoint ran after %d commits (err %v), want one every %d", n, err, checkpointEvery)
	default:
	}
	commit(n)
	n++
	if err := <-done; err != nil {
		t.Fatalf("the checkpoint failed: %v", err)
	}
	// Every page of the commits is now in the database file.
	if got := size(); got < int64(n)*4096 {
		t.Errorf("the database file is %d bytes after the checkpoint, want the %d rows of 4 KiB in it", got, n)
	}
	var rows int
	if err := read.QueryRow(`SELECT COUNT(*) FROM kv`).Scan(&rows); err != nil || rows != n {
		t.Fatalf("read %d rows (%v), want %d", rows, err, n)
	}
	if err := write.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cp.done:
	default:
		t.Error("the checkpointer still runs after the write handle closed")
	}
}
