package master

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
	"github.com/musterhq/muster/internal/notify"
)

// pinned is a clock that moves only when told.
type pinned struct {
	mu sync.Mutex
	t  time.Time
}

func (c *pinned) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *pinned) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// dispatchFixture is a catalog with one target, one job, a webhook
// operator whose receiver answers with status, and an alert on run_failed;
// it returns the alerting (not started: tests call runOnce) and the clock.
func dispatchFixture(t *testing.T, status *atomic.Int32) (*alerting, *catalog.Catalog, *pinned) {
	t.Helper()
	return dispatchFixtureWith(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(int(status.Load())) })
}

// dispatchFixtureWith is dispatchFixture with a receiver answering as
// receive does.
func dispatchFixtureWith(t *testing.T, receive http.HandlerFunc) (*alerting, *catalog.Catalog, *pinned) {
	t.Helper()
	return dispatchFixtureOn(t, catalogtest.SQLite.Open(t), receive)
}

// dispatchFixtureOn is dispatchFixtureWith on store.
func dispatchFixtureOn(t *testing.T, store catalog.Store, receive http.HandlerFunc) (*alerting, *catalog.Catalog, *pinned) {
	t.Helper()
	ctx := context.Background()
	clk := &pinned{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	db, err := catalog.Open(ctx, store, catalog.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	srv := httptest.NewServer(receive)
	t.Cleanup(srv.Close)

	admin := muster.Actor{Kind: muster.ActorKey, Name: "admin", Role: catalog.RoleAdmin}
	if _, err := db.CreateEnlistToken(ctx, "h", "web1", time.Hour, admin); err != nil {
		t.Fatal(err)
	}
	web1, err := db.Enlist(ctx, catalog.Enlistment{TokenHash: "h", Name: "web1", UID: "u1"}, func(string) (catalog.IssuedCert, error) {
		return catalog.IssuedCert{Serial: "s1", NotAfter: clk.Now().Add(time.Hour)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	j := muster.NewJob()
	j.Name, j.Targets, j.Steps = "backup", []string{"web1"}, []muster.Step{{Name: "dump", Shell: "false"}}
	if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateOperator(ctx, muster.Operator{Name: "oncall", Webhook: srv.URL}, "a-secret-of-some-length", admin); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateAlert(ctx, muster.Alert{Name: "backup-failed", Event: muster.EventRunFailed, Notify: []string{"oncall"}}, admin); err != nil {
		t.Fatal(err)
	}
	end := clk.Now()
	if _, err := db.UpsertRuns(ctx, web1, []catalog.RunUpload{{Revision: 1, Run: muster.Run{
		Job: "backup", RunID: "r1", Status: muster.RunFailed, Trigger: "operator", StartedAt: end, FinishedAt: &end,
	}}}); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Now = clk.Now
	cfg.Alerts.Retry = []time.Duration{time.Minute, 5 * time.Minute}
	cfg.Alerts.MaxIdle = time.Hour
	a, err := newAlerting(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	a.db, a.started = db, clk.Now()
	return a, db, clk
}

// settle runs the dispatcher as its loop does: a pass, then, when the lanes
// it started have ended, the pass they wake. It returns that pass's wait.
func settle(ctx context.Context, a *alerting) (time.Duration, error) {
	if _, err := a.dispatchOnce(ctx); err != nil {
		return 0, err
	}
	a.lanes.Wait()
	wait, err := a.dispatchOnce(ctx)
	a.lanes.Wait()
	return wait, err
}

// A delivery is tried once per pass when due, waits out each delay of the
// Retry list in turn, and fails when the list is spent; the wait runOnce
// returns is the time to the next attempt.
func TestDispatcherBacksOffByTheRetryList(t *testing.T) {
	ctx := context.Background()
	var status atomic.Int32
	status.Store(http.StatusServiceUnavailable)
	a, db, clk := dispatchFixture(t, &status)

	state := func() muster.Delivery {
		t.Helper()
		h, err := db.FindDeliveries(ctx, catalog.DeliveryFilter{})
		if err != nil || len(h) != 1 {
			t.Fatalf("history %+v %v, want one delivery", h, err)
		}
		return h[0]
	}
	for i, want := range []struct {
		advance  time.Duration
		attempts int
		status   muster.DeliveryStatus
		wait     time.Duration
	}{
		{0, 1, muster.DeliveryPending, time.Minute},
		{30 * time.Second, 1, muster.DeliveryPending, 30 * time.Second}, // not due yet
		{30 * time.Second, 2, muster.DeliveryPending, 5 * time.Minute},
		{5 * time.Minute, 3, muster.DeliveryFailed, a.cfg.MaxIdle},
		{time.Hour, 3, muster.DeliveryFailed, a.cfg.MaxIdle},
	} {
		clk.Add(want.advance)
		wait, err := settle(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		d := state()
		if d.Attempts != want.attempts || d.Status != want.status || wait != want.wait {
			t.Errorf("pass %d: %d attempts, %s, wait %s; want %d, %s, wait %s", i, d.Attempts, d.Status, wait,
				want.attempts, want.status, want.wait)
		}
	}
}

// A refusal is not retried.
func TestDispatcherDoesNotRetryARefusal(t *testing.T) {
	ctx := context.Background()
	var status atomic.Int32
	status.Store(http.StatusUnauthorized)
	a, db, _ := dispatchFixture(t, &status)
	if _, err := settle(ctx, a); err != nil {
		t.Fatal(err)
	}
	h, _ := db.FindDeliveries(ctx, catalog.DeliveryFilter{})
	if len(h) != 1 || h[0].Status != muster.DeliveryFailed || h[0].Attempts != 1 {
		t.Errorf("history %+v, want failed after one attempt", h)
	}
}

// The SMTP flags are checked when the master starts, each error naming
// its flag.
func TestSMTPSettings(t *testing.T) {
	pass := filepath.Join(t.TempDir(), "smtp.pass")
	if err := os.WriteFile(pass, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok := SMTPConfig{Addr: "smtp.example.com:587", From: "muster@example.com", Username: "muster", PasswordFile: pass}
	s, err := smtpSender(ok, "master", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if s.Password != "s3cret" || s.TLS != notify.SMTPTLSAuto {
		t.Errorf("password %q, TLS %q; want s3cret, auto", s.Password, s.TLS)
	}
	if s, err := smtpSender(SMTPConfig{}, "master", time.Now); s != nil || err != nil {
		t.Errorf("no SMTP server: %v, %v; want none and no error", s, err)
	}
	for _, c := range []struct {
		change func(*SMTPConfig)
		flag   string
	}{
		{func(c *SMTPConfig) { c.Addr = "" }, "--smtp-addr"},
		{func(c *SMTPConfig) { c.Addr = "smtp.example.com" }, "--smtp-addr"},
		{func(c *SMTPConfig) { c.From = "" }, "--smtp-from"},
		{func(c *SMTPConfig) { c.From = "not an address" }, "--smtp-from"},
		{func(c *SMTPConfig) { c.TLS = "ssl" }, "--smtp-tls"},
		{func(c *SMTPConfig) { c.TLS = "none" }, "--smtp-user"},
		{func(c *SMTPConfig) { c.PasswordFile = "" }, "--smtp-password-file"},
		{func(c *SMTPConfig) { c.PasswordFile = filepath.Join(t.TempDir(), "missing") }, "--smtp-password-file"},
	} {
		cfg := ok
		c.change(&cfg)
		if _, err := smtpSender(cfg, "master", time.Now); err == nil || !strings.Contains(err.Error(), c.flag) {
			t.Errorf("%+v: %v, want an error naming %s", cfg, err, c.flag)
		}
	}
}

// A receiver that does not answer holds up only the notifications to its
// own address: one to another address, queued behind many to the slow one,
// is sent meanwhile.
func TestSlowReceiverDelaysNoOtherAddress(t *testing.T) {
	ctx := context.Background()
	var status atomic.Int32
	status.Store(http.StatusNoContent)
	a, db, clk := dispatchFixture(t, &status)
	a.cfg.AttemptTimeout = time.Hour
	admin := muster.Actor{Kind: muster.ActorKey, Name: "admin", Role: catalog.RoleAdmin}

	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	got := make(chan string, 100)
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get(notify.HeaderDelivery)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(fast.Close)
	for name, url := range map[string]string{"slow": slow.URL, "fast": fast.URL} {
		if _, err := db.CreateOperator(ctx, muster.Operator{Name: name, Webhook: url}, "a-secret-of-some-length", admin); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.DeleteAlert(ctx, "backup-failed", admin); err != nil {
		t.Fatal(err)
	}
	web1, err := db.AuthenticateTarget(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	fail := func(runID string) {
		t.Helper()
		end := clk.Now()
		if _, err := db.UpsertRuns(ctx, web1, []catalog.RunUpload{{Revision: 1, Run: muster.Run{
			Job: "backup", RunID: runID, Status: muster.RunFailed, Trigger: "operator", StartedAt: end, FinishedAt: &end,
		}}}); err != nil {
			t.Fatal(err)
		}
	}
	alert := func(name, op string) {
		t.Helper()
		if _, err := db.CreateAlert(ctx, muster.Alert{Name: name, Event: muster.EventRunFailed, Notify: []string{op}}, admin); err != nil {
			t.Fatal(err)
		}
	}
	alert("to-slow", "slow")
	for i := range 2 * dueBatch {
		fail(fmt.Sprintf("r%d", i+2))
	}
	if _, _, err := db.DispatchEvents(ctx, newUID); err != nil {
		t.Fatal(err)
	}
	alert("to-fast", "fast")
	fail("last")

	a.start(db)
	defer a.stop()
	defer close(release)
	select {
	case <-got:
	case <-time.After(time.Minute):
		t.Fatal("the notification to the fast receiver was not sent while the slow one held its own")
	}
}

// A receiver that answers 429 or 503 with Retry-After is not tried again
// before it asks (within an hour), even where the Retry list would try
// sooner; a Retry-After shorter than the list's wait changes nothing.
func TestDispatcherHonoursRetryAfter(t *testing.T) {
	ctx := context.Background()
	var after atomic.Value
	after.Store("600")
	a, db, clk := dispatchFixtureWith(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", after.Load().(string))
		w.WriteHeader(http.StatusTooManyRequests)
	})
	next := func() time.Time {
		t.Helper()
		h, err := db.FindDeliveries(ctx, catalog.DeliveryFilter{})
		if err != nil || len(h) != 1 || h[0].NextAttemptAt == nil {
			t.Fatalf("history %+v %v, want one delivery, pending", h, err)
		}
		return *h[0].NextAttemptAt
	}
	if _, err := settle(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got, want := next(), clk.Now().Add(10*time.Minute); !got.Equal(want) {
		t.Errorf("after Retry-After: 600, the next attempt at %s, want %s (not the list's minute)", got, want)
	}
	clk.Add(10 * time.Minute)
	after.Store("1") // shorter than the list's 5 minutes
	if _, err := settle(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got, want := next(), clk.Now().Add(5*time.Minute); !got.Equal(want) {
		t.Errorf("after Retry-After: 1, the next attempt at %s, want %s (the list's wait)", got, want)
	}
}

// Notifications of one alert and one event due at once to one address go
// as one digest, carrying each with its own delivery id, and every one of
// them is recorded delivered: a fleet that fails together is told in one
// request, not one a target.
func TestDispatcherSendsADigestOfAFlood(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var bodies []notify.Payload
	a, db, clk := dispatchFixtureWith(t, func(w http.ResponseWriter, r *http.Request) {
		var p notify.Payload
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			t.Error(err)
		}
		mu.Lock()
		bodies = append(bodies, p)
		mu.Unlock()
	})
	failFourMore(t, db, clk.Now(), a)
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 1 {
		t.Fatalf("%d requests, want one digest", len(bodies))
	}
	d := bodies[0]
	ids := map[string]bool{}
	for _, e := range d.Events {
		if e.Event != muster.EventRunFailed || e.Delivery == "" {
			t.Errorf("digest event %+v, want run_failed with its delivery id", e)
		}
		ids[e.Delivery] = true
	}
	if d.Count != 5 || len(d.Events) != 5 || len(ids) != 5 || !strings.HasPrefix(d.Delivery, "digest-") ||
		d.Message != "5 run_failed events on web1 of job backup" {
		t.Errorf("digest %+v, want 5 run_failed events, each its own id", d)
	}
	delivered, err := db.FindDeliveries(ctx, catalog.DeliveryFilter{Status: muster.DeliveryDelivered})
	if err != nil {
		t.Fatal(err)
	}
	if len(delivered) != 5 {
		t.Errorf("%d deliveries recorded delivered, want 5", len(delivered))
	}
	for _, dl := range delivered {
		if !ids[dl.ID] {
			t.Errorf("delivery %s was recorded delivered but is not in the digest", dl.ID)
		}
	}
}

// A digest the receiver refuses as too large (413) is sent again in
// halves, at once, down to one notification a request: only a
// notification too large alone fails, not every one the digest carried.
func TestDispatcherSplitsADigestTooLarge(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	accepted := map[string]int{} // delivery id: times received in an accepted request
	refused := 0
	a, db, clk := dispatchFixtureWith(t, func(w http.ResponseWriter, r *http.Request) {
		var p notify.Payload
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			t.Error(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if p.Count > 2 || p.RunID == "r3" {
			refused++
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		if p.Count == 0 {
			accepted[p.Delivery]++
		}
		for _, e := range p.Events {
			accepted[e.Delivery]++
		}
	})
	failFourMore(t, db, clk.Now(), a)
	all, err := db.FindDeliveries(ctx, catalog.DeliveryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(all) != 5 {
		t.Fatalf("%d deliveries, want 5", len(all))
	}
	for _, d := range all {
		want, times := muster.DeliveryDelivered, 1
		if d.Event.RunID == "r3" {
			want, times = muster.DeliveryFailed, 0
		}
		if d.Status != want || d.Attempts != 1 || accepted[d.ID] != times {
			t.Errorf("delivery of %s: %s after %d attempts, received %d times; want %s after 1, received %d times",
				d.Event.RunID, d.Status, d.Attempts, accepted[d.ID], want, times)
		}
		if d.Event.RunID == "r3" && !strings.Contains(d.LastError, "413") {
			t.Errorf("delivery of r3 failed with %q, want the 413", d.LastError)
		}
	}
	// 5 refused, then 3 of its halves (2 and 3), then r3 alone.
	if refused != 3 {
		t.Errorf("%d requests refused, want 3", refused)
	}
}

// A lane that is sending to an address when the operator's address changes
// sends nothing more there: what it still held goes to the new address, as
// the pending deliveries were readdressed, and once only.
func TestLaneFollowsTheOperatorsNewAddress(t *testing.T) {
	ctx := context.Background()
	first, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var toOld, toNew []string // the run of each notification received
	a, db, clk := dispatchFixtureWith(t, func(w http.ResponseWriter, r *http.Request) {
		var p notify.Payload
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			t.Error(err)
		}
		mu.Lock()
		toOld = append(toOld, p.RunID)
		n := len(toOld)
		mu.Unlock()
		if n == 1 {
			close(first)
			<-release
		}
	})
	newHook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p notify.Payload
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			t.Error(err)
		}
		mu.Lock()
		toNew = append(toNew, p.RunID)
		mu.Unlock()
	}))
	t.Cleanup(newHook.Close)
	web1, err := db.AuthenticateTarget(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	end := clk.Now()
	if _, err := db.UpsertRuns(ctx, web1, []catalog.RunUpload{{Revision: 1, Run: muster.Run{
		Job: "backup", RunID: "r2", Status: muster.RunFailed, Trigger: "operator", StartedAt: end, FinishedAt: &end,
	}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.dispatchOnce(ctx); err != nil {
		t.Fatal(err)
	}
	<-first // the lane is sending r1's notification to the old address
	admin := muster.Actor{Kind: muster.ActorKey, Name: "admin", Role: catalog.RoleAdmin}
	hook := newHook.URL
	if _, _, err := db.UpdateOperator(ctx, "oncall", catalog.OperatorUpdate{Webhook: &hook}, func() string { return "unused" }, admin); err != nil {
		t.Fatal(err)
	}
	close(release)
	if _, err := settle(ctx, a); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(toOld) != 1 || toOld[0] != "r1" || len(toNew) != 1 || toNew[0] != "r2" {
		t.Errorf("the old address got %v, the new one %v; want [r1] and [r2]", toOld, toNew)
	}
	delivered, err := db.FindDeliveries(ctx, catalog.DeliveryFilter{Status: muster.DeliveryDelivered})
	if err != nil || len(delivered) != 2 {
		t.Errorf("%d delivered (%v), want 2", len(delivered), err)
	}
}

// failFourMore records four more failed runs of backup on web1 (r2 to r5),
// ending at end, and settles a's deliveries.
func failFourMore(t *testing.T, db *catalog.Catalog, end time.Time, a *alerting) {
	t.Helper()
	ctx := context.Background()
	web1, err := db.AuthenticateTarget(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 5; i++ {
		if _, err := db.UpsertRuns(ctx, web1, []catalog.RunUpload{{Revision: 1, Run: muster.Run{
			Job: "backup", RunID: fmt.Sprintf("r%d", i), Status: muster.RunFailed, Trigger: "operator", StartedAt: end, FinishedAt: &end,
		}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := settle(ctx, a); err != nil {
		t.Fatal(err)
	}
}

// Two operators an alert notifies may share a webhook (one team's relay)
// with secrets of their own: a digest carries the notifications of one
// operator, signed with its secret, so that each operator's notifications
// come signed as that operator's receiver checks them.
func TestDigestIsOneOperators(t *testing.T) {
	ctx := context.Background()
	secrets := map[string]string{"oncall": "a-secret-of-some-length", "dba": "another-secret-of-its-own"}
	var mu sync.Mutex
	received := map[string]int{} // operator: notifications received, signed with its secret
	var clk *pinned
	a, db, clk0 := dispatchFixtureWith(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p notify.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			t.Error(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if err := notify.Verify(secrets[p.Operator], body, r.Header.Get(notify.HeaderTimestamp), r.Header.Get(notify.HeaderSignature),
			clk.Now(), notify.DefaultTolerance); err != nil {
			t.Errorf("a notification for %s: %v", p.Operator, err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if p.Count == 0 {
			received[p.Operator]++
		}
		for _, e := range p.Events {
			if e.Operator != p.Operator {
				t.Errorf("a digest for %s carries a notification for %s", p.Operator, e.Operator)
				continue
			}
			received[e.Operator]++
		}
	})
	mu.Lock()
	clk = clk0
	mu.Unlock()
	admin := muster.Actor{Kind: muster.ActorKey, Name: "admin", Role: catalog.RoleAdmin}
	oncall, err := db.FindOperator(ctx, "oncall")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateOperator(ctx, muster.Operator{Name: "dba", Webhook: oncall.Webhook}, secrets["dba"], admin); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteAlert(ctx, "backup-failed", admin); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateAlert(ctx, muster.Alert{Name: "backup-failed", Event: muster.EventRunFailed, Notify: []string{"oncall", "dba"}}, admin); err != nil {
		t.Fatal(err)
	}
	failFourMore(t, db, clk.Now(), a)
	mu.Lock()
	defer mu.Unlock()
	if received["oncall"] != 5 || received["dba"] != 5 {
		t.Errorf("received %v, want 5 notifications for each operator", received)
	}
	delivered, err := db.FindDeliveries(ctx, catalog.DeliveryFilter{Status: muster.DeliveryDelivered})
	if err != nil {
		t.Fatal(err)
	}
	if len(delivered) != 10 {
		t.Errorf("%d deliveries recorded delivered, want 10", len(delivered))
	}
}
