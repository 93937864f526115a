// Package sqlitestore is the catalog's store on SQLite, the embedded default:
// one file in the master's data directory, for one master. It runs the
// statements of package sqlstore, with its own numbered migrations.
//
// Write transactions take SQLite's write lock at BEGIN (BEGIN IMMEDIATE on
// a single connection): they run one at a time, serializable.
package sqlitestore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"os"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/sqlstore"
	"github.com/musterhq/muster/internal/dirlock"
	"github.com/musterhq/muster/internal/sqlite"
)

//go:embed migrations
var migrations embed.FS

// Store is a catalog on one SQLite file.
type Store struct {
	catalog.Reads // on the read pool
	path          string
	lock          *dirlock.Lock // on path+lockSuffix while open
	file          os.FileInfo   // the file opened at path, to tell it was deleted or replaced since
	write, read   *sql.DB
	writeStmts    *sqlite.Stmts
	readStmts     *sqlite.Stmts
}

// lockSuffix names, after the catalog's path, the file a Store holds
// locked while it is open: a second Store of the catalog, in this process
// or another, is refused until the first is closed.
const lockSuffix = "-lock"

// readers is how many connections read the catalog at once: the polls,
// the operators and the duties of a busy master.
const readers = 8

// dialect: SQLite takes one parameter per list element.
var dialect = sqlstore.Dialect{}

// Open opens (creating and migrating if needed) the catalog at path. The
// file, and its write-ahead log, are readable by their owner only.
func Open(ctx context.Context, path string) (s *Store, err error) {
	// One master at a time: the catalog may be kept outside the master's
	// data directory (sqlite:PATH), where that directory's lock does not
	// reach, and a master on a catalog of its own tells no other of its
	// changes (it remembers credentials until it changes them itself).
	lock, err := dirlock.AcquireFile(path+lockSuffix, "catalog "+path)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lock.Release()
		}
	}()
	// The catalog holds hashes of secrets and webhook secrets: keep it
	// private from the start, WAL and shared memory included.
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		f.Close()
		if err := os.Chmod(p, 0o600); err != nil {
			return nil, err
		}
	}
	// NORMAL: the master's catalog is replayed from its targets' own
	// records after a power cut (a START lost here was never acknowledged
	// to its operator by a run), unlike a target's spool.
	write, read, err := sqlite.Open(path, "NORMAL", readers)
	if err != nil {
		return nil, err
	}
	s = &Store{path: path, lock: lock, write: write, read: read, writeStmts: sqlite.NewStmts(write), readStmts: sqlite.NewStmts(read)}
	s.Reads = sqlstore.New(&querier{db: read, stmts: s.readStmts}, dialect)
	if err := sqlite.Migrate(ctx, write, migrations, "migrations"); err != nil {
		s.Close()
		if sqlite.IsDamaged(err) {
			return nil, muster.Wrap(muster.EPRECONDITION, err, "catalog %s is damaged: put back a backup of it with muster store restore (docs/operations.md, Back up and restore)", path)
		}
		return nil, fmt.Errorf("migrate catalog %s: %w", path, err)
	}
	if s.file, err = os.Stat(path); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// inPlace reports, as unavailable, a catalog file deleted or replaced
// since it was opened. SQLite goes on reading and writing the file it
// opened, which no one will open again: a change committed there would be
// acknowledged, then lost at the next start.
func (s *Store) inPlace() error {
	fi, err := os.Stat(s.path)
	if err == nil && os.SameFile(fi, s.file) {
		return nil
	}
	how := "replaced"
	if errors.Is(err, os.ErrNotExist) {
		how = "deleted"
	} else if err != nil {
		return muster.Wrap(muster.EUNAVAILABLE, err, "the catalog file cannot be checked")
	}
	// Said without the path: /readyz, which anyone may ask, says this.
	return muster.Errorf(muster.EUNAVAILABLE, "the catalog file was %s while the master had it open: changes are refused, as the master's next start would not see them; restart the master on the catalog (restored from a backup if need be)", how)
}

// Path is the file the catalog is in.
func (s *Store) Path() string { return s.path }

// Describe names the file.
func (s *Store) Describe() string { return "SQLite at " + s.path }

// Close closes the database and lets it go to another master.
func (s *Store) Close() error {
	return errors.Join(s.writeStmts.Close(), s.readStmts.Close(), s.write.Close(), s.read.Close(), s.lock.Release())
}

// Shared is false: one master uses a SQLite catalog.
func (s *Store) Shared() bool { return false }

// Listen returns at once: no other master writes this catalog.
func (s *Store) Listen(context.Context, func(catalog.Commit, bool)) {}

// SetPeers does nothing: no other master serves a SQLite catalog.
func (s *Store) SetPeers(bool) {}

// HoldsDuties returns nil: a master alone holds the singleton duties.
func (s *Store) HoldsDuties(context.Context) error { return nil }

// Lead holds the singleton duties at once, until ctx ends.
func (s *Store) Lead(ctx context.Context, held func(bool)) {
	held(true)
	<-ctx.Done()
	held(false)
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.read.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return classify(err)
	}
	return s.inPlace()
}

// Update runs fn in a write transaction, alone (BEGIN IMMEDIATE).
func (s *Store) Update(ctx context.Context, fn func(catalog.Tx) error) error {
	return s.transact(ctx, fn, true)
}

// DryRun runs fn in a write transaction and rolls it back.
func (s *Store) DryRun(ctx context.Context, fn func(catalog.Tx) error) error {
	return s.transact(ctx, fn, false)
}

func (s *Store) transact(ctx context.Context, fn func(catalog.Tx) error, commit bool) (err error) {
	if err := s.inPlace(); err != nil {
		return err
	}
	sqlTx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return classify(err)
	}
	q := &txQuerier{tx: sqlTx, ctx: ctx, stmts: s.writeStmts, wrapped: map[string]*sql.Stmt{}}
	// Rolled back unless committed: on an error, on a dry run, and on a
	// panic in fn, which would otherwise leave the single write connection
	// in the transaction, and every later write waiting for it.
	committed := false
	defer func() {
		if !committed {
			if rb := sqlTx.Rollback(); err == nil {
				err = rb
			}
		}
		// The statements this transaction could not find prepared are
		// prepared now that the single connection is free.
		if len(q.missed) > 0 {
			s.writeStmts.Prepare(context.WithoutCancel(ctx), q.missed)
		}
	}()
	if err = fn(sqlstore.New(q, dialect)); err != nil {
		return err
	}
	if !commit {
		return nil
	}
	committed = true // a failed commit ends the transaction too
	return classify(sqlTx.Commit())
}

// classify turns SQLite's errors into what the catalog acts on: a unique
// constraint broken, a lock not had in time (retried), a full disk, a
// read-only file or filesystem, an I/O error (each said as such to
// operators and by /readyz).
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case sqlite.IsUniqueViolation(err):
		return fmt.Errorf("%w: %w", catalog.ErrDuplicate, err)
	case sqlite.IsFull(err):
		return muster.Wrap(muster.EUNAVAILABLE, err, "the master's disk is full: the catalog cannot record changes until space is freed")
	case sqlite.IsReadOnly(err):
		return muster.Wrap(muster.EUNAVAILABLE, err, "the catalog is read-only (its file or filesystem): it cannot record changes until it is writable again")
	case sqlite.IsIOError(err):
		return muster.Wrap(muster.EUNAVAILABLE, err, "the master's disk failed a read or write of the catalog (an I/O error): check the disk and its filesystem")
	case sqlite.IsBusy(err):
		return fmt.Errorf("%w: %w", catalog.ErrRetry, err)
	}
	return err
}

// querier runs statements on a handle, prepared once each.
type querier struct {
	db    *sql.DB
	stmts *sqlite.Stmts
}

func (q *querier) stmt(ctx context.Context, query string) (*sql.Stmt, func(), error) {
	s, keep, err := q.stmts.Get(ctx, query)
	if err != nil || keep {
		return s, func() {}, err
	}
	return s, func() { s.Close() }, nil
}

func (q *querier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	s, done, err := q.stmt(ctx, query)
	if err != nil {
		return 0, classify(err)
	}
	defer done()
	return affected(s.ExecContext(ctx, args...))
}

func (q *querier) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	s, done, err := q.stmt(ctx, query)
	if err != nil {
		return nil, classify(err)
	}
	rows, err := s.QueryContext(ctx, args...)
	if err != nil {
		done()
		return nil, classify(err)
	}
	return &sqlRows{Rows: rows, done: done}, nil
}

func (q *querier) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	s, done, err := q.stmt(ctx, query)
	if err != nil {
		return errRow{classify(err)}
	}
	return &sqlRow{row: s.QueryRowContext(ctx, args...), done: done}
}

// txQuerier runs statements in a write transaction, on the statements
// prepared on the write connection; it notes the ones that were not, to be
// prepared after the transaction.
type txQuerier struct {
	tx      *sql.Tx
	ctx     context.Context
	stmts   *sqlite.Stmts
	wrapped map[string]*sql.Stmt // prepared statements bound to this transaction
	missed  []string
}

// stmt returns query bound to the transaction if it is prepared.
func (q *txQuerier) stmt(query string) *sql.Stmt {
	if s, ok := q.wrapped[query]; ok {
		return s
	}
	s, ok := q.stmts.Lookup(query)
	if !ok {
		if len(q.missed) < 64 {
			q.missed = append(q.missed, query)
		}
		return nil
	}
	s = q.tx.StmtContext(q.ctx, s)
	q.wrapped[query] = s
	return s
}

func (q *txQuerier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	if s := q.stmt(query); s != nil {
		return affected(s.ExecContext(ctx, args...))
	}
	return affected(q.tx.ExecContext(ctx, query, args...))
}

func (q *txQuerier) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	var rows *sql.Rows
	var err error
	if s := q.stmt(query); s != nil {
		rows, err = s.QueryContext(ctx, args...)
	} else {
		rows, err = q.tx.QueryContext(ctx, query, args...)
	}
	if err != nil {
		return nil, classify(err)
	}
	return &sqlRows{Rows: rows, done: func() {}}, nil
}

func (q *txQuerier) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	if s := q.stmt(query); s != nil {
		return &sqlRow{row: s.QueryRowContext(ctx, args...), done: func() {}}
	}
	return &sqlRow{row: q.tx.QueryRowContext(ctx, query, args...), done: func() {}}
}

func affected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, classify(err)
	}
	return res.RowsAffected()
}

// sqlRows adapts *sql.Rows.
type sqlRows struct {
	*sql.Rows
	done func()
}

func (r *sqlRows) Scan(dest ...any) error { return classify(r.Rows.Scan(dest...)) }
func (r *sqlRows) Err() error             { return classify(r.Rows.Err()) }
func (r *sqlRows) Close()                 { r.Rows.Close(); r.done() }

// sqlRow adapts *sql.Row.
type sqlRow struct {
	row  *sql.Row
	done func()
}

func (r *sqlRow) Scan(dest ...any) error {
	defer r.done()
	return classify(r.row.Scan(dest...))
}

// errRow is a row whose query failed.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

var _ catalog.Store = (*Store)(nil)

// Tables are the catalog's tables, in an order that copies every row after
// the rows it refers to.
var Tables = []string{"meta", "targets", "certs", "enlist_tokens", "api_tokens", "jobs", "groups", "group_members",
	"job_groups", "job_targets", "instructions", "sent_jobs", "runs", "run_output", "starts", "queued_starts", "events", "operators",
	"alerts", "alert_operators", "deliveries", "masters", "audit", "audit_subjects", "rollouts", "rollout_targets",
	"console_links", "console_sessions"}

// Dump calls fn with the column names of a table, then with each of its
// rows, as SQLite holds them.
func (s *Store) Dump(ctx context.Context, table string, fn func(cols []string, row []any) error) error {
	rows, err := s.read.QueryContext(ctx, `SELECT * FROM "`+table+`"`)
	if err != nil {
		return classify(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		if err := fn(cols, vals); err != nil {
			return err
		}
	}
	return classify(rows.Err())
}
