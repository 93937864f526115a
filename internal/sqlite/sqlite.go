// Package sqlite opens SQLite databases the way muster needs them (WAL,
// a busy timeout, immediate write transactions, one writer connection) and
// applies numbered migrations embedded in the binary.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/migration"
)

// Open returns two handles on the database file at path: write, with a
// single connection whose transactions take the write lock at BEGIN (so two
// writers never deadlock on upgrade), and read, a pool of readers
// connections for queries.
// Every connection keeps the statements it runs prepared (see connector).
// The write handle checkpoints the log in the background (see
// checkpointer) until it is closed.
//
// The database and its log are readable by their owner alone: they hold
// what the process keeps (job definitions with their env, run output),
// whatever the mode of their directory.
func Open(path string, synchronous string, readers int) (write, read *sql.DB, err error) {
	if err := ownerOnly(path); err != nil {
		return nil, nil, err
	}
	write, err = openCached(dsn(path, synchronous, true), dsn(path, synchronous, false))
	if err != nil {
		return nil, nil, err
	}
	write.SetMaxOpenConns(1)
	write.SetConnMaxIdleTime(0)
	read, err = openCached(dsn(path, synchronous, false), "")
	if err != nil {
		write.Close()
		return nil, nil, err
	}
	// Every reader stays open: database/sql keeps two idle by default and
	// closes the rest, and a reopened connection runs its pragmas and
	// prepares its statements again (at 1,000 polls arriving together, a
	// tenth of the master's CPU went to that). Each holds its own page
	// cache, so a process that reads little asks for few.
	readers = max(readers, 1)
	read.SetMaxOpenConns(readers)
	read.SetMaxIdleConns(readers)
	return write, read, nil
}

// ownerOnly creates the database file at path, if it is missing, with
// access for its owner alone, and takes access away from others on the
// files of one that exists (a store made by an earlier version was
// readable by all). SQLite gives its log and shared-memory files the
// database file's mode.
func ownerOnly(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	for _, name := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		fi, err := os.Stat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return err
		}
		if mode := fi.Mode().Perm(); mode&0o077 != 0 {
			if err := os.Chmod(name, mode&^0o077); err != nil {
				return err
			}
		}
	}
	return nil
}

func dsn(path, synchronous string, write bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+synchronous+")")
	q.Add("_pragma", "foreign_keys(1)")
	if write {
		q.Set("_txlock", "immediate")
		q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", checkpointBackstop))
	}
	return URI(path, q)
}

// URI returns the URI SQLite opens the file at path by, with the query
// q. SQLite reads a file name given as a URI as one: in the path, '?'
// would start the query, '#' a fragment and '%' an escape, so a path
// holding them (a data directory named "muster#2") would name another
// file; they are escaped. An absolute path gets an empty authority, so
// that one starting with "//" is not taken for a host.
func URI(path string, q url.Values) string {
	p := uriPath.Replace(path)
	if strings.HasPrefix(p, "/") {
		p = "//" + p
	}
	return "file:" + p + "?" + q.Encode()
}

var uriPath = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// Migrate applies, in order and each in its own transaction, the files
// dir/NNNN_name.sql of fsys that the database has not seen yet.
func Migrate(ctx context.Context, db *sql.DB, fsys fs.FS, dir string) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return err
	}
	files, err := migration.List(fsys, dir)
	if err != nil {
		return err
	}
	// A database a newer build has migrated has a schema this one does not
	// know: run on it, it would misread what it holds, or write what the
	// newer build cannot read back.
	var applied sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&applied); err != nil {
		return err
	}
	if latest := migration.Newest(files); applied.Valid && int(applied.Int64) > latest {
		return muster.Errorf(muster.EUNSUPPORTED, "it was written by a newer muster (schema %d; this muster knows up to %d): run that muster's version, or a later one", applied.Int64, latest)
	}
	for _, f := range files {
		body, err := fs.ReadFile(fsys, f.Path)
		if err != nil {
			return err
		}
		if err := apply(ctx, db, f.Version, f.Name, string(body)); err != nil {
			return err
		}
	}
	return nil
}

func apply(ctx context.Context, db *sql.DB, version int, name, body string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil || n > 0 {
		return err
	}
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return fmt.Errorf("migration %s: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, version, time.Now().UnixMilli()); err != nil {
		return err
	}
	return tx.Commit()
}

// IsUniqueViolation reports whether err is a UNIQUE or PRIMARY KEY
// constraint failure.
func IsUniqueViolation(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// IsFull reports whether err says the database or its disk is full.
func IsFull(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_FULL
}

// IsReadOnly reports whether err says the database cannot be written: its
// file or filesystem turned read-only, or the file was moved.
func IsReadOnly(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_READONLY
}

// IsIOError reports whether err says the disk failed a read or a write.
func IsIOError(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_IOERR
}

// IsDamaged reports whether err says that a file is not an SQLite
// database, or a damaged one.
func IsDamaged(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && (e.Code()&0xff == sqlite3.SQLITE_NOTADB || e.Code()&0xff == sqlite3.SQLITE_CORRUPT)
}

// IsBusy reports whether err says the database stayed locked past the busy
// timeout.
func IsBusy(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && (e.Code()&0xff == sqlite3.SQLITE_BUSY || e.Code()&0xff == sqlite3.SQLITE_LOCKED)
}
