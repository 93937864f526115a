package sqlitestore

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/migration/migrationtest"
)

// A catalog made before migration 0018 keeps its audit entries' subjects
// when the table holding them is rebuilt without a rowid, and finds its
// entries by them as before.
func TestAuditSubjectsKeptByMigration0018(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "catalog.db")
	write, read := migratedBefore(t, file, "0018")
	for _, q := range []string{
		`INSERT INTO audit (id, at, actor, actor_kind, action) VALUES (7, 1000, 'ops', 'key', 'job.start')`,
		`INSERT INTO audit_subjects (audit_id, kind, name) VALUES (7, 'job', 'backup'), (7, 'target', 'db1'), (7, 'target', 'db2')`,
	} {
		if _, err := write.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	write.Close()
	read.Close()

	s, err := Open(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var sql string
	if err := s.read.QueryRowContext(ctx, `SELECT sql FROM sqlite_schema WHERE name = 'audit_subjects'`).Scan(&sql); err != nil {
		t.Fatal(err)
	}
	if want := "WITHOUT ROWID"; !strings.Contains(sql, want) {
		t.Errorf("audit_subjects is %q, want a table %s", sql, want)
	}
	for _, f := range []catalog.AuditFilter{{Job: "backup"}, {Target: "db2"}} {
		got, err := s.FindAudit(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].ID != 7 || !slices.Equal(got[0].Jobs, []string{"backup"}) || !slices.Equal(got[0].Targets, []string{"db1", "db2"}) {
			t.Errorf("FindAudit(%+v) = %+v, want entry 7 on job backup and targets db1, db2", f, got)
		}
	}
}

// migratedBefore opens a new catalog at file (write and read handles, as
// Open makes them) with the migrations before the one numbered version
// applied, the way a catalog of an older muster is.
func migratedBefore(t *testing.T, file, version string) (write, read *sql.DB) {
	t.Helper()
	v, err := strconv.Atoi(version)
	if err != nil {
		t.Fatal(err)
	}
	return migrationtest.OpenBefore(t, file, "NORMAL", migrations, "migrations", v)
}

// Tables, which muster store migrate copies into PostgreSQL, names every
// table of the catalog but those a move leaves behind on purpose, so that a
// table added by a migration is not silently lost by the next move (a
// rollout under way, its waves and their runs).
func TestTablesNameEveryTable(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	notCopied := []string{
		"schema_migrations", // the PostgreSQL catalog has its own
	}
	rows, err := s.read.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(Tables, name) && !slices.Contains(notCopied, name) {
			t.Errorf("table %s is not in Tables: muster store migrate would not copy it", name)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// Every migration of the catalog applies to a catalog with rows in each of
// its tables, as one a master has used for a while has, and keeps them.
func TestMigrationsApplyToAFilledCatalog(t *testing.T) {
	migrationtest.Stepwise(t, filepath.Join(t.TempDir(), "catalog.db"), "NORMAL", migrations, "migrations")
}
