package pgstore_test

import (
	"context"
	"errors"
	neturl "net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
	"github.com/musterhq/muster/internal/catalog/pgstore"
	"github.com/musterhq/muster/internal/faults"
)

// pauseAt calls hook once, as the first statement whose text contains
// match is sent: the transaction sending it waits there until hook returns.
type pauseAt struct {
	match string
	once  sync.Once
	hook  func()
}

func (p *pauseAt) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, p.match) {
		p.once.Do(p.hook)
	}
	return ctx
}

func (p *pauseAt) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// openPaused opens a catalog on the PostgreSQL database at url whose
// transactions pause at p.
func openPaused(t *testing.T, url string, p *pauseAt) *catalog.Catalog {
	t.Helper()
	ctx := context.Background()
	s, err := pgstore.Open(ctx, url, pgstore.Options{Tracer: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c, err := catalog.Open(ctx, s, catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// alongside runs fn on its own goroutine and returns once fn has returned
// or a statement on conn's database waits for a lock; wait then waits for
// fn and returns its error.
func alongside(t *testing.T, conn *pgx.Conn, fn func() error) (wait func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	var err error
	ended := func() bool {
		select {
		case err = <-done:
			return true
		default:
			return false
		}
	}
	if catalogtest.AwaitLock(t, conn, "the transaction alongside ending or waiting for a lock", ended) {
		return func() error { return <-done }
	}
	return func() error { return err }
}

// Event ids are taken at insert, not at commit: an event may commit after
// one numbered later, after the dispatcher read the events waiting and
// before it marked them matched. It stays waiting, and the next pass
// matches it.
func TestDispatchMatchesAnEventCommittedOutOfIDOrder(t *testing.T) {
	url := catalogtest.PostgresDatabaseURL(t)
	ctx := context.Background()
	other := catalogtest.OpenPostgres(t, url) // another master, raising events

	release, committed := make(chan struct{}), make(chan struct{})
	c := openPaused(t, url, &pauseAt{match: "UPDATE events SET dispatched", hook: func() {
		close(release) // the earlier-numbered event's transaction commits now
		<-committed
	}})
	admin := muster.Actor{Kind: muster.ActorKey, Name: "admin", Role: catalog.RoleAdmin}
	if _, err := c.CreateOperator(ctx, muster.Operator{Name: "mail", Email: "ops@example.com"}, "", admin); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateAlert(ctx, muster.Alert{Name: "all", Event: muster.EventAny, Notify: []string{"mail"}}, admin); err != nil {
		t.Fatal(err)
	}
	ev := func(msg string) muster.Event {
		return muster.Event{Name: muster.EventRunFailed, Severity: muster.SeverityError, Source: "test", Message: msg, At: time.Now()}
	}
	raised := make(chan struct{})
	go func() {
		defer close(committed)
		err := other.Update(ctx, func(tx catalog.Tx) error {
			if _, err := tx.RaiseEvent(ctx, "first", ev("first"), time.Now()); err != nil {
				return err
			}
			close(raised)
			<-release
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}()
	<-raised
	if err := other.Update(ctx, func(tx catalog.Tx) error {
		_, err := tx.RaiseEvent(ctx, "second", ev("second"), time.Now())
		return err
	}); err != nil {
		t.Fatal(err)
	}

	var passes []int
	for {
		n, _, err := c.DispatchEvents(ctx, muster.NewRunID)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		passes = append(passes, n)
		if len(passes) == 3 {
			t.Fatalf("still dispatching after three passes: %v events", passes)
		}
	}
	<-committed
	if len(passes) != 2 || passes[0] != 1 || passes[1] != 1 {
		t.Errorf("passes dispatched %v events, want [1 1]: the second first, then the first once committed", passes)
	}
	if left, err := other.UndispatchedEvents(ctx, 10); err != nil || len(left) != 0 {
		t.Errorf("events waiting after the passes: %v, %v; want none", left, err)
	}
	ds, err := c.FindDeliveries(ctx, catalog.DeliveryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, d := range ds {
		got[d.Event.Message]++
	}
	if len(ds) != 2 || got["first"] != 1 || got["second"] != 1 {
		t.Errorf("deliveries by event: %v, want one for each of first and second", got)
	}
}

// A job applied naming a group, and a target joining the group, at the
// same time on two masters: whichever goes first, the other waits for it
// at the group's row and then reads what it wrote, and the new member
// gets the job. Each case pauses the first transaction after its read of
// the other's side (the apply after reading the group's members, the
// group's change after reading the jobs naming it) and runs the second
// meanwhile.
func TestGroupChangeAndApplyNamingItSerialize(t *testing.T) {
	admin := muster.Actor{Kind: muster.ActorKey, Name: "admin", Role: catalog.RoleAdmin}
	backup := muster.NewJob()
	backup.Name, backup.Groups, backup.Steps = "backup", []string{"web"}, []muster.Step{{Name: "hello", Shell: "echo hello"}}
	join := func(c *catalog.Catalog) error {
		_, err := c.SetGroupMembers(context.Background(), "web", []string{"web2"}, false, admin)
		return err
	}
	apply := func(c *catalog.Catalog) error {
		_, err := c.ApplyJobs(context.Background(), []muster.Job{backup}, catalog.ApplyOptions{}, admin)
		return err
	}
	cases := []struct {
		name          string
		pause         string // the first transaction's statement it pauses at
		first, second func(*catalog.Catalog) error
	}{
		{"apply first", "INSERT INTO job_targets", apply, join},
		{"group change first", "INSERT INTO group_members", join, apply},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url, other := otherMaster(t)
			ctx := context.Background()
			if err := other.CreateGroup(ctx, "web", admin); err != nil {
				t.Fatal(err)
			}
			if _, err := other.SetGroupMembers(ctx, "web", []string{"web1"}, false, admin); err != nil {
				t.Fatal(err)
			}
			conn := dial(t, url)

			var second func() error
			c := openPaused(t, url, &pauseAt{match: tc.pause, hook: func() {
				second = alongside(t, conn, func() error { return tc.second(other) })
			}})
			if err := tc.first(c); err != nil {
				t.Fatal(err)
			}
			if second == nil {
				t.Fatalf("the first transaction never sent %q", tc.pause)
			}
			if err := second(); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"web1", "web2"} {
				ins, err := c.FindInstructions(ctx, catalog.InstructionFilter{Target: name})
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, in := range ins {
					if in.Operation == muster.OpInsert && in.Job == "backup" {
						n++
					}
				}
				if n != 1 {
					t.Errorf("%s, in group web which job backup names, has %d INSERTs of backup, want 1: %v", name, n, ins)
				}
			}
		})
	}
}

// otherMaster opens a catalog, as another master, on a PostgreSQL database
// of its own (whose URL it returns), with targets web1 and web2 enlisted.
func otherMaster(t *testing.T) (url string, other *catalog.Catalog) {
	t.Helper()
	url = catalogtest.PostgresDatabaseURL(t)
	other, err := catalog.Open(context.Background(), catalogtest.OpenPostgres(t, url), catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	enlist(t, other, "web1")
	enlist(t, other, "web2")
	return url, other
}

// enlist enlists a target by name.
func enlist(t *testing.T, c *catalog.Catalog, name string) {
	t.Helper()
	ctx := context.Background()
	admin := muster.Actor{Kind: muster.ActorKey, Name: "admin", Role: catalog.RoleAdmin}
	if _, err := c.CreateEnlistToken(ctx, "hash-"+name, name, 15*time.Minute, admin); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enlist(ctx, catalog.Enlistment{TokenHash: "hash-" + name, Name: name, UID: "uid-" + name},
		func(uid string) (catalog.IssuedCert, error) {
			return catalog.IssuedCert{Serial: "serial-" + name, NotAfter: time.Now().Add(time.Hour)}, nil
		}); err != nil {
		t.Fatal(err)
	}
}

// A transaction that fails on a connection that has stopped answering
// gives the connection up once its ROLLBACK's time is over, rather than
// hold it from the pool until TCP gives up; once the network is back the
// store serves again.
func TestRollbackOnAStalledConnectionIsBounded(t *testing.T) {
	defer pgstore.SetRollbackTimeout(200 * time.Millisecond)()
	ctx := context.Background()
	u, err := neturl.Parse(catalogtest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := faults.NewProxy(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	u.Host = proxy.Addr()
	s, err := pgstore.Open(ctx, u.String(), pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	refused := errors.New("refused by the test")
	done := make(chan error, 1)
	go func() {
		done <- s.Update(ctx, func(tx catalog.Tx) error {
			if _, err := tx.TargetIDs(ctx, []string{"web1"}); err != nil { // the transaction is open on the server
				return err
			}
			proxy.Stall()
			return refused
		})
	}()
	select {
	case err := <-done:
		if !errors.Is(err, refused) {
			t.Fatalf("the transaction returned %v, want the error its function returned", err)
		}
	case <-time.After(time.Minute):
		proxy.Heal() // so that the store can close
		t.Fatal("the ROLLBACK on a stalled connection had not given up after a minute")
	}
	proxy.Heal()
	if err := s.Update(ctx, func(tx catalog.Tx) error {
		_, err := tx.TargetIDs(ctx, []string{"web1"})
		return err
	}); err != nil {
		t.Fatalf("a transaction once the network is back: %v", err)
	}
}

// A change of one group and a change of another, both named by one job,
// wait for each other at the job's row and no more: the rename of g1
// rewrites the job's groups, whose row for g2 refers to g2, while g2's
// members change. Neither holds a lock the other's foreign-key check waits
// for, so PostgreSQL finds no deadlock.
func TestChangesOfTwoGroupsOfOneJobDoNotDeadlock(t *testing.T) {
	admin := muster.Actor{Kind: muster.ActorKey, Name: "admin", Role: catalog.RoleAdmin}
	url, other := otherMaster(t)
	ctx := context.Background()
	for _, g := range []string{"g1", "g2"} {
		if err := other.CreateGroup(ctx, g, admin); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := other.SetGroupMembers(ctx, "g1", []string{"web1"}, false, admin); err != nil {
		t.Fatal(err)
	}
	off := false
	j := muster.NewJob()
	j.Name, j.Groups, j.Steps = "backup", []string{"g1", "g2"}, []muster.Step{{Name: "hello", Shell: "echo hello"}}
	j.Overrides = []muster.Override{{Group: "g1", Enabled: &off}} // a rename rewrites the job
	if _, err := other.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
		t.Fatal(err)
	}
	conn := dial(t, url)
	deadlocks := func() int64 {
		t.Helper()
		var n int64
		if err := conn.QueryRow(ctx, `SELECT pg_stat_get_db_deadlocks(oid) FROM pg_database WHERE datname = current_database()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := deadlocks()

	var second func() error
	c := openPaused(t, url, &pauseAt{match: "DELETE FROM job_groups", hook: func() {
		second = alongside(t, conn, func() error {
			_, err := other.SetGroupMembers(ctx, "g2", []string{"web2"}, false, admin)
			return err
		})
	}})
	if err := c.RenameGroup(ctx, "g1", "g1x", admin); err != nil {
		t.Fatal(err)
	}
	if second == nil {
		t.Fatal("the rename never rewrote the job's groups")
	}
	if err := second(); err != nil {
		t.Fatal(err)
	}
	// The backend whose transaction was broken reports the deadlock as it
	// goes idle, a second or more after the last report it made: the
	// deadlock check itself waits a second (deadlock_timeout) first.
	if _, err := conn.Exec(ctx, `SELECT pg_stat_clear_snapshot()`); err != nil {
		t.Fatal(err)
	}
	if n := deadlocks() - before; n != 0 {
		t.Errorf("PostgreSQL broke %d deadlocks between the two changes, want none", n)
	}
}

// An INSERT posted by hand (muster post insert) and the job's deletion, at
// the same time on two masters: the post takes the job's row before it
// reads the job, so the deletion's DELETE comes after the INSERT, and the
// target does not hold a job the master no longer has. Without the lock,
// the post read the job, the deletion committed meanwhile, and the INSERT
// was posted after its DELETE.
func TestPostedInsertAndTheJobsDeletionSerialize(t *testing.T) {
	admin := muster.Actor{Kind: muster.ActorKey, Name: "admin", Role: catalog.RoleAdmin}
	url, other := otherMaster(t)
	ctx := context.Background()
	backup := muster.NewJob()
	backup.Name, backup.Targets, backup.Steps = "backup", []string{"web1"}, []muster.Step{{Name: "hello", Shell: "echo hello"}}
	if _, err := other.ApplyJobs(ctx, []muster.Job{backup}, catalog.ApplyOptions{}, admin); err != nil {
		t.Fatal(err)
	}
	conn := dial(t, url)

	var second func() error
	c := openPaused(t, url, &pauseAt{match: "SET status = 'superseded' WHERE status = 'failed'", hook: func() {
		second = alongside(t, conn, func() error {
			_, err := other.DeleteJob(ctx, "backup", admin)
			return err
		})
	}})
	if _, err := c.Post(ctx, catalog.PostRequest{Operation: muster.OpInsert, Job: "backup"}, admin); err != nil {
		t.Fatal(err)
	}
	if second == nil {
		t.Fatal("the post never superseded anything")
	}
	if err := second(); err != nil {
		t.Fatal(err)
	}
	ins, err := c.FindInstructions(ctx, catalog.InstructionFilter{Target: "web1"})
	if err != nil {
		t.Fatal(err)
	}
	var last muster.Instruction
	for _, in := range ins {
		if in.Job == "backup" && in.Status == muster.InstructionPending && in.Seq > last.Seq {
			last = in
		}
	}
	if last.Operation != muster.OpDelete {
		t.Errorf("the last pending instruction of backup on web1 is %s (seq %d), want DELETE: %+v", last.Operation, last.Seq, ins)
	}
}

// A start and the departure of one of its targets, at the same time on two
// masters: the departure takes the target's row first and the start waits
// for it there, to number its START. Once the departure has committed, the
// START is not posted to the target that left, which would never collect
// it: it would stay pending with its run never recorded, holding a
// max_parallel_targets slot until it expired, and a start --wait waiting
// for it. The start runs again and reads the job as it is now: without
// that target.
func TestStartAndTheDepartureOfItsTargetSerialize(t *testing.T) {
	admin := muster.Actor{Kind: muster.ActorKey, Name: "admin", Role: catalog.RoleAdmin}
	for _, tc := range []struct {
		name    string
		targets []string // the start's
		want    []string // targets started
		code    string   // the start's error
	}{
		{"every target", nil, []string{"web2"}, ""},
		{"the target alone", []string{"web1"}, nil, muster.EINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, other := otherMaster(t)
			ctx := context.Background()
			backup := muster.NewJob()
			backup.Name, backup.Targets, backup.Steps = "backup", []string{"web1", "web2"}, []muster.Step{{Name: "hello", Shell: "echo hello"}}
			if _, err := other.ApplyJobs(ctx, []muster.Job{backup}, catalog.ApplyOptions{}, admin); err != nil {
				t.Fatal(err)
			}
			conn := dial(t, url)

			var res muster.StartResult
			var second func() error
			c := openPaused(t, url, &pauseAt{match: "UPDATE targets SET state", hook: func() {
				second = alongside(t, conn, func() error {
					var err error
					res, err = other.StartJob(ctx, catalog.StartRequest{Job: "backup", Targets: tc.targets}, admin)
					return err
				})
			}})
			if err := c.DeleteTarget(ctx, "web1", true, admin); err != nil {
				t.Fatal(err)
			}
			if second == nil {
				t.Fatal("the departure never set the target's state")
			}
			if err := second(); muster.ErrorCode(err) != tc.code {
				t.Fatalf("the start: %v, want code %q", err, tc.code)
			}
			var started []string
			for _, r := range res.Runs {
				started = append(started, r.Target)
			}
			if !slices.Equal(started, tc.want) {
				t.Errorf("started on %v, want %v", started, tc.want)
			}
			var gone int
			if err := conn.QueryRow(ctx, `SELECT COUNT(*) FROM instructions i JOIN targets t ON t.id = i.target_id
				WHERE t.name = 'web1' AND i.operation = 'START'`).Scan(&gone); err != nil {
				t.Fatal(err)
			}
			if gone != 0 {
				t.Errorf("%d START(s) posted to web1, which left the fleet; want none", gone)
			}
		})
	}
}

// dial connects to the database at url, as a session of the test's own,
// closed at the test's end.
func dial(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// A target added to a group while it is deleted on another master: the
// deletion takes the target's row first and clears its memberships, and
// the addition waits for it. Once the deletion has committed, the target
// is not made a member again (the group would list a target that left
// as a member, and the addition report it added): the addition runs again
// and is refused, naming the target that left.
func TestGroupMemberAddedAndTheTargetsDeletionSerialize(t *testing.T) {
	c, added := addedToWebWhile(t, "DELETE FROM group_members WHERE target_id", "the deletion never cleared the target's memberships",
		func(c *catalog.Catalog) error { return c.DeleteTarget(context.Background(), "web1", false, raceAdmin) })
	if muster.ErrorCode(added) != muster.EINVALID {
		t.Errorf("adding the deleted target: %v, want invalid, naming it", added)
	}
	groups, err := c.FindGroups(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || len(groups[0].Targets) != 0 {
		t.Errorf("groups %+v, want web without members", groups)
	}
}

// A target added to a group while the group is deleted on another master:
// the addition waits for the deletion, then runs again and is told that
// the group does not exist (not_found), as it would be after it.
func TestGroupMemberAddedAndTheGroupsDeletionSerialize(t *testing.T) {
	_, added := addedToWebWhile(t, "DELETE FROM group_members WHERE group_id", "the deletion never deleted the group's members",
		func(c *catalog.Catalog) error { return c.DeleteGroup(context.Background(), "web", raceAdmin) })
	if muster.ErrorCode(added) != muster.ENOTFOUND {
		t.Errorf("adding to the deleted group: %v, want not found", added)
	}
}

// A target added to a group while the group is renamed on another master:
// the addition runs again once the rename has committed, and finds no
// group of the old name, rather than adding to the renamed one.
func TestGroupMemberAddedAndTheGroupsRenameSerialize(t *testing.T) {
	c, added := addedToWebWhile(t, "UPDATE groups SET name", "the rename never renamed the group",
		func(c *catalog.Catalog) error {
			return c.RenameGroup(context.Background(), "web", "frontend", raceAdmin)
		})
	if muster.ErrorCode(added) != muster.ENOTFOUND {
		t.Errorf("adding to the renamed group by its old name: %v, want not found", added)
	}
	groups, err := c.FindGroups(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || groups[0].Name != "frontend" || len(groups[0].Targets) != 0 {
		t.Errorf("groups %+v, want frontend without members", groups)
	}
}

// raceAdmin is the admin the group races act as.
var raceAdmin = muster.Actor{Kind: muster.ActorKey, Name: "admin", Role: catalog.RoleAdmin}

// addedToWebWhile creates group web on another master, runs change on a
// catalog paused at its first statement matching stmt, and, while it is
// paused there, has the other master add web1 to web. It returns the
// paused catalog and the addition's error, once change has committed;
// missing says what it means that change never reached stmt.
func addedToWebWhile(t *testing.T, stmt, missing string, change func(*catalog.Catalog) error) (*catalog.Catalog, error) {
	t.Helper()
	url, other := otherMaster(t)
	ctx := context.Background()
	if err := other.CreateGroup(ctx, "web", raceAdmin); err != nil {
		t.Fatal(err)
	}
	conn := dial(t, url)
	var second func() error
	c := openPaused(t, url, &pauseAt{match: stmt, hook: func() {
		second = alongside(t, conn, func() error {
			_, err := other.SetGroupMembers(ctx, "web", []string{"web1"}, false, raceAdmin)
			return err
		})
	}})
	if err := change(c); err != nil {
		t.Fatal(err)
	}
	if second == nil {
		t.Fatal(missing)
	}
	return c, second()
}
