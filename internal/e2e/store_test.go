package e2e_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
	"github.com/musterhq/muster/internal/catalog/sqlitestore"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/master"
	"github.com/musterhq/muster/internal/pki"
	"github.com/musterhq/muster/internal/sqlite"
	"github.com/musterhq/muster/internal/testdb"
	"github.com/musterhq/muster/internal/testenv"
)

// A catalog holding one of everything a master keeps survives a backup and
// its restore, and a move into PostgreSQL, whole: every row of every
// table, every column of it, as it was (but the epoch a restore renews,
// and the CA a move adds). The fixture fills every table of the schema,
// and the tables are read from the schema, so a table added later must be
// filled here, and is then checked to survive both.
func TestBackupRestoreAndMigrateKeepEveryRow(t *testing.T) {
	pgURL := catalogtest.PostgresURL(t)
	secret := catalogtest.SecretFile(t)
	var store string
	env := testenv.New(t, testenv.Options{Targets: []string{"web1", "web2"}, Master: func(c *master.Config) {
		fastAlerts(c)
		c.Store, c.SecretFile = store, secret
	}})
	ctx := context.Background()
	fillEveryTable(t, env)

	addr := env.Master.URL
	env.StopMaster()
	path := filepath.Join(env.Dir, "master", master.CatalogFile)
	before := dumpSQLite(t, path)
	for table, rows := range before {
		// The masters sharing a PostgreSQL catalog list themselves there;
		// a master on SQLite is alone, and lists none.
		if len(rows) == 0 && table != "masters" {
			t.Errorf("table %s: the fixture leaves it empty; fill it, so that a backup and a move are seen to keep it", table)
		}
	}

	backup := filepath.Join(t.TempDir(), "backup.db")
	if _, err := sqlitestore.Backup(ctx, path, backup, time.Now()); err != nil {
		t.Fatal(err)
	}
	restored := filepath.Join(t.TempDir(), "catalog.db")
	if _, _, err := sqlitestore.Restore(ctx, backup, restored, time.Now()); err != nil {
		t.Fatal(err)
	}
	after := dumpSQLite(t, restored)
	// A restore renews the epoch, and the backup says when it was taken.
	renewed := func(row []string) bool {
		return slices.Contains([]string{`"epoch"`, `"backup_taken_at"`}, row[0])
	}
	compareTables(t, "backup and restore", before, after, renewed)

	if _, err := master.MigrateStore(ctx, "sqlite:"+path, pgURL, secret, ""); err != nil {
		t.Fatal(err)
	}
	moved := dumpPostgres(t, pgURL, before)
	// A move adds the CA, which a SQLite master keeps in files.
	added := func(row []string) bool { return strings.HasPrefix(row[0], `"ca_`) }
	compareTables(t, "a move into PostgreSQL", before, moved, added)

	// The targets carry on with the master on PostgreSQL, neither
	// enlisting again nor resyncing: web1 runs a job, and web2, stopped,
	// still has its instruction pending.
	store = pgURL
	env.StartMaster(addr[len("https://"):])
	runs := startAndWait(t, env, "hello", "web1")
	if runs[0].Status != muster.RunSucceeded {
		t.Errorf("hello on web1 after the move: %s %q", runs[0].Status, runs[0].Message)
	}
	pending, err := env.Client.DownloadList(ctx, httpapi.DownloadListFilter{Target: "web2", Pending: true})
	if err != nil || len(pending) == 0 {
		t.Errorf("web2's pending instructions after the move: %+v, %v; want those posted before it", pending, err)
	}
}

// fillEveryTable gives the catalog of env's master one of everything: a
// group, jobs with schedules, an override and a no_success watch, runs
// with output (finished, failed and running), a start by idempotency key,
// one held back by max_parallel_targets, a rollout, events, an operator
// with a webhook secret, alerts with a delivery, API keys with scopes, an
// enlistment token used, one revoked and one outstanding, a login link
// used and one not, and instructions acknowledged and pending.
func fillEveryTable(t *testing.T, env *testenv.Env) {
	t.Helper()
	ctx := context.Background()
	c := env.Client
	webhookOperator(t, env, "oncall")
	if err := c.CreateGroup(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GroupMembers(ctx, "web", []string{"web1"}, false); err != nil {
		t.Fatal(err)
	}
	hello := shellJob("hello", "echo hello", "web1")
	hello.Groups = []string{"web"}
	hello.Schedules = []muster.Schedule{{Name: "new-year", Cron: "0 0 1 1 *"}}
	hello.Overrides = []muster.Override{{Target: "web1", Env: map[string]string{"GREETING": "hi"}}}
	broken := shellJob("broken", "echo no; exit 3", "web1")
	slow := shellJob("slow", "sleep 600", "web1", "web2")
	slow.MaxParallelTargets = 1
	apply(t, env, hello, broken, slow)
	settled(t, env)
	createAlert(t, env, httpapi.AlertRequest{Name: "broken-failed", Event: muster.EventRunFailed, Job: "broken", Notify: []string{"oncall"}})
	createAlert(t, env, httpapi.AlertRequest{Name: "hello-stale", Event: muster.EventNoSuccess, Job: "hello",
		Window: muster.Duration(24 * time.Hour), Notify: []string{"oncall"}})

	if _, err := c.StartJob(ctx, "hello", httpapi.StartBody{IdempotencyKey: "k-1", Env: map[string]string{"X": "1"}}); err != nil {
		t.Fatal(err)
	}
	startAndWait(t, env, "broken")
	testenv.Eventually(t, wait, "the failure notified", func() bool {
		h, err := c.AlertHistory(ctx, httpapi.AlertHistoryFilter{Alert: "broken-failed"})
		return err == nil && len(h) > 0 && h[0].Status == muster.DeliveryDelivered
	})
	res, err := c.StartJob(ctx, "hello", httpapi.StartBody{Rollout: &muster.RolloutSpec{Batch: "1"}})
	if err != nil || res.Rollout == nil {
		t.Fatalf("start in waves: %+v, %v", res, err)
	}
	testenv.Eventually(t, wait, "the rollout done", func() bool {
		r, err := c.Rollout(ctx, "hello", res.Rollout.ID)
		return err == nil && r.State == muster.RolloutDone
	})
	if _, err := c.StartJob(ctx, "slow", httpapi.StartBody{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, "slow running on one target", func() bool {
		runs, err := c.History(ctx, "slow", "", 10)
		return err == nil && len(runs) == 1 && runs[0].Status == muster.RunRunning
	})

	if _, err := c.CreateAPIKey(ctx, httpapi.KeyRequest{Name: "web-team", Role: "operator", Scopes: []string{"group:web", "job:hello*"}, TTLSeconds: 86400}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateAPIKey(ctx, httpapi.KeyRequest{Name: "gone", Role: "reader"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RevokeAPIKey(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateToken(ctx, "web3", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateToken(ctx, "web4", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RevokeTargetEnlistTokens(ctx, "web4"); err != nil {
		t.Fatal(err)
	}
	link, err := c.CreateLoginLink(ctx, httpapi.LoginLinkRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateLoginLink(ctx, httpapi.LoginLinkRequest{}); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(link.Path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := env.Master.Catalog.OpenLoginLink(ctx, pki.HashSecret(u.Query().Get("secret")), pki.HashSecret(pki.RandomSecret()), "127.0.0.1"); err != nil {
		t.Fatal(err)
	}

	// web2 stopped: the job's change waits for it in its download list.
	env.Target("web2").Stop(t)
	hello.Targets = []string{"web1", "web2"}
	apply(t, env, hello)
}

// dumpSQLite returns the rows of every table of the SQLite catalog at path
// (but schema_migrations), each row its columns in the table's order, as
// rowKey writes them, the rows sorted.
func dumpSQLite(t *testing.T, path string) map[string][][]string {
	t.Helper()
	db, err := sql.Open("sqlite", sqlite.URI(path, url.Values{"mode": {"ro"}}))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tables := testdb.Column(t, db, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'`)
	dump := map[string][][]string{}
	for _, table := range tables {
		rows, err := db.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		dump[table] = [][]string{}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			dump[table] = append(dump[table], rowKey(cols, vals))
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		sortRows(dump[table])
	}
	return dump
}

// dumpPostgres returns the rows of the tables of like from the PostgreSQL
// catalog at url, each row its columns in the order and form dumpSQLite
// gives them.
func dumpPostgres(t *testing.T, url string, like map[string][][]string) map[string][][]string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	dump := map[string][][]string{}
	for table, sqliteRows := range like {
		var cols []string
		for _, row := range sqliteRows[:min(1, len(sqliteRows))] {
			for _, cell := range row[1:] {
				cols = append(cols, pgx.Identifier{cell[:strings.Index(cell, "=")]}.Sanitize())
			}
		}
		q := `SELECT * FROM ` + pgx.Identifier{table}.Sanitize()
		if len(cols) > 0 {
			q = `SELECT ` + strings.Join(cols, ", ") + ` FROM ` + pgx.Identifier{table}.Sanitize()
		}
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Errorf("table %s in PostgreSQL: %v", table, err)
			continue
		}
		var names []string
		for _, f := range rows.FieldDescriptions() {
			names = append(names, f.Name)
		}
		dump[table] = [][]string{}
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			dump[table] = append(dump[table], rowKey(names, vals))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		sortRows(dump[table])
	}
	return dump
}

// rowKey writes each value of a row as column=value, in one form for
// both engines: integers and flags as numbers (PostgreSQL's booleans are
// SQLite's 0 and 1), text and bytes quoted, NULL as NULL. Its first
// element is the first column's value alone, which names a meta row.
func rowKey(cols []string, vals []any) []string {
	out := make([]string, len(vals))
	for i, v := range vals {
		var s string
		switch x := v.(type) {
		case nil:
			s = "NULL"
		case bool:
			s = "0"
			if x {
				s = "1"
			}
		case int64, int32, int16, int:
			s = fmt.Sprint(x)
		case string:
			s = fmt.Sprintf("%q", x)
		case []byte:
			s = fmt.Sprintf("%q", x)
		default:
			s = fmt.Sprintf("%T(%v)", x, x)
		}
		out[i] = cols[i] + "=" + s
	}
	if len(out) > 0 {
		out = append([]string{out[0][strings.Index(out[0], "=")+1:]}, out...)
	}
	return out
}

func sortRows(rows [][]string) {
	slices.SortFunc(rows, func(a, b []string) int { return slices.Compare(a, b) })
}

// compareTables reports each table of want whose rows got does not hold
// alike, but rows of meta that skip says may differ.
func compareTables(t *testing.T, what string, want, got map[string][][]string, skip func(row []string) bool) {
	t.Helper()
	n := 0
	for table, wantRows := range want {
		gotRows, ok := got[table]
		if !ok {
			t.Errorf("%s: table %s is gone", what, table)
			continue
		}
		if table == "meta" {
			wantRows = slices.DeleteFunc(slices.Clone(wantRows), skip)
			gotRows = slices.DeleteFunc(slices.Clone(gotRows), skip)
		}
		if !slices.EqualFunc(wantRows, gotRows, slices.Equal) {
			t.Errorf("%s: table %s holds\n%q\nwant\n%q", what, table, gotRows, wantRows)
		}
		n++
	}
	if n != len(want) || n == 0 {
		t.Errorf("%s: compared %d tables of %d", what, n, len(want))
	}
}

// renewedSinceBackup starts a master whose certificates last an hour and
// web1 on it, backs the catalog up, and has web1 renew its certificate
// after: the environment, the catalog's path, the backup's, and the clocks
// of the master and of web1.
func renewedSinceBackup(t *testing.T) (env *testenv.Env, path, backup string, masterClock, targetClock *testenv.Clock) {
	t.Helper()
	masterClock, targetClock = &testenv.Clock{}, &testenv.Clock{}
	// web1 enlists 41 minutes of its certificate's 60 before the time the
	// master's clock then goes on from, and is backed up so.
	masterClock.Advance(-41 * time.Minute)
	env = clockedWeb1(t, masterClock, targetClock)
	ctx := context.Background()
	masterClock.Advance(41 * time.Minute)
	first, _ := leafOf(t, env, "web1")
	path = filepath.Join(env.Dir, "master", master.CatalogFile)
	backup = filepath.Join(t.TempDir(), "backup.db")
	if _, err := sqlitestore.Backup(ctx, path, backup, time.Now()); err != nil {
		t.Fatal(err)
	}
	// Started, web1 renews its certificate at once: two thirds of its
	// life are gone.
	env.StartTarget("web1")
	renewed(t, env, first)
	apply(t, env, shellJob("before", "true", "web1"))
	settled(t, env)
	return env, path, backup, masterClock, targetClock
}

// restoredRuns restores backup in place of the catalog at path, starts the
// master again, and checks that web1 takes and runs a new job.
func restoredRuns(t *testing.T, env *testenv.Env, path, backup string) {
	t.Helper()
	if _, _, err := sqlitestore.Restore(context.Background(), backup, path, time.Now()); err != nil {
		t.Fatal(err)
	}
	env.RestartMaster()
	apply(t, env, shellJob("after", "true", "web1"))
	settled(t, env)
	if runs := startAndWait(t, env, "after"); runs[0].Status != muster.RunSucceeded {
		t.Errorf("run after the restore: %s %q", runs[0].Status, runs[0].Message)
	}
}

// A target whose certificate was renewed after the backup was taken is
// still served once the backup is restored: the restored catalog does not
// know the certificate, which the master's own CA issued to a target it
// holds as enlisted, and targets renew every two thirds of a day, so
// without this a backup older than that would lock the whole fleet out.
func TestRestoredCatalogServesTargetsThatRenewedSince(t *testing.T) {
	env, path, backup, _, _ := renewedSinceBackup(t)
	env.StopMaster()
	restoredRuns(t, env, path, backup)
}

// So is one whose renewed certificate expired meanwhile, the master having
// been down longer than a certificate lives: it renews by proof of
// possession of the certificate's key, which the restored catalog never
// held either. (The clocks go from three hours back to the real time, which
// the TLS layer checks certificates against.)
func TestRestoredCatalogRenewsAnExpiredCertificateRenewedSince(t *testing.T) {
	masterClock, targetClock := &testenv.Clock{}, &testenv.Clock{}
	masterClock.Advance(-3 * time.Hour)
	targetClock.Advance(-90 * time.Minute)
	env := clockedWeb1(t, masterClock, targetClock)
	ctx := context.Background()
	first, _ := leafOf(t, env, "web1") // issued three hours back, for one
	path := filepath.Join(env.Dir, "master", master.CatalogFile)
	backup := filepath.Join(t.TempDir(), "backup.db")
	if _, err := sqlitestore.Backup(ctx, path, backup, time.Now()); err != nil {
		t.Fatal(err)
	}
	// Two hours back, web1 renews the certificate it holds expired, by
	// proof of possession; the new one expires an hour back.
	masterClock.Advance(time.Hour)
	env.StartTarget("web1")
	renewed(t, env, first)
	env.StopMaster()
	env.Target("web1").Stop(t)

	masterClock.Advance(2 * time.Hour)
	targetClock.Advance(90 * time.Minute)
	env.StartTarget("web1")
	restoredRuns(t, env, path, backup)
}
