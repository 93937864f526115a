// Package catalogtest opens real catalog stores for tests: SQLite in a
// temporary directory, and PostgreSQL in a schema of its own in the
// database MUSTER_TEST_POSTGRES names. A test that needs PostgreSQL skips,
// saying so, when it does not answer, and fails instead when
// MUSTER_TEST_REQUIRE_SERVICES=1 (as in CI).
package catalogtest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/pgstore"
	"github.com/musterhq/muster/internal/catalog/sqlitestore"
)

// DefaultPostgres is the database tests use when MUSTER_TEST_POSTGRES is
// not set.
const DefaultPostgres = "postgres://root@127.0.0.1:5432/test?sslmode=disable"

// Engine opens fresh stores of one database engine.
type Engine struct {
	Name string
	// Open returns a store on a new, empty catalog, closed when the test
	// ends.
	Open func(tb testing.TB) catalog.Store
}

// ForEach runs fn as a subtest for each engine: SQLite, and PostgreSQL
// (skipped, saying why, when it does not answer and is not required).
func ForEach(t *testing.T, fn func(t *testing.T, e Engine)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres) })
}

// SQLite opens stores on SQLite files in temporary directories.
var SQLite = Engine{Name: "sqlite", Open: func(tb testing.TB) catalog.Store {
	tb.Helper()
	s, err := sqlitestore.Open(context.Background(), filepath.Join(tb.TempDir(), "catalog.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}}

// Postgres opens stores on PostgreSQL, each in a schema of its own.
var Postgres = Engine{Name: "postgres", Open: func(tb testing.TB) catalog.Store {
	tb.Helper()
	return OpenPostgres(tb, PostgresURL(tb))
}}

// OpenPostgres opens a store on the catalog at url, closed when the test
// ends. Several stores opened on one URL share its catalog, as masters do.
func OpenPostgres(tb testing.TB, url string) *pgstore.Store {
	tb.Helper()
	s, err := pgstore.Open(context.Background(), url, pgstore.Options{LeaseInterval: 200 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// PostgresDSN returns the test database's URL, or skips (fails when
// services are required) when it does not answer.
func PostgresDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv("MUSTER_TEST_POSTGRES")
	if dsn == "" {
		dsn = DefaultPostgres
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err == nil {
		err = conn.Ping(ctx)
		conn.Close(ctx)
	}
	if err != nil {
		if os.Getenv("MUSTER_TEST_REQUIRE_SERVICES") == "1" {
			tb.Fatalf("PostgreSQL at %s (MUSTER_TEST_POSTGRES) is required and does not answer: %v", dsn, err)
		}
		tb.Skipf("skipping: no PostgreSQL at %s (set MUSTER_TEST_POSTGRES): %v", dsn, err)
	}
	return dsn
}

// PostgresURL creates a new, empty schema in the test database and returns
// the database's URL with search_path set to it. The schema is dropped
// when the test ends.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	url, drop, err := pgstore.NewSchema(context.Background(), PostgresDSN(tb), "muster_test_")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { drop(context.Background()) })
	return url
}

// SecretFile writes a new secret for the masters of a catalog on
// PostgreSQL (their --secret-file: 32 random bytes in base64, mode 0600)
// and returns its path.
func SecretFile(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString([]byte(rand.Text()+rand.Text()))+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// PostgresDatabaseURL creates a new, empty database on the test server and
// returns its URL; the database is dropped when the test ends. It is for a
// test of what PostgreSQL's vacuum horizon decides: dead row versions are
// kept while any transaction in the same database holds a snapshot older
// than them, so a test that counts pages must not share its database with
// tests running beside it. Others take a schema (PostgresURL).
func PostgresDatabaseURL(tb testing.TB) string {
	tb.Helper()
	dsn := PostgresDSN(tb)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	name := "muster_test_" + strings.ToLower(rand.Text()[:16]) // random: not two tests' in one millisecond
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("creating a database for the test (the user of MUSTER_TEST_POSTGRES needs CREATEDB): %v", err)
	}
	tb.Cleanup(func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			tb.Errorf("dropping database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP DATABASE `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
			tb.Errorf("dropping database %s: %v", name, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// LockTargetRow holds the row of target id, locked with strength ("FOR
// UPDATE", "FOR KEY SHARE", …), in a transaction on a connection of its
// own to the PostgreSQL catalog at url, until the caller ends it or the
// test ends.
func LockTargetRow(tb testing.TB, url string, id int64, strength string) pgx.Tx {
	tb.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close(ctx) })
	tx, err := c.Begin(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, `SELECT id FROM targets WHERE id = $1 `+strength, id); err != nil {
		tb.Fatal(err)
	}
	return tx
}

// LockAwaited reports whether a statement on conn's database waits for a
// lock.
func LockAwaited(tb testing.TB, conn *pgx.Conn) bool {
	tb.Helper()
	var waiting bool
	if err := conn.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event_type = 'Lock')`).Scan(&waiting); err != nil {
		tb.Fatal(err)
	}
	return waiting
}

// AwaitLock waits until a statement on conn's database waits for a lock,
// and reports true, or until ended reports true first, and reports false;
// it fails the test, naming what (what is awaited), after 30 s of neither.
func AwaitLock(tb testing.TB, conn *pgx.Conn, what string, ended func() bool) bool {
	tb.Helper()
	for tries := 0; ; tries++ {
		if ended() {
			return false
		}
		if LockAwaited(tb, conn) {
			return true
		}
		if tries == 3000 {
			tb.Fatalf("%s did not happen after 3,000 looks (30 s)", what)
		}
		if _, err := conn.Exec(context.Background(), `SELECT pg_sleep(0.01)`); err != nil {
			tb.Fatal(err)
		}
	}
}

// FreeTargetsOnceBlocked waits until a statement on conn's database waits
// for a lock (what names it in the failure), then returns the ids of the
// targets whose rows no transaction holds, in id order: which rows a write
// blocked part way took shows the order it takes them in.
func FreeTargetsOnceBlocked(tb testing.TB, conn *pgx.Conn, what string) []int64 {
	tb.Helper()
	ctx := context.Background()
	AwaitLock(tb, conn, "the "+what+" coming to wait for the held row", func() bool { return false })
	free, err := conn.Begin(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer free.Rollback(ctx)
	rows, err := free.Query(ctx, `SELECT id FROM targets ORDER BY id FOR UPDATE SKIP LOCKED`)
	if err != nil {
		tb.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		tb.Fatal(err)
	}
	return ids
}
