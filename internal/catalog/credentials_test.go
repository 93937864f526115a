package catalog_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// reads counts the store's lookups of credentials.
type reads struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *reads) observe(op string, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n[op]++
}

func (r *reads) of(op string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[op]
}

// openCounting opens a catalog on a new store of the engine, its clock
// stopped, and counts the store's lookups; it is closed when the test ends.
func openCounting(t *testing.T, e catalogtest.Engine) (*catalog.Catalog, *clock, *reads) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	r := &reads{n: map[string]int{}}
	db, err := catalog.Open(context.Background(), catalog.TimeStore(e.Open(t), r.observe), catalog.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, clk, r
}

// An authentication reads its row once; the next ones use it until a
// change that may touch it commits, or, on a shared catalog, for a second
// at most.
func TestCredentialsRemembered(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		ctx := context.Background()
		db, clk, r := openCounting(t, e)
		id := enlist(t, db, "web-1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("backup", "web-1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateAPIKey(ctx, catalog.NewAPIKey{Name: "ops", Role: catalog.RoleOperator}, "hash-ops", admin); err != nil {
			t.Fatal(err)
		}
		authenticate := func(want int) {
			t.Helper()
			for i := range 3 {
				if k, err := db.AuthenticateAPIKey(ctx, "hash-ops"); err != nil || k.Name != "ops" {
					t.Fatalf("key, try %d: %+v, %v", i, k, err)
				}
				if got, err := db.AuthenticateTarget(ctx, "serial-web-1"); err != nil || got.ID != id.ID {
					t.Fatalf("certificate, try %d: %+v, %v", i, got, err)
				}
			}
			if k, c := r.of("FindAPIKey"), r.of("FindCert"); k != want || c != want {
				t.Fatalf("the key was read %d times and the certificate %d, want %d each", k, c, want)
			}
		}
		authenticate(1)

		// A START, an acknowledgement and a run upload change no credential.
		started, err := db.StartJob(ctx, catalog.StartRequest{Job: "backup"}, admin)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Ack(ctx, id.ID, []catalog.AckRow{{Seq: started.Runs[0].Seq}}); err != nil {
			t.Fatal(err)
		}
		at := clk.Now()
		if _, err := db.UpsertRuns(ctx, id, []catalog.RunUpload{{Revision: 1, Run: muster.Run{Job: "backup", Target: "web-1",
			RunID: started.Runs[0].RunID, Status: muster.RunRunning, Trigger: "manual", StartedAt: at}}}); err != nil {
			t.Fatal(err)
		}
		authenticate(1)

		// A second later, both are read again on a shared catalog, where a
		// notification may be lost; a catalog of its own has no other
		// writer, and an hour changes nothing.
		read := 1
		if db.Store().Shared() {
			clk.Add(time.Second)
			read = 2
		} else {
			clk.Add(time.Hour)
		}
		authenticate(read)

		// Any other change forgets them: a revoked key is refused at once.
		if _, err := db.RevokeAPIKey(ctx, "ops", admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.AuthenticateAPIKey(ctx, "hash-ops"); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
			t.Fatalf("the revoked key: %v, want EUNAUTHORIZED", err)
		}
		read++
		if n := r.of("FindAPIKey"); n != read {
			t.Errorf("the key was read %d times, want %d: the revocation did not forget it", n, read)
		}
		if _, err := db.AuthenticateTarget(ctx, "serial-web-1"); err != nil {
			t.Fatal(err)
		}
		if n := r.of("FindCert"); n != read {
			t.Errorf("the certificate was read %d times, want %d", n, read)
		}
		db.ForgetCredentials()
		if _, err := db.AuthenticateTarget(ctx, "serial-web-1"); err != nil {
			t.Fatal(err)
		}
		if n := r.of("FindCert"); n != read+1 {
			t.Errorf("the certificate was read %d times after ForgetCredentials, want %d", n, read+1)
		}
	})
}

// On a shared catalog, a key revoked through one master is refused by the
// other once it forgets what it remembers: when the notification of the
// change arrives (it says Credentials; the master then calls
// ForgetCredentials), or a second later if it is lost.
func TestSharedCredentialsRevoked(t *testing.T) {
	a, b, clk := twoMasters(t)
	ctx := context.Background()
	for _, name := range []string{"ops", "dev"} {
		if _, err := a.CreateAPIKey(ctx, catalog.NewAPIKey{Name: name, Role: catalog.RoleOperator}, "hash-"+name, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := b.AuthenticateAPIKey(ctx, "hash-"+name); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("a lost notification costs a second at most", func(t *testing.T) {
		if _, err := a.RevokeAPIKey(ctx, "ops", admin); err != nil {
			t.Fatal(err)
		}
		if _, err := b.AuthenticateAPIKey(ctx, "hash-ops"); err != nil {
			t.Fatalf("b, not told of the revocation: %v, want the key it remembers", err)
		}
		clk.Add(time.Second)
		if _, err := b.AuthenticateAPIKey(ctx, "hash-ops"); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
			t.Fatalf("b a second after the revocation: %v, want EUNAUTHORIZED", err)
		}
	})

	t.Run("the notification says so", func(t *testing.T) {
		if _, err := b.AuthenticateAPIKey(ctx, "hash-dev"); err != nil {
			t.Fatal(err)
		}
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		heard := make(chan catalog.Commit, 64)
		go b.Store().Listen(lctx, func(c catalog.Commit, missed bool) {
			if !missed {
				heard <- c
			}
		})
		// A note sent before the listener is up is not heard: change
		// something until one is.
		for i := 0; ; i++ {
			if i == 100 {
				t.Fatal("no notification heard after 100 changes")
			}
			if _, err := a.CreateAPIKey(ctx, catalog.NewAPIKey{Name: fmt.Sprintf("probe-%d", i), Role: catalog.RoleReader}, fmt.Sprintf("hash-probe-%d", i), admin); err != nil {
				t.Fatal(err)
			}
			select {
			case c := <-heard:
				if !c.Credentials {
					t.Fatalf("the note of a new key = %+v, want Credentials", c)
				}
			case <-time.After(100 * time.Millisecond):
				continue
			}
			break
		}
		if _, err := a.RevokeAPIKey(ctx, "dev", admin); err != nil {
			t.Fatal(err)
		}
		for c := range heard {
			if c.Credentials {
				break
			}
		}
		b.ForgetCredentials()
		if _, err := b.AuthenticateAPIKey(ctx, "hash-dev"); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
			t.Fatalf("b once told of the revocation: %v, want EUNAUTHORIZED", err)
		}
	})
}

// The certificates of targets whose polls are answered together are read
// in one statement; each target's next authentication then reads nothing,
// as if it had read its own: on a shared catalog for a second at most.
func TestRecallTargets(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		ctx := context.Background()
		db, clk, r := openCounting(t, e)
		ids := map[string]int64{}
		for _, name := range []string{"web-1", "web-2", "web-3"} {
			ids[name] = enlist(t, db, name).ID
		}
		authenticate := func() {
			t.Helper()
			for name, id := range ids {
				if got, err := db.AuthenticateTarget(ctx, "serial-"+name); err != nil || got.ID != id || got.Name != name {
					t.Fatalf("%s: %+v, %v; want target %d", name, got, err, id)
				}
			}
		}
		serials := []string{"serial-web-1", "serial-web-2", "serial-web-3", "serial-none"}
		if err := db.RecallTargets(ctx, serials); err != nil {
			t.Fatal(err)
		}
		authenticate()
		if got := [2]int{r.of("FindCerts"), r.of("FindCert")}; got != [2]int{1, 0} {
			t.Fatalf("(FindCerts, FindCert) = %v, want one read of all three and none alone", got)
		}
		if _, err := db.AuthenticateTarget(ctx, "serial-none"); muster.ErrorCode(err) != muster.EUNAUTHORIZED {
			t.Fatalf("a serial no certificate has: %v, want EUNAUTHORIZED", err)
		}

		// What is remembered and fresh is not read again.
		if err := db.RecallTargets(ctx, serials[:3]); err != nil {
			t.Fatal(err)
		}
		if n := r.of("FindCerts"); n != 1 {
			t.Errorf("FindCerts ran %d times, want 1: the certificates were fresh", n)
		}

		// A second later they are read again, together, on a shared
		// catalog; not on a catalog of its own.
		want := [2]int{1, 1} // the serial no certificate has was read alone
		if db.Store().Shared() {
			clk.Add(time.Second)
			want = [2]int{2, 1}
		} else {
			clk.Add(time.Hour)
		}
		if err := db.RecallTargets(ctx, serials[:3]); err != nil {
			t.Fatal(err)
		}
		authenticate()
		if got := [2]int{r.of("FindCerts"), r.of("FindCert")}; got != want {
			t.Fatalf("(FindCerts, FindCert) = %v, want %v", got, want)
		}

		// A change that may touch them forgets them, whoever read them.
		db.ForgetCredentials()
		authenticate()
		if n := r.of("FindCert"); n != want[1]+3 {
			t.Errorf("FindCert ran %d times after ForgetCredentials, want %d", n, want[1]+3)
		}
	})
}

// A flush of heartbeats forgets no certificate: it brings the poll
// interval and clock skew of those of its targets up to date, as a read
// of their rows would find them, and the next authentications read
// nothing.
func TestHeartbeatFlushKeepsCertificates(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		ctx := context.Background()
		db, clk, r := openCounting(t, e)
		web1 := enlist(t, db, "web-1")
		enlist(t, db, "web-2")
		identity := func(name string) catalog.TargetIdentity {
			t.Helper()
			id, err := db.AuthenticateTarget(ctx, "serial-"+name)
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
		before := identity("web-2")
		identity("web-1")
		// The target's clock runs 2.5 s ahead of the master's.
		db.RecordPoll(web1.ID, catalog.Heartbeat{At: clk.Now(), LocalTime: clk.Now().Add(2500 * time.Millisecond), PollInterval: 45})
		if err := db.FlushHeartbeats(ctx); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if id := identity("web-1"); id.PollInterval != 45 || id.ClockSkewMS != 2500 {
				t.Fatalf("web-1 after the flush, try %d: poll interval %d, skew %d ms; want 45 and 2500", i, id.PollInterval, id.ClockSkewMS)
			}
			if id := identity("web-2"); id != before {
				t.Fatalf("web-2, not in the flush, try %d: %+v, want %+v", i, id, before)
			}
		}
		if n := r.of("FindCert"); n != 2 {
			t.Fatalf("FindCert ran %d times, want 2: the flush forgot a certificate", n)
		}
		// What the flush wrote is what a read finds.
		db.ForgetCredentials()
		if id := identity("web-1"); id.PollInterval != 45 || id.ClockSkewMS != 2500 {
			t.Fatalf("web-1 read again: poll interval %d, skew %d ms; want 45 and 2500", id.PollInterval, id.ClockSkewMS)
		}
		if n := r.of("FindCert"); n != 3 {
			t.Fatalf("FindCert ran %d times, want 3", n)
		}
	})
}
