package pgstore_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/musterhq/muster/internal/catalog/catalogtest"
	"github.com/musterhq/muster/internal/catalog/pgstore"
)

// A migration that must wait for a table another session holds (a long
// report, a dump, a transaction left open) waits at most
// MigrationLockWait at once, then steps back, so that the masters'
// requests for that table are not queued behind it for as long as the
// holder lasts; it says so in the log, and applies once the table is free.
func TestMigrationStepsBackFromAHeldTable(t *testing.T) {
	ctx := context.Background()
	url := catalogtest.PostgresURL(t)
	if err := pgstore.MigrateBefore(ctx, url, "0012"); err != nil {
		t.Fatal(err)
	}
	connect := func() *pgx.Conn {
		t.Helper()
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	// A writer of queued_starts, its transaction left open: 0012 builds an
	// index on that table, which waits for every writer to end.
	holder, err := connect().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx)
	if _, err := holder.Exec(ctx, `LOCK TABLE queued_starts IN ROW EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}

	warned := make(chan slog.Record, 1)
	done := make(chan error, 1)
	go func() {
		done <- pgstore.Migrate(ctx, url, pgstore.Options{Logger: slog.New(recordHandler{warned}), MigrationLockWait: 50 * time.Millisecond})
	}()
	// Bounds on waits that never end, not on how long anything takes.
	const never = 30 * time.Second
	select {
	case r := <-warned:
		migration := ""
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "migration" {
				migration = a.Value.String()
			}
			return true
		})
		if r.Level != slog.LevelWarn || migration != "0012_queued_starts_by_target.sql" {
			t.Errorf("logged %s %q naming migration %q; want a warning naming 0012_queued_starts_by_target.sql", r.Level, r.Message, migration)
		}
	case err := <-done:
		t.Fatalf("the migration ended (%v) while a writer held its table", err)
	case <-time.After(never):
		t.Fatal("the migration waited for the held table without a word")
	}

	// Another writer of the table goes through while the migration
	// retries: it may wait behind one attempt, not behind the holder.
	wctx, cancel := context.WithTimeout(ctx, never)
	defer cancel()
	writer, err := connect().Begin(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Exec(wctx, `LOCK TABLE queued_starts IN ROW EXCLUSIVE MODE`); err != nil {
		t.Fatalf("a writer of the table, while the migration waits for it: %v (queued behind the migration)", err)
	}
	writer.Rollback(ctx)

	holder.Rollback(ctx)
	if err := <-done; err != nil {
		t.Fatalf("the migration, once the table is free: %v", err)
	}
	var n int
	if err := connect().QueryRow(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = 12`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("migration 12 recorded %d times (%v), want once", n, err)
	}
}

// recordHandler passes the warnings logged to a channel, dropping those
// it has no room for.
type recordHandler struct{ records chan slog.Record }

func (h recordHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h.records <- r:
	default:
	}
	return nil
}
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordHandler) WithGroup(string) slog.Handler      { return h }

// A migration that fails partway leaves the catalog as the migration
// before it left it, untouched by the statements that ran before the one
// that failed, and the error names the migration.
func TestFailedMigrationLeavesThePreviousSchema(t *testing.T) {
	ctx := context.Background()
	url := catalogtest.PostgresURL(t)
	if err := pgstore.Migrate(ctx, url, pgstore.Options{}); err != nil {
		t.Fatal(err)
	}
	latest := pgstore.LatestMigration()
	name := fmt.Sprintf("%04d_fails.sql", latest+1)
	err := pgstore.MigrateWith(ctx, url, latest+1, name,
		`CREATE TABLE half_made (x INTEGER); ALTER TABLE targets ADD COLUMN half_made TEXT; INSERT INTO missing VALUES (1);`)
	if err == nil || !strings.Contains(err.Error(), "migration "+name+": ") {
		t.Fatalf("a failing migration: %v, want an error naming migration %s", err, name)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var version, tables, cols int
	if err := conn.QueryRow(ctx, `SELECT
		(SELECT MAX(version) FROM schema_migrations),
		(SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'half_made'),
		(SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'targets' AND column_name = 'half_made')`).
		Scan(&version, &tables, &cols); err != nil {
		t.Fatal(err)
	}
	if version != latest || tables != 0 || cols != 0 {
		t.Errorf("after the failed migration: schema %d, table made %d times, column added %d times; want schema %d, neither", version, tables, cols, latest)
	}
}
