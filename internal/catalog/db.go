// Package catalog is the master's store: targets, jobs, each target's
// download list, and the runs targets report. Every change that affects a
// target posts its instructions in the same transaction, with sequence
// numbers taken from a counter on the target's own row, so that commit order
// is sequence order. After a commit, the OnCommit hook learns which targets
// have new instructions, so their held polls wake after the commit and never
// before it.
//
// Uniqueness and idempotency are enforced by constraints, not isolation.
package catalog

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/musterhq/muster/internal/sqlite"
)

//go:embed migrations
var migrations embed.FS

// Commit tells the OnCommit hook what a committed transaction changed.
type Commit struct {
	// Targets whose download list gained instructions.
	Targets []int64
	// Runs whose recorded state changed.
	Runs []string
	// Poke lists targets whose held poll should be answered now, though
	// nothing was posted to them (their state changed, e.g. paused).
	Poke []int64
}

// Options configure a DB.
type Options struct {
	// Now is the clock; time.Now when nil. A transaction reads it once.
	Now func() time.Time
	// OnCommit is called after every committed change, outside any
	// transaction. It must not block.
	OnCommit func(Commit)
	// HeartbeatFlush is how often coalesced poll heartbeats are written;
	// one second when zero.
	HeartbeatFlush time.Duration
}

// DB is the master's catalog on SQLite.
type DB struct {
	write *sql.DB // one connection: SQLite has one writer
	read  *sql.DB
	opts  Options
	epoch string

	writeStmts map[string]*sql.Stmt // hotWrites, prepared at open
	reads      readStmts

	beats    heartbeats
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// Open opens (creating and migrating if needed) the catalog at path.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HeartbeatFlush <= 0 {
		opts.HeartbeatFlush = time.Second
	}
	write, read, err := sqlite.Open(path, "NORMAL")
	if err != nil {
		return nil, err
	}
	db := &DB{write: write, read: read, opts: opts, stop: make(chan struct{}), done: make(chan struct{})}
	db.beats.pending = map[int64]Heartbeat{}
	if err := db.migrate(ctx); err != nil {
		db.write.Close()
		db.read.Close()
		return nil, fmt.Errorf("migrate catalog %s: %w", path, err)
	}
	if err := db.prepareWrites(ctx); err != nil {
		db.closeStmts()
		db.write.Close()
		db.read.Close()
		return nil, fmt.Errorf("catalog %s: %w", path, err)
	}
	go db.flushLoop()
	return db, nil
}

// Close flushes pending heartbeats and closes the database.
func (db *DB) Close() error {
	db.stopOnce.Do(func() { close(db.stop) })
	<-db.done
	return errors.Join(db.closeStmts(), db.write.Close(), db.read.Close())
}

// Epoch identifies this catalog. It is made when the catalog is created and
// sent in every poll reply; a target that sees a different epoch asks for a
// resync instead of trusting its cursor.
func (db *DB) Epoch() string { return db.epoch }

// RotateEpoch gives the catalog a new epoch, so every target resyncs at its
// next poll. It is for a catalog restored from a backup, which may have
// forgotten instructions that targets already applied.
func (db *DB) RotateEpoch(ctx context.Context) (string, error) {
	epoch := newEpoch()
	err := db.update(ctx, func(tx *tx) error {
		_, err := tx.Exec(`UPDATE meta SET value = ? WHERE key = 'epoch'`, epoch)
		return err
	})
	if err == nil {
		db.epoch = epoch
	}
	return epoch, err
}

func newEpoch() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (db *DB) migrate(ctx context.Context) error {
	if err := sqlite.Migrate(ctx, db.write, migrations, "migrations/sqlite"); err != nil {
		return err
	}
	return db.update(ctx, func(tx *tx) error {
		err := tx.QueryRow(`SELECT value FROM meta WHERE key = 'epoch'`).Scan(&db.epoch)
		if errors.Is(err, sql.ErrNoRows) {
			db.epoch = newEpoch()
			_, err = tx.Exec(`INSERT INTO meta (key, value) VALUES ('epoch', ?), ('created_at', ?)`, db.epoch, tx.now.UTC().Format(time.RFC3339))
		}
		return err
	})
}

// tx is a write transaction. It reads the clock once and collects what the
// OnCommit hook must hear about.
type tx struct {
	*sql.Tx
	db   *DB
	ctx  context.Context
	now  time.Time
	wake map[int64]struct{}
	runs []string
	poke []int64
}

// Exec, Query and QueryRow use the transaction's context; Exec and
// QueryRow use the prepared statement when q is one of hotWrites.
func (tx *tx) Exec(q string, args ...any) (sql.Result, error) {
	if s, ok := tx.db.writeStmts[q]; ok {
		return tx.Tx.StmtContext(tx.ctx, s).ExecContext(tx.ctx, args...)
	}
	return tx.Tx.ExecContext(tx.ctx, q, args...)
}
func (tx *tx) Query(q string, args ...any) (*sql.Rows, error) {
	return tx.Tx.QueryContext(tx.ctx, q, args...)
}
func (tx *tx) QueryRow(q string, args ...any) *sql.Row {
	if s, ok := tx.db.writeStmts[q]; ok {
		return tx.Tx.StmtContext(tx.ctx, s).QueryRowContext(tx.ctx, args...)
	}
	return tx.Tx.QueryRowContext(tx.ctx, q, args...)
}

// update runs fn in a write transaction and commits it if fn returns nil.
func (db *DB) update(ctx context.Context, fn func(*tx) error) error {
	return db.transact(ctx, fn, true)
}

// dryRun runs fn in a write transaction and rolls it back whatever happens,
// so a preview computes exactly what the change would do.
func (db *DB) dryRun(ctx context.Context, fn func(*tx) error) error {
	return db.transact(ctx, fn, false)
}

func (db *DB) transact(ctx context.Context, fn func(*tx) error, commit bool) error {
	sqlTx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	t := &tx{Tx: sqlTx, db: db, ctx: ctx, now: db.opts.Now(), wake: map[int64]struct{}{}}
	if err := fn(t); err != nil {
		sqlTx.Rollback()
		return err
	}
	if !commit {
		return sqlTx.Rollback()
	}
	if err := sqlTx.Commit(); err != nil {
		return err
	}
	if db.opts.OnCommit != nil && (len(t.wake) > 0 || len(t.runs) > 0 || len(t.poke) > 0) {
		c := Commit{Runs: t.runs, Poke: t.poke}
		for id := range t.wake {
			c.Targets = append(c.Targets, id)
		}
		db.opts.OnCommit(c)
	}
	return nil
}

// ms converts a time to the catalog's Unix milliseconds.
func ms(t time.Time) int64 { return t.UnixMilli() }

// fromMS converts Unix milliseconds to a UTC time.
func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// fromNullMS converts a nullable column to a *time.Time.
func fromNullMS(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMS(v.Int64)
	return &t
}

// placeholders returns "?, ?, ?" for n arguments.
func placeholders(n int) string {
	if n == 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// nameIDs runs a query returning (name, id) rows and adds them to into.
func (tx *tx) nameIDs(into map[string]int64, q string, args ...any) error {
	rows, err := tx.Query(q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		var id int64
		if err := rows.Scan(&n, &id); err != nil {
			return err
		}
		into[n] = id
	}
	return rows.Err()
}

// names runs a query returning one text column.
func (tx *tx) names(q string, args ...any) ([]string, error) {
	rows, err := tx.Query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}
