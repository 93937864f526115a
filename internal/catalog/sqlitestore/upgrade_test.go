package sqlitestore

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/pgstore"
)

// A catalog made by the first release, with a target, a job, its
// instructions, a run and a key, keeps them all through every migration
// since, and then through a copy into PostgreSQL: ids, sequence numbers
// and times as they were.
func TestFirstReleaseCatalogUpgradesAndCopies(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "catalog.db")
	write, read := migratedBefore(t, file, "0002")
	job := muster.NewJob()
	job.Name, job.Steps = "backup", []muster.Step{{Name: "main", Shell: "true"}}
	def, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	const at = int64(1_700_000_000_000)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO meta (key, value) VALUES ('epoch', 'e1')`, nil},
		{`INSERT INTO targets (id, uid, name, enlisted_at, last_seq) VALUES (7, 'u7', 'db1', ?, 3)`, []any{at}},
		{`INSERT INTO certs (serial, target_id, issued_at, not_after) VALUES ('s1', 7, ?, ?)`, []any{at, at + 86_400_000}},
		{`INSERT INTO api_tokens (id, name, role, hash, created_at) VALUES (4, 'admin', 'admin', 'h4', ?)`, []any{at}},
		{`INSERT INTO jobs (id, name, version, definition, created_at, updated_at) VALUES (9, 'backup', 2, ?, ?, ?)`, []any{string(def), at, at}},
		{`INSERT INTO job_targets (job_id, target_id, last_run_id, last_status, last_started_at, last_duration_ms) VALUES (9, 7, 'r1', 'succeeded', ?, 1500)`, []any{at}},
		{`INSERT INTO instructions (target_id, seq, operation, job_name, payload, status, posted_at, downloaded_at) VALUES
			(7, 1, 'INSERT', 'backup', '{}', 'downloaded', ?, ?), (7, 2, 'START', 'backup', '{}', 'downloaded', ?, ?), (7, 3, 'UPDATE', 'backup', '{}', 'pending', ?, NULL)`,
			[]any{at, at, at, at, at}},
		{`INSERT INTO runs (id, target_id, run_id, job_name, status, trigger, revision, started_at, finished_at, duration_ms, steps, updated_at)
			VALUES (11, 7, 'r1', 'backup', 'succeeded', 'start', 2, ?, ?, 1500, '[]', ?)`, []any{at, at + 1500, at + 1500}},
	} {
		if _, err := write.ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	write.Close()
	read.Close()

	s, err := Open(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check := func(where string, r catalog.Reads) {
		t.Helper()
		target, err := r.FindTargetByName(ctx, "db1")
		if err != nil || target.ID != 7 || target.LastSeq != 3 || target.EnlistedAt.UnixMilli() != at {
			t.Errorf("%s: target db1: %+v, %v; want id 7, last seq 3, enlisted at %d", where, target, err, at)
		}
		jobs, err := r.FindJobs(ctx, catalog.JobQuery{Name: "backup"})
		if err != nil || len(jobs) != 1 || jobs[0].ID != 9 || jobs[0].Version != 2 || !jobs[0].Enabled {
			t.Errorf("%s: job backup: %+v, %v; want id 9, version 2, enabled", where, jobs, err)
		}
		if sent, err := r.WasSent(ctx, 7, "backup"); err != nil || !sent {
			t.Errorf("%s: job backup sent to db1: %v, %v; want true", where, sent, err)
		}
		runs, err := r.FindRuns(ctx, catalog.RunFilter{Job: "backup"})
		if err != nil || len(runs) != 1 || runs[0].RunID != "r1" || runs[0].Status != muster.RunSucceeded || runs[0].StartedAt.UnixMilli() != at {
			t.Errorf("%s: runs of backup: %+v, %v; want r1 succeeded", where, runs, err)
		}
		outcomes, err := r.FindOutcomes(ctx)
		if err != nil || len(outcomes) != 1 || outcomes[0].LastRunID != "r1" || outcomes[0].LastStatus != muster.RunSucceeded {
			t.Errorf("%s: last outcomes: %+v, %v; want r1 succeeded", where, outcomes, err)
		}
		if keys, err := r.FindAPIKeys(ctx, "admin"); err != nil || len(keys) != 1 || keys[0].ID != 4 {
			t.Errorf("%s: key admin: %+v, %v; want id 4", where, keys, err)
		}
		pending, err := r.PendingInstructions(ctx, 7, 0, 10)
		if err != nil || len(pending) != 1 || pending[0].Seq != 3 {
			t.Errorf("%s: pending instructions of db1: %+v, %v; want seq 3", where, pending, err)
		}
		if epoch, ok, err := r.Meta(ctx, "epoch"); err != nil || !ok || epoch != "e1" {
			t.Errorf("%s: epoch %q, %v, %v; want e1", where, epoch, ok, err)
		}
	}
	check("SQLite upgraded", s)

	dsn := os.Getenv("MUSTER_TEST_POSTGRES")
	if dsn == "" {
		dsn = "postgres://root@127.0.0.1:5432/test?sslmode=disable"
	}
	if conn, err := pgx.Connect(ctx, dsn); err != nil {
		if os.Getenv("MUSTER_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("PostgreSQL at %s is required: %v", dsn, err)
		}
		t.Skipf("skipping the copy: no PostgreSQL at %s: %v", dsn, err)
	} else {
		conn.Close(ctx)
	}
	url, drop, err := pgstore.NewSchema(ctx, dsn, "muster_test_")
	if err != nil {
		t.Fatal(err)
	}
	defer drop(context.Background())
	pg, err := pgstore.Open(ctx, url, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	if _, err := pg.Import(ctx, s, Tables, nil); err != nil {
		t.Fatal(err)
	}
	check("PostgreSQL copy", pg)
}

// A catalog a newer muster has migrated is refused by an older one, which
// does not know its schema, with a message naming both schemas; it is left
// as it was.
func TestNewerCatalogIsRefused(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "catalog.db")
	s, err := Open(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	latest := LatestMigration()
	newer := latest + 1
	if _, err := s.write.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)`, newer); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(ctx, file)
	want := fmt.Sprintf("schema %d; this muster knows up to %d", newer, latest)
	if muster.ErrorCode(err) != muster.EUNSUPPORTED || err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), file) {
		t.Fatalf("opening a catalog of schema %d: %v (code %q); want %s, naming the file and %q", newer, err, muster.ErrorCode(err), muster.EUNSUPPORTED, want)
	}
}

// A catalog file that is not a database (overwritten, truncated by a
// failing disk) is refused at open as damaged, saying how to recover,
// rather than as a migration that failed.
func TestDamagedCatalogSaysHowToRecover(t *testing.T) {
	file := filepath.Join(t.TempDir(), "catalog.db")
	if err := os.WriteFile(file, []byte(strings.Repeat("not a database\n", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), file)
	if muster.ErrorCode(err) != muster.EPRECONDITION || !strings.Contains(err.Error(), "muster store restore") || !strings.Contains(err.Error(), file) {
		t.Fatalf("opening a damaged catalog: %v (code %q); want %s naming the file and muster store restore", err, muster.ErrorCode(err), muster.EPRECONDITION)
	}
}
