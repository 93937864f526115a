package pgstore_test

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
	"github.com/musterhq/muster/internal/catalog/pgstore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"))
}

// heard collects what a store's Listen delivers.
type heard struct {
	mu      sync.Mutex
	commits []catalog.Commit
	missed  int
	ch      chan struct{}
}

func (h *heard) add(c catalog.Commit, missed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if missed {
		h.missed++
	} else {
		h.commits = append(h.commits, c)
	}
	select {
	case h.ch <- struct{}{}:
	default:
	}
}

func (h *heard) targets() []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []int64
	for _, c := range h.commits {
		out = append(out, c.Targets...)
	}
	return out
}

// A commit of one master reaches the others (and not itself), split over
// several notifications when it names many targets.
func TestNotifyReachesTheOtherMasters(t *testing.T) {
	url := catalogtest.PostgresURL(t)
	a, b := catalogtest.OpenPostgres(t, url), catalogtest.OpenPostgres(t, url)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	onA, onB := &heard{ch: make(chan struct{}, 1)}, &heard{ch: make(chan struct{}, 1)}
	wg.Add(2)
	go func() { defer wg.Done(); a.Listen(ctx, onA.add) }()
	go func() { defer wg.Done(); b.Listen(ctx, onB.add) }()
	defer func() { cancel(); wg.Wait() }()

	var many []int64
	for i := range 1200 {
		many = append(many, int64(i+1))
	}
	// Listening starts asynchronously: post until b hears, counting tries.
	tries := 0
	for deadline := time.Now().Add(10 * time.Second); len(onB.targets()) == 0; tries++ {
		if time.Now().After(deadline) {
			t.Fatalf("b heard nothing of %d commits", tries)
		}
		if err := a.Update(ctx, func(tx catalog.Tx) error {
			return tx.Notify(ctx, catalog.Commit{Targets: many, Runs: []string{"r"}})
		}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-onB.ch:
		case <-time.After(200 * time.Millisecond):
		}
	}
	// Every target of the last commit arrives, over three notifications.
	deadline := time.Now().Add(5 * time.Second)
	for !containsAll(onB.targets(), many) {
		if time.Now().After(deadline) {
			t.Fatalf("b heard %d of %d targets", len(onB.targets()), len(many))
		}
		select {
		case <-onB.ch:
		case <-time.After(100 * time.Millisecond):
		}
	}
	if got := onA.targets(); len(got) != 0 {
		t.Errorf("a heard %d targets of its own commits", len(got))
	}
	// A rolled-back transaction notifies no one.
	before := len(onB.targets())
	sentinel := errors.New("roll back")
	if err := a.Update(ctx, func(tx catalog.Tx) error {
		if err := tx.Notify(ctx, catalog.Commit{Targets: []int64{99999}}); err != nil {
			return err
		}
		return sentinel
	}); !errors.Is(err, sentinel) {
		t.Fatal(err)
	}
	if err := a.Update(ctx, func(tx catalog.Tx) error { return tx.Notify(ctx, catalog.Commit{Targets: []int64{77777}}) }); err != nil {
		t.Fatal(err)
	}
	for !slices.Contains(onB.targets(), 77777) {
		<-onB.ch
	}
	if slices.Contains(onB.targets()[before:], 99999) {
		t.Error("b heard the targets of a transaction that rolled back")
	}
}

// A master whose listening session ends (the database restarted, or a
// DBA ended it) says it may have missed notifications, so that every held
// poll looks again, and listens again: the commits after it are heard.
func TestListenRecoversAfterItsSessionEnds(t *testing.T) {
	ctx, a, b, onB := bListens(t)
	post := func(id int64) {
		t.Helper()
		if err := a.Update(ctx, func(tx catalog.Tx) error { return tx.Notify(ctx, catalog.Commit{Targets: []int64{id}}) }); err != nil {
			t.Fatal(err)
		}
	}
	hears := func(id int64) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for !slices.Contains(onB.targets(), id) {
			post(id) // listening starts asynchronously
			select {
			case <-onB.ch:
			case <-time.After(100 * time.Millisecond):
			case <-deadline:
				t.Fatalf("b did not hear target %d", id)
			}
		}
	}
	hears(1)
	admin, err := pgx.Connect(ctx, catalogtest.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var ended int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity
		WHERE query LIKE 'LISTEN %' AND strpos(query, $1) > 0) t`, pgstore.Channel(b)).Scan(&ended); err != nil || ended == 0 {
		t.Fatalf("ending the listening session: %d ended, %v", ended, err)
	}
	hears(2)
	onB.mu.Lock()
	missed := onB.missed
	onB.mu.Unlock()
	if missed == 0 {
		t.Error("b listens again without saying it may have missed notifications")
	}
}

// bListens opens two stores on one new catalog, a and b, with b listening
// into onB until the test ends.
func bListens(t *testing.T) (ctx context.Context, a, b *pgstore.Store, onB *heard) {
	url := catalogtest.PostgresURL(t)
	a, b = catalogtest.OpenPostgres(t, url), catalogtest.OpenPostgres(t, url)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	onB = &heard{ch: make(chan struct{}, 1)}
	wg.Add(1)
	go func() { defer wg.Done(); b.Listen(ctx, onB.add) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return ctx, a, b, onB
}

// A store told that no other master serves the catalog notifies no one
// of its commits; told again that others do, it notifies them. The
// notifications of one catalog are delivered in commit order, so the
// commit that b hears last shows that the one before it sent nothing.
func TestAloneNotifiesNoOne(t *testing.T) {
	ctx, a, _, onB := bListens(t)
	post := func(target int64) {
		t.Helper()
		if err := a.Update(ctx, func(tx catalog.Tx) error { return tx.Notify(ctx, catalog.Commit{Targets: []int64{target}}) }); err != nil {
			t.Fatal(err)
		}
	}
	// Listening starts asynchronously: post until b hears, counting tries.
	tries := 0
	for deadline := time.Now().Add(10 * time.Second); len(onB.targets()) == 0; tries++ {
		if time.Now().After(deadline) {
			t.Fatalf("b heard nothing of %d commits", tries)
		}
		post(1)
		select {
		case <-onB.ch:
		case <-time.After(200 * time.Millisecond):
		}
	}

	a.SetPeers(false)
	post(2)
	a.SetPeers(true)
	post(3)
	for !slices.Contains(onB.targets(), 3) {
		<-onB.ch
	}
	if slices.Contains(onB.targets(), 2) {
		t.Error("b heard a commit made while a was told it was alone")
	}
}

func containsAll(have, want []int64) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// Exactly one of two masters holds the duties; when its store closes (as
// when its process dies), the other takes them within a few intervals.
func TestLeaseMovesWhenTheHolderGoes(t *testing.T) {
	url := catalogtest.PostgresURL(t)
	const every = 200 * time.Millisecond
	a, err := pgstore.Open(context.Background(), url, pgstore.Options{LeaseInterval: every})
	if err != nil {
		t.Fatal(err)
	}
	b := catalogtest.OpenPostgres(t, url)
	var mu sync.Mutex
	holding := map[string]bool{}
	both := 0 // times both held at once
	changed := make(chan struct{}, 10)
	lead := func(name string) func(bool) {
		return func(held bool) {
			mu.Lock()
			holding[name] = held
			if holding["a"] && holding["b"] {
				both++
			}
			mu.Unlock()
			changed <- struct{}{}
		}
	}
	holders := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for n, h := range holding {
			if h {
				out = append(out, n)
			}
		}
		slices.Sort(out)
		return out
	}
	ctxA, stopA := context.WithCancel(context.Background())
	ctxB, stopB := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.Lead(ctxA, lead("a")) }()
	defer func() { stopB(); wg.Wait() }()

	waitFor := func(want []string) {
		t.Helper()
		deadline := time.After(20 * every)
		for !slices.Equal(holders(), want) {
			select {
			case <-changed:
			case <-deadline:
				t.Fatalf("holders %v, want %v", holders(), want)
			}
		}
	}
	waitFor([]string{"a"})
	go func() { defer wg.Done(); b.Lead(ctxB, lead("b")) }()
	// a's connection goes away: b takes over.
	stopA()
	a.Close()
	waitFor([]string{"b"})
	mu.Lock()
	defer mu.Unlock()
	if both > 0 {
		t.Errorf("both masters held the duties at once %d times", both)
	}
}

// A master hears that it lost the duties only when its lease's connection
// next answers, which a master frozen past idle_session_timeout, then
// resumed, has not used yet; the database knows at once. HoldsDuties asks
// the database: once the lease's session has ended, it says ErrNotLeader
// before Lead has noticed, and after another master took the duties.
func TestHoldsDutiesAsksTheDatabase(t *testing.T) {
	ctx := context.Background()
	url := catalogtest.PostgresURL(t)
	a, err := pgstore.Open(ctx, url, pgstore.Options{LeaseInterval: time.Minute}) // Lead does not look again
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.HoldsDuties(ctx); !errors.Is(err, catalog.ErrNotLeader) || muster.ErrorCode(err) != muster.EPRECONDITION {
		t.Fatalf("before leading: HoldsDuties = %v (code %q), want ErrNotLeader (%q)", err, muster.ErrorCode(err), muster.EPRECONDITION)
	}
	lead := func(s *pgstore.Store) (stop func()) {
		lctx, cancel := context.WithCancel(ctx)
		held, done := make(chan bool, 8), make(chan struct{})
		go func() { defer close(done); s.Lead(lctx, func(h bool) { held <- h }) }()
		for !<-held {
		}
		return func() { cancel(); <-done }
	}
	stopA := lead(a)
	defer stopA()
	if err := a.HoldsDuties(ctx); err != nil {
		t.Fatalf("while holding the lease: HoldsDuties = %v, want nil", err)
	}
	admin, err := pgx.Connect(ctx, catalogtest.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var ended bool
	if err := admin.QueryRow(ctx, `SELECT pg_terminate_backend($1, 10000)`, pgstore.LeasePID(a)).Scan(&ended); err != nil || !ended {
		t.Fatalf("ending the lease's session: %v, %v", ended, err)
	}
	if err := a.HoldsDuties(ctx); !errors.Is(err, catalog.ErrNotLeader) {
		t.Fatalf("after its lease's session ended: HoldsDuties = %v, want ErrNotLeader", err)
	}
	b := catalogtest.OpenPostgres(t, url)
	stopB := lead(b)
	defer stopB()
	if err := b.HoldsDuties(ctx); err != nil {
		t.Errorf("the master that took the duties: HoldsDuties = %v, want nil", err)
	}
	if err := a.HoldsDuties(ctx); !errors.Is(err, catalog.ErrNotLeader) {
		t.Errorf("the deposed master, after another took the duties: HoldsDuties = %v, want ErrNotLeader", err)
	}
}

// A store whose database is gone answers with EUNAVAILABLE, not as an
// internal error.
func TestUnreachableDatabaseIsUnavailable(t *testing.T) {
	catalogtest.PostgresDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := pgstore.Open(ctx, "postgres://root@127.0.0.1:1/test?sslmode=disable&connect_timeout=2", pgstore.Options{})
	if code := muster.ErrorCode(err); code != muster.EUNAVAILABLE {
		t.Fatalf("open on a closed port: code %q (%v), want %q", code, err, muster.EUNAVAILABLE)
	}
}

// A server that answers but refuses the connection (the database not
// accepting connections, during maintenance) is the catalog unavailable
// too, not an internal error: a page says so in a 503.
func TestRefusedConnectionIsUnavailable(t *testing.T) {
	url := catalogtest.PostgresDatabaseURL(t)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, catalogtest.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	db := pgx.Identifier{cfg.Database}.Sanitize()
	if _, err := admin.Exec(ctx, `ALTER DATABASE `+db+` ALLOW_CONNECTIONS false`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec(context.Background(), `ALTER DATABASE `+db+` ALLOW_CONNECTIONS true`) })
	_, err = pgstore.Open(ctx, url, pgstore.Options{})
	if code := muster.ErrorCode(err); code != muster.EUNAVAILABLE {
		t.Fatalf("open on a database not accepting connections: code %q (%v), want %q", code, err, muster.EUNAVAILABLE)
	}
	// What a client is told names neither the database nor the master's
	// user; the log, which has the cause, does.
	if msg := muster.ErrorMessage(err); strings.Contains(msg, cfg.Database) || strings.Contains(msg, cfg.User) || !strings.Contains(msg, "SQLSTATE 55000") {
		t.Errorf("the refusal as a client reads it: %q, want its code and not the server's words", msg)
	}
	if !strings.Contains(err.Error(), "not currently accepting connections") {
		t.Errorf("the refusal as the log reads it: %q, want the server's words", err)
	}
}

// The rows a START to the fleet inserts for each target (its instruction,
// the audit entry's subject), and the runs an upload inserts, are checked
// by no trigger of their own (migrations 0009 and 0011), and what the
// foreign keys did for them is done by the store: pruning the audit deletes
// the subjects of the entries it prunes, leaving none without its entry.
func TestPostedRowsCarryNoForeignKey(t *testing.T) {
	s, conn := openWithConn(t, catalogtest.PostgresURL(t))
	ctx := context.Background()
	rows, err := conn.Query(ctx, `SELECT conrelid::regclass::text FROM pg_constraint
		WHERE contype = 'f' AND connamespace = current_schema()::regnamespace`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"instructions", "audit_subjects", "runs"} {
		if slices.Contains(tables, table) {
			t.Errorf("%s has a foreign key", table)
		}
	}
	if !slices.Contains(tables, "job_targets") {
		t.Errorf("foreign keys on %v: job_targets's is missing, so the query did not read this catalog's", tables)
	}

	old := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	entries := []muster.AuditEntry{
		{At: old, Actor: muster.Actor{Kind: muster.ActorKey, Name: "ci"}, Action: muster.AuditJobStart, Jobs: []string{"backup"}, Targets: []string{"db1", "db2"}},
		{At: old.Add(48 * time.Hour), Actor: muster.Actor{Kind: muster.ActorKey, Name: "ci"}, Action: muster.AuditJobStart, Jobs: []string{"backup"}, Targets: []string{"db3"}},
	}
	if err := s.Update(ctx, func(tx catalog.Tx) error { return tx.InsertAudit(ctx, entries) }); err != nil {
		t.Fatal(err)
	}
	var pruned int64
	if err := s.Update(ctx, func(tx catalog.Tx) error {
		pruned, err = tx.PruneAudit(ctx, old.Add(time.Hour))
		return err
	}); err != nil || pruned != 1 {
		t.Fatalf("PruneAudit = %d, %v; want the 1 older entry", pruned, err)
	}
	var kept, orphans int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM audit a WHERE a.id = s.audit_id))
		FROM audit_subjects s`).Scan(&kept, &orphans); err != nil {
		t.Fatal(err)
	}
	if kept != 2 || orphans != 0 {
		t.Errorf("after pruning: %d subjects, %d of them without their entry; want the kept entry's 2 (backup, db3), none without", kept, orphans)
	}
}

// openWithConn opens the store at url, and a connection of the test's own
// to the same catalog, closed when the test ends.
func openWithConn(t *testing.T, url string) (*pgstore.Store, *pgx.Conn) {
	t.Helper()
	s := catalogtest.OpenPostgres(t, url)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return s, conn
}

// A pool of one connection is refused, naming the parameter: a singleton
// duty's transaction holds a connection while it asks, on another, whether
// the master still holds the duties, and would wait for ever.
func TestOpenRefusesAPoolOfOneConnection(t *testing.T) {
	url := catalogtest.PostgresURL(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	_, err := pgstore.Open(context.Background(), url+sep+"pool_max_conns=1", pgstore.Options{})
	if muster.ErrorCode(err) != muster.EINVALID || err == nil || !strings.Contains(err.Error(), "pool_max_conns: at least 2, not 1") {
		t.Fatalf("got %v, want invalid naming pool_max_conns", err)
	}
	s, err := pgstore.Open(context.Background(), url+sep+"pool_max_conns=2", pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// A master applies the catalog's migrations when it starts, so its role
// must own the catalog's schema and tables. A role that may only use them
// (on a new catalog, and on one another role migrated) is refused, naming
// the role, the schema and what to change, not with PostgreSQL's bare
// "permission denied".
func TestRoleWithoutPrivilegesIsNamed(t *testing.T) {
	ctx := context.Background()
	url := catalogtest.PostgresURL(t)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	schema := cfg.RuntimeParams["search_path"]
	admin := dial(t, url)
	role := "muster_test_role_" + strings.ToLower(rand.Text()[:12])
	id := pgx.Identifier{role}.Sanitize()
	for _, stmt := range []string{`CREATE ROLE ` + id + ` LOGIN`, `GRANT USAGE ON SCHEMA ` + pgx.Identifier{schema}.Sanitize() + ` TO ` + id} {
		if _, err := admin.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		admin.Exec(context.Background(), `DROP OWNED BY `+id)
		admin.Exec(context.Background(), `DROP ROLE `+id)
	})
	asRole := strings.Replace(url, "://"+cfg.User+"@", "://"+role+"@", 1)
	for _, c := range []struct {
		name    string
		prepare func() error
	}{
		{"new catalog", func() error { return nil }},
		{"catalog migrated by another role", func() error {
			_, err := admin.Exec(ctx, `GRANT CREATE ON SCHEMA `+pgx.Identifier{schema}.Sanitize()+` TO `+id)
			if err == nil {
				catalogtest.OpenPostgres(t, url)
			}
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.prepare(); err != nil {
				t.Fatal(err)
			}
			s, err := pgstore.Open(ctx, asRole, pgstore.Options{})
			if err == nil {
				s.Close()
			}
			for _, want := range []string{"role " + role, "schema " + schema, "ALTER SCHEMA", "permission denied"} {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("opened as a role that may not migrate: %v; want it to say %q", err, want)
				}
			}
			if code := muster.ErrorCode(err); code != muster.EPRECONDITION {
				t.Errorf("code %q, want %q", code, muster.EPRECONDITION)
			}
		})
	}
}
