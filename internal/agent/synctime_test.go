package agent

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// A SYNC-TIME that sets the system clock (set_clock) reports the offset
// the clock has once set, not the one it had before: the target no longer
// shows, at every poll, a skew it corrected.
func TestSyncTimeThatSetsTheClockReportsTheOffsetAfter(t *testing.T) {
	tm := startTestMaster(t)
	m := tm.enlist(t, "web1")
	var skew atomic.Int64
	skew.Store(int64(5 * time.Second))
	m.cfg.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	m.cfg.Settings.SetClock = true
	defer func(set func(time.Time) error) { setSystemClock = set }(setSystemClock)
	setSystemClock = func(to time.Time) error {
		skew.Store(int64(time.Until(to)))
		return nil
	}
	if err := m.syncTime(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(skew.Load()); got.Abs() > time.Second {
		t.Fatalf("the clock was set %s off the master's, want within a second", got)
	}
	offset := m.clockOffset.Load()
	if offset == nil || offset.Abs() > time.Second {
		t.Errorf("the offset kept after setting the clock: %v, want within a second of none", offset)
	}
	enl, _, err := m.store.enlistment(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if enl.ClockOffset == nil || enl.ClockOffset.Abs() > time.Second {
		t.Errorf("the offset stored after setting the clock: %v, want within a second of none", enl.ClockOffset)
	}
}
