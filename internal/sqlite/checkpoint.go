package sqlite

import (
	"context"
	"database/sql/driver"
	"sync"
	"sync/atomic"
)

// A write transaction that finds the write-ahead log past
// wal_autocheckpoint pages copies it back into the database file before
// its commit returns: on a busy catalog, one commit in a few dozen waited
// several milliseconds for the copy and its syncs, which is where the
// slowest dispatches came from. Instead, a goroutine of the write handle
// checkpoints on a connection of its own every checkpointEvery commits, in
// PASSIVE mode, which never blocks the writer or the readers. The automatic
// checkpoint stays, at checkpointBackstop pages, for a log that grows
// faster than the goroutine copies it (a START fanned out to thousands of
// targets writes thousands of pages in one commit).
const (
	checkpointEvery    = 64
	checkpointBackstop = 10000 // pages; SQLite's default is 1,000
)

// checkpointer copies the write-ahead log back into the database file in
// the background, once every checkpointEvery commits.
type checkpointer struct {
	dsn string
	drv driver.Driver

	commits atomic.Int64
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once

	// checkpointed, when set, learns each checkpoint's outcome (tests).
	checkpointed func(error)
}

func newCheckpointer(dsn string, drv driver.Driver) *checkpointer {
	c := &checkpointer{dsn: dsn, drv: drv, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

// committed counts a commit, and wakes the goroutine every
// checkpointEvery commits. It never waits.
func (c *checkpointer) committed() {
	if c.commits.Add(1)%checkpointEvery != 0 {
		return
	}
	select {
	case c.kick <- struct{}{}:
	default: // a checkpoint is due already
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	var conn driver.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
		}
		var err error
		if conn == nil {
			conn, err = c.drv.Open(c.dsn)
		}
		if err == nil {
			// A checkpoint that cannot finish (a reader holds the log) is
			// not an error: the next one carries on from where it stopped.
			_, err = conn.(driver.ExecerContext).ExecContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`, nil)
		}
		if err != nil && conn != nil {
			// The automatic checkpoint is still there; open afresh next time.
			conn.Close()
			conn = nil
		}
		if c.checkpointed != nil {
			c.checkpointed(err)
		}
	}
}

// Close stops the goroutine; a checkpoint under way finishes first.
func (c *checkpointer) Close() error {
	c.once.Do(func() { close(c.stop) })
	<-c.done
	return nil
}

// countingTx is a write transaction whose commit is counted.
type countingTx struct {
	driver.Tx
	cp *checkpointer
}

func (t countingTx) Commit() error {
	err := t.Tx.Commit()
	if err == nil {
		t.cp.committed()
	}
	return err
}
