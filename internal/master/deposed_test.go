package master

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// leadUntilHeld runs store's competition for the singleton duties until
// the returned stop is called, and returns once it holds them.
func leadUntilHeld(t *testing.T, store catalog.Store) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	held := make(chan bool, 8)
	done := make(chan struct{})
	go func() { defer close(done); store.Lead(ctx, func(h bool) { held <- h }) }()
	stop = func() { cancel(); <-done }
	for h := range held {
		if h {
			return stop
		}
	}
	return stop
}

// A master whose lease on the singleton duties ended (it froze, the
// database ended its idle session, another master took the duties) and
// that has not heard so yet, because it has only just resumed, sends no
// notification: the database, not the master's belief, says who delivers.
// The master that holds the duties sends it, once.
func TestDeposedLeaderSendsNoNotification(t *testing.T) {
	ctx := context.Background()
	url := catalogtest.PostgresURL(t)
	var sent atomic.Int32
	storeA := catalogtest.OpenPostgres(t, url)
	var asked atomic.Int32 // times a asked whether it holds the duties
	timedA := catalog.TimeStore(storeA, func(op string, _ time.Duration) {
		if op == "HoldsDuties" {
			asked.Add(1)
		}
	})
	a, dbA, clk := dispatchFixtureOn(t, timedA, func(w http.ResponseWriter, r *http.Request) { sent.Add(1) })

	stopA := leadUntilHeld(t, storeA)
	stopA() // a's lease session ends, as a frozen master's does
	storeB := catalogtest.OpenPostgres(t, url)
	stopB := leadUntilHeld(t, storeB)
	defer stopB()

	// a still believes it leads (its alerting's leader is always true).
	if _, err := settle(ctx, a); err != nil {
		t.Fatal(err)
	}
	if n := sent.Load(); n != 0 {
		t.Fatalf("a master that lost the duties sent %d notifications, want 0", n)
	}
	// Told once, it does not ask again at every pass until its lease's
	// next check tells it too.
	if n := asked.Load(); n != 1 {
		t.Errorf("a asked whether it holds the duties %d times in two passes, want 1", n)
	}
	dbB, err := catalog.Open(ctx, storeB, catalog.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer dbB.Close()
	cfg := DefaultConfig()
	cfg.Now, cfg.Alerts = clk.Now, a.cfg
	b, err := newAlerting(cfg, a.log)
	if err != nil {
		t.Fatal(err)
	}
	b.db, b.started = dbB, clk.Now()
	if _, err := settle(ctx, b); err != nil {
		t.Fatal(err)
	}
	if n := sent.Load(); n != 1 {
		t.Fatalf("the master holding the duties sent %d notifications, want 1", n)
	}
	// a, resumed, does not send it again.
	clk.Add(a.cfg.MaxIdle)
	if _, err := settle(ctx, a); err != nil {
		t.Fatal(err)
	}
	if n := sent.Load(); n != 1 {
		t.Errorf("notifications sent: %d, want 1", n)
	}
	ds, err := dbA.FindDeliveries(ctx, catalog.DeliveryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Status != muster.DeliveryDelivered || ds[0].Attempts != 1 {
		t.Errorf("deliveries %+v, want one delivered at its first attempt", ds)
	}
}
