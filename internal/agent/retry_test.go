package agent

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// The one retry loop of the daemon (polls, uploads, event forwards): a
// call at start, capped doubling backoff with jitter while calls fail,
// wake-ups ignored meanwhile, and a call per wake-up once they work again.
func TestRetryLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &Main{cfg: Config{MaxBackoff: 300 * time.Millisecond}, log: quiet()}
		wake := make(chan struct{}, 1)
		start := time.Now()
		var mu sync.Mutex
		var calls []time.Duration // since start
		count := func() int { mu.Lock(); defer mu.Unlock(); return len(calls) }
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			m.retryLoop(ctx, wake, "failed", "works again", func(context.Context) error {
				mu.Lock()
				defer mu.Unlock()
				calls = append(calls, time.Since(start))
				if len(calls) <= 4 {
					return errors.New("the master is away")
				}
				return nil
			})
		}()
		synctest.Wait()
		if count() != 1 || calls[0] != 0 {
			t.Fatalf("calls %v, want one at start", calls)
		}
		// A wake-up while backing off waits for the retry.
		wake <- struct{}{}
		synctest.Wait()
		if count() != 1 {
			t.Fatalf("a wake-up during the backoff made a call: %v", calls)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		// 4 failures, the success, and the call of the wake-up kept
		// meanwhile, right after the success.
		if count() != 6 || calls[5] != calls[4] {
			t.Fatalf("calls %v, want 4 failures, the success and the kept wake-up's", calls)
		}
		// Waits of 100, 200, 300 (capped) and 300 ms, each ±20 %.
		for i, want := range []time.Duration{100, 200, 300, 300} {
			want *= time.Millisecond
			got := calls[i+1] - calls[i]
			if got < want*8/10 || got > want*12/10 {
				t.Errorf("wait %d: %s, want %s ±20%%", i+1, got, want)
			}
		}
		// Once calls work, each wake-up makes one at once.
		time.Sleep(time.Second)
		wake <- struct{}{}
		synctest.Wait()
		if count() != 7 || calls[6] != 3*time.Second {
			t.Errorf("calls %v: a wake-up after the success makes a call at once", calls)
		}
		cancel()
		<-done
	})
}
