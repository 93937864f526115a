// Package pgstore is the catalog's store on PostgreSQL (through pgx's own
// pool), for several masters serving one catalog: PostgreSQL replicates
// and fails over (streaming replication, Patroni, a managed service); the
// masters in front of it share its rows. It runs the statements of package
// sqlstore, overrides those it batches or locks, and has its own numbered
// migrations.
//
// Every write transaction runs at READ COMMITTED. What a single SQLite
// writer gave for free is explicit here: a target's sequence numbers come
// from an UPDATE of its row, whose lock is held to commit (commit order is
// sequence order); a read that decides a write takes the rows it reads
// (SELECT … FOR UPDATE, in id order); uniqueness is a constraint; a
// transaction that deadlocks or loses a serialization race is run again by
// the catalog. A statement or transaction that writes several targets'
// rows (a post's counters, a heartbeat flush, a pause, the presence scan)
// takes them in id order, FOR NO KEY UPDATE, so that two of them never
// each hold a row the other waits for, and foreign-key checks of the rows
// pass.
package pgstore

import (
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/sqlstore"
	"github.com/musterhq/muster/internal/migration"
	"github.com/musterhq/muster/internal/netopt"
)

//go:embed migrations
var migrations embed.FS

// dialect: PostgreSQL takes a list as one array parameter.
var dialect = sqlstore.Dialect{ArrayParams: true}

// Options configure a Store.
type Options struct {
	// Logger receives what the store's own connections have to say;
	// slog.Default() when nil.
	Logger *slog.Logger
	// LeaseInterval is how often a master tries to take the singleton
	// duties, and checks that it still holds them; 5 s when zero. A master
	// that stops checking (killed, frozen, cut off) loses them within
	// three intervals.
	LeaseInterval time.Duration
	// Tracer, when set, is told of every statement and batch the pool's
	// connections send (tests count round trips with it).
	Tracer pgx.QueryTracer
	// MigrationLockWait bounds how long a migration waits at once for the
	// lock of a table it changes; 2 s when zero. See migrateWhile.
	MigrationLockWait time.Duration
}

// deadPeerTimeout bounds how long a connection to a database gone silent
// is kept (see netopt.DeadPeerDialer).
const deadPeerTimeout = 20 * time.Second

// Store is a catalog on a PostgreSQL database (in its search_path schema).
type Store struct {
	catalog.Reads // on the pool
	pool          *pgxpool.Pool
	conn          *pgx.ConnConfig // for the listening and lease connections
	opts          Options
	log           *slog.Logger
	channel       string                       // notifications of this catalog
	leaseKey      int64                        // advisory lock of the singleton duties
	holder        atomic.Pointer[leaseSession] // the lease's session while it holds the lock
	self          string                       // tells this store's notifications from the others'
	schema        string
	alone         atomic.Bool // no other master serves the catalog (SetPeers)
}

// Open connects to the database at url (postgres://user@host:port/db?…;
// a search_path parameter puts the catalog in a schema) and migrates it.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.LeaseInterval <= 0 {
		opts.LeaseInterval = 5 * time.Second
	}
	if opts.MigrationLockWait <= 0 {
		opts.MigrationLockWait = 2 * time.Second
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, muster.Wrap(muster.EINVALID, err, "--store: %q is not a PostgreSQL URL such as postgres://muster@db.example.com/muster", redact(url))
	}
	if opts.Tracer != nil {
		cfg.ConnConfig.Tracer = opts.Tracer
	}
	// A database that vanishes without a word (a link down, a firewall
	// dropping the connection's state) fails the statements waiting on it
	// within deadPeerTimeout, and the master answers 503, rather than
	// waiting for the kernel's quarter of an hour.
	cfg.ConnConfig.DialFunc = netopt.DeadPeerDialer(30*time.Second, deadPeerTimeout).DialContext
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = 16
	}
	// A singleton duty's transaction holds a connection while it asks, on
	// another, whether this master still holds the duties (HoldsDuties).
	if cfg.MaxConns < 2 {
		return nil, muster.Errorf(muster.EINVALID, "--store: pool_max_conns: at least 2, not %d (a duty's transaction asks on a second connection whether this master still holds the duties)", cfg.MaxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, classify(err)
	}
	s := &Store{pool: pool, conn: cfg.ConnConfig.Copy(), opts: opts, log: opts.Logger}
	s.Reads = sqlstore.New(querier{pool}, dialect)
	if err := s.init(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// init checks the connection, migrates, and names the catalog's channel and
// lease after its schema, so that catalogs in two schemas of one database
// stay apart.
func (s *Store) init(ctx context.Context) error {
	var schema string
	if err := s.pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("the catalog database: %w", classify(err))
	}
	if schema == "" {
		return muster.Errorf(muster.EINVALID, "--store: the database has no schema to put the catalog in (check search_path)")
	}
	s.schema = schema
	h := fnv.New64a()
	h.Write([]byte(schema))
	sum := h.Sum64()
	s.channel = "muster_" + strconv.FormatUint(sum, 36)
	s.leaseKey = int64(sum &^ (1 << 63))
	s.self = muster.NewRunID()
	return s.migrate(ctx)
}

// redact hides a password in a URL.
func redact(url string) string {
	if i := strings.Index(url, "@"); i >= 0 {
		if j := strings.Index(url, "://"); j >= 0 && j < i {
			if k := strings.Index(url[j+3:i], ":"); k >= 0 {
				return url[:j+3+k] + ":…" + url[i:]
			}
		}
	}
	return url
}

// migrate applies, each in its own transaction and one master at a time,
// the migrations the database has not seen. A catalog a newer muster has
// migrated is refused: this muster does not know its schema.
func (s *Store) migrate(ctx context.Context) error {
	return s.migrateWhile(ctx, func(string) bool { return true })
}

// migrateWhile is migrate applying the migrations, in order, while apply
// says yes to the file's name.
//
// A migration that changes a table waits for that table's lock, and while
// it waits, PostgreSQL queues every request for the table behind it: the
// uploads, polls and starts of every master serving the catalog would
// wait as long as whatever holds the table (a long report, a dump, an
// idle transaction). So a migration waits at most MigrationLockWait at
// once (lock_timeout), then steps back, rolled back whole, lets the queue
// through, says so in the log, and tries again, for as long as ctx lasts.
func (s *Store) migrateWhile(ctx context.Context, apply func(name string) bool) error {
	files, err := migration.List(migrations, "migrations")
	if err != nil {
		return err
	}
	latest := migration.Newest(files)
	for _, f := range files {
		if !apply(f.Name) {
			break
		}
		body, err := fs.ReadFile(migrations, f.Path)
		if err != nil {
			return err
		}
		for tries := 1; ; tries++ {
			err = s.migrateOne(ctx, f, string(body), latest)
			if !isLockTimeout(err) {
				break
			}
			wait := s.opts.MigrationLockWait
			s.log.Warn("a catalog migration waits for a table another session holds; it stepped back and tries again",
				"migration", f.Name, "tries", tries, "again_in", wait.String(),
				"hint", "a long transaction on the catalog (see pg_stat_activity) holds a table it changes")
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("migration %s: %w (it waited for a table's lock %d times)", f.Name, ctx.Err(), tries)
			case <-t.C:
			}
		}
		if isPermissionDenied(err) {
			return muster.Wrap(muster.EPRECONDITION, err, "--store: role %s may not change the catalog (%s), as a master does when it starts to apply the catalog's migrations: make the role the owner of the schema and of its tables (createdb --owner %s for a new database; ALTER SCHEMA %s OWNER TO %s and ALTER TABLE … OWNER TO %s for each table of one another role made)",
				s.conn.User, s.Describe(), s.conn.User, s.schema, s.conn.User, s.conn.User)
		}
		if err != nil {
			return classify(err)
		}
	}
	return nil
}

// isPermissionDenied reports whether err is PostgreSQL's
// insufficient_privilege.
func isPermissionDenied(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42501"
}

// migrateOne applies one migration, unless the catalog has it, in a
// transaction of its own, one master at a time.
func (s *Store) migrateOne(ctx context.Context, f migration.File, body string, latest int) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, s.leaseKey^0x5eed); err != nil {
			return err
		}
		// Set once the migration lock is held: the masters waiting for
		// it wait as long as the one applying takes.
		if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, s.opts.MigrationLockWait.Milliseconds())); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
			return err
		}
		var applied, n int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0), COUNT(*) FILTER (WHERE version = $1) FROM schema_migrations`,
			f.Version).Scan(&applied, &n); err != nil {
			return err
		}
		if applied > latest {
			// Which muster that was, when it said so (one before this
			// record was kept did not).
			var by string
			if err := tx.QueryRow(ctx, `SELECT value FROM meta WHERE key = $1`, metaSchemaBy).Scan(&by); err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			if by != "" {
				by += ", "
			}
			return muster.Errorf(muster.EUNSUPPORTED, "the catalog (%s) was migrated by a newer muster (%sschema %d; this muster, %s, knows up to %d): run that muster's version, or a later one",
				s.Describe(), by, applied, muster.Version, latest)
		}
		if n > 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, body); err != nil {
			return fmt.Errorf("migration %s: %w", f.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
			metaSchemaBy, muster.Version); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`, f.Version, time.Now().UnixMilli())
		return err
	})
}

// metaSchemaBy is the meta key of the version of the muster that applied
// the catalog's latest migration, which an older muster, refusing the
// catalog, names.
const metaSchemaBy = "schema_by"

// isLockTimeout reports whether err is PostgreSQL's lock_not_available:
// a lock not granted within lock_timeout.
func isLockTimeout(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}

// LatestMigration is the number of the last migration this muster has:
// the catalog schema it knows.
func LatestMigration() int { return migration.Latest(migrations, "migrations") }

// Describe names the database and the schema, without the password.
func (s *Store) Describe() string {
	return fmt.Sprintf("PostgreSQL at %s:%d/%s, schema %s", s.conn.Host, s.conn.Port, s.conn.Database, s.schema)
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Shared is true: several masters may serve one PostgreSQL catalog.
func (s *Store) Shared() bool { return true }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return classify(s.pool.Ping(ctx)) }

// Update runs fn in a write transaction at READ COMMITTED.
func (s *Store) Update(ctx context.Context, fn func(catalog.Tx) error) error {
	return s.transact(ctx, fn, true)
}

// DryRun runs fn in a write transaction and rolls it back.
func (s *Store) DryRun(ctx context.Context, fn func(catalog.Tx) error) error {
	return s.transact(ctx, fn, false)
}

func (s *Store) transact(ctx context.Context, fn func(catalog.Tx) error, commit bool) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return classify(err)
	}
	p := begin(conn)
	defer p.release(context.WithoutCancel(ctx))
	if err := fn(&txQueries{Queries: sqlstore.New(querier{p}, dialect), tx: p, s: s}); err != nil {
		return err
	}
	if !commit {
		return classify(p.rollback(ctx))
	}
	return classify(p.commit(ctx))
}

// classify turns PostgreSQL's errors into what the catalog acts on: a
// unique constraint broken, a race lost (retried), the database out of
// reach or out of space (answered 503, never acknowledged).
func classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	// A connection the server refused (the database not accepting
	// connections, or gone, or the master's credentials refused) is the
	// catalog unavailable, whatever the server said, as is one that could
	// not be made. What the server said names the database and the
	// master's user: it goes to the master's log with the cause, and the
	// reply, which may go to a client not signed in, gives its code only.
	var connectErr *pgconn.ConnectError
	var pgErr *pgconn.PgError
	if errors.As(err, &connectErr) && errors.As(err, &pgErr) {
		return muster.Wrap(muster.EUNAVAILABLE, err, "the catalog database refused the master's connection (SQLSTATE %s; the master's log says why)", pgErr.Code)
	}
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "23505":
			return fmt.Errorf("%w: %w", catalog.ErrDuplicate, err)
		case pgErr.Code == "40001" || pgErr.Code == "40P01":
			return fmt.Errorf("%w: %w", catalog.ErrRetry, err)
		case pgErr.Code == "53100":
			return muster.Wrap(muster.EUNAVAILABLE, err, "the catalog database's disk is full: it cannot record changes until space is freed")
		case strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P") || strings.HasPrefix(pgErr.Code, "53"):
			return muster.Wrap(muster.EUNAVAILABLE, err, "the catalog database is not available (%s)", pgErr.Message)
		}
		return err
	}
	var netErr net.Error
	if errors.As(err, &connectErr) || errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || pgconn.Timeout(err) || strings.Contains(err.Error(), "conn closed") {
		return muster.Wrap(muster.EUNAVAILABLE, err, "the catalog database cannot be reached")
	}
	return err
}

// pgxQuerier is a pool, a connection or a transaction.
type pgxQuerier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// querier adapts pgx to sqlstore.Querier.
type querier struct{ q pgxQuerier }

func (q querier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := q.q.Exec(ctx, query, args...)
	return tag.RowsAffected(), classify(err)
}

func (q querier) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	rows, err := q.q.Query(ctx, query, args...)
	if err != nil {
		return nil, classify(err)
	}
	return pgRows{rows}, nil
}

func (q querier) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return pgRow{q.q.QueryRow(ctx, query, args...)}
}

// Hold sends a statement with the next one, in a transaction; elsewhere
// it runs it at once.
func (q querier) Hold(ctx context.Context, query string, args ...any) error {
	if p, ok := q.q.(*pipeline); ok {
		p.hold(query, args...)
		return nil
	}
	_, err := q.Exec(ctx, query, args...)
	return err
}

type pgRows struct{ pgx.Rows }

func (r pgRows) Scan(dest ...any) error { return classify(r.Rows.Scan(dest...)) }
func (r pgRows) Err() error             { return classify(r.Rows.Err()) }

type pgRow struct{ row pgx.Row }

func (r pgRow) Scan(dest ...any) error { return classify(r.row.Scan(dest...)) }

var _ catalog.Store = (*Store)(nil)

// NewSchema creates a new, empty schema named prefix plus random letters in
// the database at url, and returns the URL of a catalog in it and a function
// that drops it.
func NewSchema(ctx context.Context, url, prefix string) (string, func(context.Context) error, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return "", nil, muster.Wrap(muster.EINVALID, err, "%q is not a PostgreSQL URL", redact(url))
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", nil, classify(err)
	}
	defer conn.Close(ctx)
	// Random, not time-ordered: schemas made in the same millisecond (by
	// tests side by side, by benchmarks) must not share a name.
	schema := prefix + rand.Text()[:16]
	schema = strings.ToLower(schema) // search_path folds unquoted names
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize()); err != nil {
		return "", nil, classify(err)
	}
	drop := func(ctx context.Context) error {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return classify(err)
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
		return classify(err)
	}
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "search_path=" + schema, drop, nil
}
