package pgstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
	"github.com/musterhq/muster/internal/catalog/pgstore"
)

// A catalog left at each earlier migration, with a target, a job, its
// instructions, a run with output and a key, keeps them all through the
// migrations since: ids, sequence numbers and times as they were.
func TestOlderCatalogUpgrades(t *testing.T) {
	ctx := context.Background()
	job := muster.NewJob()
	job.Name, job.Steps = "backup", []muster.Step{{Name: "main", Shell: "true"}}
	def, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	const at = int64(1_700_000_000_000)
	for _, level := range []string{"0002", "0006", "0009", "0010", "0011", "0012"} {
		t.Run("before "+level, func(t *testing.T) {
			url := catalogtest.PostgresURL(t)
			if err := pgstore.MigrateBefore(ctx, url, level); err != nil {
				t.Fatal(err)
			}
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{`INSERT INTO meta (key, value) VALUES ('epoch', 'e1')`, nil},
				{`INSERT INTO targets (id, uid, name, enlisted_at, last_seq) VALUES (7, 'u7', 'db1', $1, 3)`, []any{at}},
				{`INSERT INTO certs (serial, target_id, issued_at, not_after) VALUES ('s1', 7, $1, $2)`, []any{at, at + 86_400_000}},
				{`INSERT INTO api_tokens (id, name, role, hash, created_at) VALUES (4, 'admin', 'admin', 'h4', $1)`, []any{at}},
				{`INSERT INTO jobs (id, name, version, definition, created_at, updated_at) VALUES (9, 'backup', 2, $1, $2, $2)`, []any{string(def), at}},
				{`INSERT INTO job_targets (job_id, target_id, last_run_id, last_status, last_started_at, last_duration_ms) VALUES (9, 7, 'r1', 'succeeded', $1, 1500)`, []any{at}},
				{`INSERT INTO sent_jobs (target_id, job_name) VALUES (7, 'backup')`, nil},
				{`INSERT INTO instructions (target_id, seq, operation, job_name, payload, status, posted_at, downloaded_at, run_id) VALUES
					(7, 1, 'INSERT', 'backup', '{}', 'downloaded', $1, $1, ''), (7, 2, 'START', 'backup', '{}', 'downloaded', $1, $1, 'r1'),
					(7, 3, 'UPDATE', 'backup', '{}', 'pending', $1, NULL, '')`, []any{at}},
				{`INSERT INTO runs (id, target_id, run_id, job_name, status, trigger, revision, started_at, finished_at, duration_ms, steps, updated_at)
					VALUES (11, 7, 'r1', 'backup', 'succeeded', 'start', 2, $1, $2, 1500, '[{"name":"main","attempt":1,"status":"succeeded","output":""}]', $2)`, []any{at, at + 1500}},
				{`INSERT INTO run_output (run, attempt, byte_offset, data) VALUES (11, 0, 0, $1)`, []any{[]byte("hello\n")}},
			} {
				if _, err := conn.Exec(ctx, q.sql, q.args...); err != nil {
					t.Fatalf("%s: %v", q.sql, err)
				}
			}

			s := catalogtest.OpenPostgres(t, url)
			r := catalog.Reads(s)
			if target, err := r.FindTargetByName(ctx, "db1"); err != nil || target.ID != 7 || target.LastSeq != 3 || target.EnlistedAt.UnixMilli() != at {
				t.Errorf("target db1: %+v, %v; want id 7, last seq 3, enlisted at %d", target, err, at)
			}
			if jobs, err := r.FindJobs(ctx, catalog.JobQuery{Name: "backup"}); err != nil || len(jobs) != 1 || jobs[0].ID != 9 || jobs[0].Version != 2 || !jobs[0].Enabled {
				t.Errorf("job backup: %+v, %v; want id 9, version 2, enabled", jobs, err)
			}
			if sent, err := r.WasSent(ctx, 7, "backup"); err != nil || !sent {
				t.Errorf("job backup sent to db1: %v, %v; want true", sent, err)
			}
			runs, err := r.FindRuns(ctx, catalog.RunFilter{Job: "backup"})
			if err != nil || len(runs) != 1 || runs[0].RunID != "r1" || runs[0].Status != muster.RunSucceeded || runs[0].StartedAt.UnixMilli() != at {
				t.Errorf("runs of backup: %+v, %v; want r1 succeeded", runs, err)
			}
			if out, err := r.RunOutputs(ctx, []int64{11}); err != nil || len(out) != 1 || string(out[0].Data) != "hello\n" {
				t.Errorf("output of r1: %+v, %v; want hello", out, err)
			}
			if outcomes, err := r.FindOutcomes(ctx); err != nil || len(outcomes) != 1 || outcomes[0].LastRunID != "r1" || outcomes[0].LastStatus != muster.RunSucceeded {
				t.Errorf("last outcomes: %+v, %v; want r1 succeeded", outcomes, err)
			}
			if keys, err := r.FindAPIKeys(ctx, "admin"); err != nil || len(keys) != 1 || keys[0].ID != 4 {
				t.Errorf("key admin: %+v, %v; want id 4", keys, err)
			}
			if pending, err := r.PendingInstructions(ctx, 7, 0, 10); err != nil || len(pending) != 1 || pending[0].Seq != 3 {
				t.Errorf("pending instructions of db1: %+v, %v; want seq 3", pending, err)
			}
			if epoch, ok, err := r.Meta(ctx, "epoch"); err != nil || !ok || epoch != "e1" {
				t.Errorf("epoch %q, %v, %v; want e1", epoch, ok, err)
			}
			var version int
			if err := conn.QueryRow(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&version); err != nil || version != pgstore.LatestMigration() {
				t.Errorf("schema %d, %v; want %d", version, err, pgstore.LatestMigration())
			}
		})
	}
}

// A catalog a newer muster has migrated is refused by an older one, which
// does not know its schema, with a message naming both musters and both
// schemas; the masters already serving it are not told anything. A
// muster records its version in the catalog when it applies a migration.
func TestNewerCatalogIsRefused(t *testing.T) {
	ctx := context.Background()
	url := catalogtest.PostgresURL(t)
	_, conn := openWithConn(t, url)
	var by string
	if err := conn.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'schema_by'`).Scan(&by); err != nil || by != muster.Version {
		t.Errorf("the catalog says it was migrated by %q (%v), want this muster, %s", by, err, muster.Version)
	}
	latest := pgstore.LatestMigration()
	if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, 0)`, latest+1); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ by, want string }{
		{"", fmt.Sprintf("by a newer muster (schema %d; this muster, %s, knows up to %d)", latest+1, muster.Version, latest)},
		{"9.9.9", fmt.Sprintf("by a newer muster (9.9.9, schema %d; this muster, %s, knows up to %d)", latest+1, muster.Version, latest)},
	} {
		if _, err := conn.Exec(ctx, `UPDATE meta SET value = $1 WHERE key = 'schema_by'`, c.by); err != nil {
			t.Fatal(err)
		}
		s, err := pgstore.Open(ctx, url, pgstore.Options{})
		if err == nil {
			s.Close()
		}
		if muster.ErrorCode(err) != muster.EUNSUPPORTED || err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("opening a catalog of schema %d migrated by %q: %v (code %q); want %s, saying %q", latest+1, c.by, err, muster.ErrorCode(err), muster.EUNSUPPORTED, c.want)
		}
	}
}

// Every migration of the catalog applies to a catalog with rows in each of
// its tables, as one masters have used for a while has, and keeps them.
func TestMigrationsApplyToAFilledCatalog(t *testing.T) {
	ctx := context.Background()
	url := catalogtest.PostgresURL(t)
	names, err := pgstore.MigrationNames()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for i, name := range names {
		if i > 0 {
			if err := fillEmpty(ctx, conn); err != nil {
				t.Fatalf("before migration %s: %v", name, err)
			}
		}
		before, err := rowCounts(ctx, conn)
		if err != nil {
			t.Fatal(err)
		}
		through := "9999"
		if i+1 < len(names) {
			through = names[i+1]
		}
		if err := pgstore.MigrateBefore(ctx, url, through); err != nil {
			t.Fatalf("migration %s on a catalog with a row in each table: %v", name, err)
		}
		after, err := rowCounts(ctx, conn)
		if err != nil {
			t.Fatal(err)
		}
		for table, n := range before {
			if m, ok := after[table]; ok && m < n {
				t.Errorf("migration %s: table %s has %d rows, %d before it", name, table, m, n)
			}
		}
	}
	if err := fillEmpty(ctx, conn); err != nil {
		t.Fatalf("after the last migration: %v", err)
	}
}

// fillEmpty inserts a row in each table of the catalog on conn that has
// none (but schema_migrations): every integer column 1 (an id, a
// reference to one), every boolean true, every other column '{}' (text
// that is also a JSON object). Tables are filled in whatever order lets
// each row's references find theirs.
func fillEmpty(ctx context.Context, conn *pgx.Conn) error {
	rows, err := conn.Query(ctx, `SELECT table_name, column_name, data_type FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name <> 'schema_migrations' ORDER BY table_name, ordinal_position`)
	if err != nil {
		return err
	}
	cols := map[string][]string{}
	values := map[string][]any{}
	var tables []string
	for rows.Next() {
		var table, col, typ string
		if err := rows.Scan(&table, &col, &typ); err != nil {
			return err
		}
		if _, ok := cols[table]; !ok {
			tables = append(tables, table)
		}
		cols[table] = append(cols[table], `"`+col+`"`)
		switch typ {
		case "bigint", "integer", "smallint":
			values[table] = append(values[table], int64(1))
		case "boolean":
			values[table] = append(values[table], true)
		case "bytea":
			values[table] = append(values[table], []byte("{}"))
		default:
			values[table] = append(values[table], "{}")
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	counts, err := rowCounts(ctx, conn)
	if err != nil {
		return err
	}
	var empty []string
	for _, table := range tables {
		if counts[table] == 0 {
			empty = append(empty, table)
		}
	}
	for len(empty) > 0 {
		var left []string
		var errs []string
		for _, table := range empty {
			ph := make([]string, len(cols[table]))
			for i := range ph {
				ph[i] = fmt.Sprintf("$%d", i+1)
			}
			q := fmt.Sprintf(`INSERT INTO %q (%s) VALUES (%s)`, table, strings.Join(cols[table], ", "), strings.Join(ph, ", "))
			if _, err := conn.Exec(ctx, q, values[table]...); err != nil {
				left = append(left, table)
				errs = append(errs, fmt.Sprintf("fill %s: %v", table, err))
			}
		}
		if len(left) == len(empty) {
			return fmt.Errorf("%s", strings.Join(errs, "; "))
		}
		empty = left
	}
	return nil
}

// rowCounts returns the number of rows of each table of the catalog on
// conn (but schema_migrations).
func rowCounts(ctx context.Context, conn *pgx.Conn) (map[string]int, error) {
	rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations'`)
	if err != nil {
		return nil, err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, table := range tables {
		var n int
		if err := conn.QueryRow(ctx, fmt.Sprintf(`SELECT COUNT(*) FROM %q`, table)).Scan(&n); err != nil {
			return nil, err
		}
		counts[table] = n
	}
	return counts, nil
}
