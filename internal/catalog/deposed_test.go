package catalog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// lead runs c's competition for the singleton duties until the returned
// stop is called, and returns once c holds them.
func lead(tb testing.TB, c *catalog.Catalog) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	held, done := make(chan bool, 8), make(chan struct{})
	go func() { defer close(done); c.Store().Lead(ctx, func(h bool) { held <- h }) }()
	for !<-held {
	}
	return func() { cancel(); <-done }
}

// twoLeading opens two catalogs on one new PostgreSQL catalog, with one
// clock, that write heartbeats only when told (FlushHeartbeats).
func twoLeading(t *testing.T) (a, b *catalog.Catalog, clk *clock) {
	t.Helper()
	url := catalogtest.PostgresURL(t)
	clk = &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	open := func() *catalog.Catalog {
		c, err := catalog.Open(context.Background(), catalogtest.OpenPostgres(t, url), catalog.Options{Now: clk.Now, HeartbeatFlush: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	return open(), open(), clk
}

// A master frozen with a target's heartbeat not yet written (it writes
// them once a second), and resumed minutes later after the target moved to
// another master and polled it there, does not announce the target
// offline: a heartbeat in its memory older than the one the catalog has is
// not the target's last poll.
func TestStaleHeartbeatInMemoryIsNotTheLastPoll(t *testing.T) {
	ctx := context.Background()
	a, b, clk := twoLeading(t)
	web1 := enlist(t, a, "web1")
	upSince := clk.Now()
	stopA := lead(t, a)
	defer stopA()
	a.RecordPoll(web1.ID, catalog.Heartbeat{At: clk.Now(), PollInterval: 60})
	clk.Add(10 * time.Minute) // a is frozen meanwhile
	b.RecordPoll(web1.ID, catalog.Heartbeat{At: clk.Now(), PollInterval: 60})
	if err := b.FlushHeartbeats(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := a.DetectPresence(ctx, upSince); n != 0 || err != nil {
		t.Errorf("a, resumed: %d events (%v), want none: web1 polled b just now", n, err)
	}
	if got := eventNames(mustEvents(t, a, catalog.EventFilter{})); len(got) != 0 {
		t.Errorf("events: %q, want none", got)
	}
}

// A master deposed while it was frozen, that has not heard so yet, commits
// no act of the singleton duties: its detection fails with ErrNotLeader
// and raises nothing; the master holding the duties raises the event.
func TestDeposedMasterCommitsNoDetection(t *testing.T) {
	ctx := context.Background()
	a, b, clk := twoLeading(t)
	enlist(t, a, "web1")
	upSince := clk.Now()
	stopA := lead(t, a)
	stopA() // a freezes: its lease's session ends
	stopB := lead(t, b)
	defer stopB()
	clk.Add(3*time.Minute + time.Second) // web1 never polled

	n, err := a.DetectPresence(ctx, upSince)
	if !errors.Is(err, catalog.ErrNotLeader) || n != 0 {
		t.Errorf("deposed a's detection: %d events, err %v; want none, ErrNotLeader", n, err)
	}
	if got := eventNames(mustEvents(t, a, catalog.EventFilter{})); len(got) != 0 {
		t.Fatalf("events after the deposed master's detection: %q, want none", got)
	}
	if n, err := b.DetectPresence(ctx, upSince); n != 1 || err != nil {
		t.Errorf("b, holding the duties: %d events (%v), want 1 (target_offline)", n, err)
	}
}
