package e2e_test

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/master"
	"github.com/musterhq/muster/internal/pki"
	"github.com/musterhq/muster/internal/testenv"
)

// A master's SQLite catalog copied into PostgreSQL: the master comes back
// on it at the same address, and its targets carry on, neither enlisting
// again nor resyncing, their history and sequence numbers intact.
func TestStoreMigrateCarriesTargetsOn(t *testing.T) {
	url := catalogtest.PostgresURL(t)
	secret := catalogtest.SecretFile(t)
	var store string
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}, Master: func(c *master.Config) {
		c.Store, c.SecretFile = store, secret
	}})
	ctx := context.Background()
	apply(t, env, shellJob("hello", "echo hello", "web1"))
	settled(t, env)
	before := startAndWait(t, env, "hello")
	if before[0].Status != muster.RunSucceeded {
		t.Fatalf("run on SQLite: %s", before[0].Status)
	}
	// A rollout, which muster rollout list shows after the move as before.
	started, err := env.Client.StartJob(ctx, "hello", httpapi.StartBody{Rollout: &muster.RolloutSpec{Batch: "1"}})
	if err != nil || started.Rollout == nil {
		t.Fatalf("start in waves: %+v, %v", started, err)
	}
	testenv.Eventually(t, wait, "the rollout done", func() bool {
		r, err := env.Client.Rollout(ctx, "hello", started.Rollout.ID)
		return err == nil && r.State == muster.RolloutDone
	})
	epoch := env.Master.Catalog.Epoch()
	target, err := env.Client.Target(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}

	addr := env.Master.URL
	env.StopMaster()
	m, err := master.MigrateStore(ctx, "sqlite:"+filepath.Join(env.Dir, "master", master.CatalogFile), url, secret, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"targets", "jobs", "runs", "instructions", "certs", "api_tokens", "audit", "audit_subjects"} {
		if m.Rows[table] == 0 {
			t.Errorf("table %s: no rows copied", table)
		}
	}
	if _, err := master.MigrateStore(ctx, "sqlite:"+filepath.Join(env.Dir, "master", master.CatalogFile), url, secret, ""); muster.ErrorCode(err) != muster.EPRECONDITION {
		t.Fatalf("a second migration into the same catalog: %v, want refused as not empty", err)
	}

	store = url
	env.StartMaster(addr[len("https://"):])
	if got := env.Master.Catalog.Epoch(); got != epoch {
		t.Fatalf("epoch %s after the migration, want %s: targets would resync", got, epoch)
	}
	if env.Master.CreatedCA {
		t.Fatal("the master made a new CA on the copied catalog")
	}
	after := startAndWait(t, env, "hello")
	if after[0].Status != muster.RunSucceeded {
		t.Fatalf("run on PostgreSQL: %s %q", after[0].Status, after[0].Message)
	}
	runs, err := env.Client.History(ctx, "hello", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 {
		t.Fatalf("history holds %d runs, want the two before the migration and the one after", len(runs))
	}
	rollouts, err := env.Client.Rollouts(ctx, "hello")
	if err != nil || len(rollouts) != 1 || rollouts[0].ID != started.Rollout.ID || rollouts[0].State != muster.RolloutDone || rollouts[0].Succeeded != 1 {
		t.Errorf("the rollouts of job hello after the migration: %+v, %v; want rollout %d, done, its run succeeded", rollouts, err, started.Rollout.ID)
	}
	if entries, err := env.Client.Audit(ctx, httpapi.AuditFilter{Job: "hello"}); err != nil || len(entries) == 0 || entries[len(entries)-1].Action != muster.AuditJobCreate {
		t.Errorf("the audit log of job hello after the migration: %+v, %v; want its creation first", entries, err)
	}
	moved, err := env.Client.Target(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if !moved.EnlistedAt.Equal(target.EnlistedAt) {
		t.Errorf("web1 enlisted at %s after the migration, %s before", moved.EnlistedAt, target.EnlistedAt)
	}
}

// Two masters on one new PostgreSQL catalog share one CA; a job started
// through either runs on a target polling the other; a START posted on one
// wakes the poll the other holds.
func TestTwoMastersShareOneCatalog(t *testing.T) {
	url := catalogtest.PostgresURL(t)
	secret := catalogtest.SecretFile(t)
	shared := func(c *master.Config) { c.Store, c.SecretFile = url, secret }
	one := testenv.New(t, testenv.Options{Targets: []string{"web1"}, Master: shared})
	two := testenv.Join(t, one, shared)

	ca1, err := os.ReadFile(filepath.Join(one.Dir, "master", pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	ca2, err := os.ReadFile(filepath.Join(two.Dir, "master", pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca1, ca2) {
		t.Fatal("the two masters' ca.pem differ")
	}
	if !one.Master.CreatedCA || two.Master.CreatedCA {
		t.Fatalf("CA created by master 1: %v, by master 2: %v; want by the first only", one.Master.CreatedCA, two.Master.CreatedCA)
	}
	if _, err := os.Stat(filepath.Join(two.Dir, "master", master.AdminTokenFile)); !os.IsNotExist(err) {
		t.Fatalf("the joining master wrote an admin token: %v", err)
	}

	// web1 polls master 1; a job applied and started through master 2 runs
	// there at once, woken through the catalog's notifications.
	apply(t, two, shellJob("hello", "echo hello from $MUSTER_TARGET", "web1"))
	settled(t, one)
	runs := startAndWait(t, two, "hello")
	if runs[0].Status != muster.RunSucceeded || runs[0].Target != "web1" {
		t.Fatalf("run through master 2: %+v", runs[0])
	}
	if out := runs[0].Steps[0].Output; out != "hello from web1\n" {
		t.Fatalf("output %q", out)
	}
	// Both masters see the same history.
	for _, env := range []*testenv.Env{one, two} {
		got, err := env.Client.History(context.Background(), "hello", "", 10)
		if err != nil || len(got) != 1 {
			t.Fatalf("history on %s: %d runs, %v", env.Master.URL, len(got), err)
		}
	}
}

// A master alone on its PostgreSQL catalog tells no one of its commits
// (only its own listener would hear them); once a second master serves
// the catalog, it tells it of them again. A listener on the catalog shows
// which: notifications arrive in commit order, so a commit heard of
// after the master's says whether the master's was sent.
func TestLoneMasterNotifiesOnlyOnceAnotherJoins(t *testing.T) {
	url := catalogtest.PostgresURL(t)
	secret := catalogtest.SecretFile(t)
	shared := func(c *master.Config) { c.Store, c.SecretFile = url, secret }
	one := testenv.New(t, testenv.Options{Targets: []string{"web1"}, Master: shared})
	apply(t, one, shellJob("hello", "true", "web1"))
	ctx, cancel := context.WithCancel(context.Background())
	web1, err := one.Master.Catalog.TargetID(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}

	listener, other := catalogtest.OpenPostgres(t, url), catalogtest.OpenPostgres(t, url)
	var mu sync.Mutex
	var heard []int64 // the targets of each commit heard, in order
	arrived := make(chan struct{}, 1)
	listening := make(chan struct{})
	go func() {
		defer close(listening)
		listener.Listen(ctx, func(c catalog.Commit, missed bool) {
			mu.Lock()
			heard = append(heard, c.Targets...)
			mu.Unlock()
			select {
			case arrived <- struct{}{}:
			default:
			}
		})
	}()
	defer func() { cancel(); <-listening }()
	// mark commits a notification naming target id on the other store,
	// and waits until the listener hears it; it returns the targets heard
	// since the mark before.
	var marks int64
	mark := func() []int64 {
		t.Helper()
		marks++
		id := -marks
		deadline := time.After(10 * time.Second)
		for {
			if err := other.Update(ctx, func(tx catalog.Tx) error { return tx.Notify(ctx, catalog.Commit{Targets: []int64{id}}) }); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			i := slices.Index(heard, id)
			var since []int64
			if i >= 0 {
				since = slices.Clone(heard[:i])
				heard = slices.Clone(heard[i+1:])
			}
			mu.Unlock()
			if i >= 0 {
				return since
			}
			select {
			case <-arrived:
			case <-time.After(100 * time.Millisecond):
			case <-deadline:
				t.Fatalf("the listener did not hear mark %d", id)
			}
		}
	}
	mark() // the listener listens

	// startHeard starts the job through master one and reports whether the
	// listener heard of it.
	startHeard := func() bool {
		t.Helper()
		if _, err := one.Client.StartJob(ctx, "hello", httpapi.StartBody{}); err != nil {
			t.Fatal(err)
		}
		return slices.Contains(mark(), web1)
	}
	// Alone from its first check of the catalog's masters on.
	tries := 0
	for deadline := time.Now().Add(10 * time.Second); startHeard(); tries++ {
		if time.Now().After(deadline) {
			t.Fatalf("master one, alone, still notified after %d starts", tries+1)
		}
	}
	testenv.Join(t, one, shared)
	tries = 0
	for deadline := time.Now().Add(10 * time.Second); !startHeard(); tries++ {
		if time.Now().After(deadline) {
			t.Fatalf("master one did not notify with a second master serving, after %d starts", tries+1)
		}
	}
}

// readyz returns what the master's /readyz answers.
func readyz(t *testing.T, env *testenv.Env) (int, string) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: pki.ClientTLSConfig(env.Master.CA.Pool(), nil)}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 15 * time.Second}).Get(env.Master.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A master whose database goes away answers 503, saying why, rather than
// acknowledging what it could not commit; it serves again once the
// database is back.
func TestMasterWithoutItsDatabase(t *testing.T) {
	cluster := catalogtest.NewCluster(t)
	secret := catalogtest.SecretFile(t)
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}, Master: func(c *master.Config) {
		c.Store, c.SecretFile = cluster.URL, secret
	}})
	ctx := context.Background()
	apply(t, env, shellJob("hello", "echo hello", "web1"))
	settled(t, env)
	if code, body := readyz(t, env); code != http.StatusOK {
		t.Fatalf("/readyz with the database up: %d %q", code, body)
	}

	cluster.Stop()
	_, err := env.Client.StartJob(ctx, "hello", httpapi.StartBody{})
	if code := muster.ErrorCode(err); code != muster.EUNAVAILABLE {
		t.Fatalf("start with the database down: code %q (%v), want %q", code, err, muster.EUNAVAILABLE)
	}
	if !strings.Contains(err.Error(), "catalog database") {
		t.Errorf("the refusal does not say the catalog database is the cause: %v", err)
	}
	if _, err := env.Client.Targets(ctx, ""); muster.ErrorCode(err) != muster.EUNAVAILABLE {
		t.Fatalf("target list with the database down: %v, want unavailable", err)
	}
	code, body := readyz(t, env)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "catalog database") {
		t.Fatalf("/readyz with the database down: %d %q, want 503 naming the catalog database", code, body)
	}

	cluster.Start()
	testenv.Eventually(t, wait, "/readyz ready again", func() bool {
		code, _ := readyz(t, env)
		return code == http.StatusOK
	})
	runs := startAndWait(t, env, "hello")
	if runs[0].Status != muster.RunSucceeded {
		t.Fatalf("run after the database came back: %s %q", runs[0].Status, runs[0].Message)
	}
}

// Every table of a SQLite catalog is copied whole into PostgreSQL: a
// rollout, its targets, console sessions and login links as much as jobs
// and runs. Each table holds as many rows after the copy as before (meta
// gains the CA, which a SQLite master keeps in files).
func TestStoreMigrateCopiesEveryTable(t *testing.T) {
	url := catalogtest.PostgresURL(t)
	secret := catalogtest.SecretFile(t)
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	ctx := context.Background()
	apply(t, env, shellJob("hello", "echo hello", "web1"))
	settled(t, env)
	res, err := env.Client.StartJob(ctx, "hello", httpapi.StartBody{Rollout: &muster.RolloutSpec{Batch: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rollout == nil {
		t.Fatalf("started %+v, want a rollout", res)
	}
	if _, err := env.Client.CreateLoginLink(ctx, httpapi.LoginLinkRequest{}); err != nil {
		t.Fatal(err)
	}
	rollouts, err := env.Client.Rollouts(ctx, "hello")
	if err != nil || len(rollouts) != 1 {
		t.Fatalf("rollouts before the migration: %+v, %v", rollouts, err)
	}
	env.StopMaster()

	path := filepath.Join(env.Dir, "master", master.CatalogFile)
	if _, err := master.MigrateStore(ctx, "sqlite:"+path, url, secret, ""); err != nil {
		t.Fatal(err)
	}
	src, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close(ctx)
	rows, err := src.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	for _, table := range tables {
		var before, after int
		if err := src.QueryRowContext(ctx, `SELECT COUNT(*) FROM "`+table+`"`).Scan(&before); err != nil {
			t.Fatal(err)
		}
		if err := dst.QueryRow(ctx, `SELECT COUNT(*) FROM `+pgx.Identifier{table}.Sanitize()).Scan(&after); err != nil {
			t.Errorf("table %s: %v", table, err)
			continue
		}
		if after != before && !(table == "meta" && after > before) { // meta gains the CA
			t.Errorf("table %s: %d rows in PostgreSQL, %d in SQLite", table, after, before)
		}
	}
	for _, table := range []string{"rollouts", "rollout_targets", "console_links"} {
		if !slices.Contains(tables, table) {
			t.Errorf("the SQLite catalog has no table %s", table)
		}
	}
}

// A PostgreSQL catalog a master has already started on holds no targets or
// jobs, but its own admin key, audit log and master: the copy refuses it
// as not empty, naming what it holds, rather than failing on a clash of
// ids or mixing the two catalogs.
func TestStoreMigrateRefusesACatalogAMasterStartedOn(t *testing.T) {
	url := catalogtest.PostgresURL(t)
	secret := catalogtest.SecretFile(t)
	pg := testenv.New(t, testenv.Options{Master: func(c *master.Config) { c.Store, c.SecretFile = url, secret }})
	pg.StopMaster()
	env := testenv.New(t, testenv.Options{})
	env.StopMaster()
	_, err := master.MigrateStore(context.Background(), "sqlite:"+filepath.Join(env.Dir, "master", master.CatalogFile), url, secret, "")
	if muster.ErrorCode(err) != muster.EPRECONDITION || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("migrating into a catalog a master started on: %v, want refused as not empty", err)
	}
}
