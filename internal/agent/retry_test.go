package agent

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/jsonhttp"
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

// A failure whose reply said when to come back (Retry-After) is retried
// no sooner, with up to a fifth more so that a refused fleet spreads out;
// a wait shorter than the backoff (100 ms after a first failure) is the
// backoff's, and one beyond maxRetryAfter is cut to it.
func TestRetryLoopWaitsWhatTheMasterAsks(t *testing.T) {
	for _, tc := range []struct {
		name       string
		after      time.Duration
		atLeast    time.Duration
		atMost     time.Duration
		maxBackoff time.Duration
	}{
		{"longer than the backoff", 30 * time.Second, 30 * time.Second, 36 * time.Second, 300 * time.Millisecond},
		{"shorter than the backoff", 50 * time.Millisecond, 80 * time.Millisecond, 120 * time.Millisecond, time.Second},
		{"beyond the cap", 24 * time.Hour, maxRetryAfter, maxRetryAfter * 6 / 5, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := &Main{cfg: Config{MaxBackoff: tc.maxBackoff}, log: quiet()}
				refusal := &jsonhttp.RetryLater{Err: muster.Errorf(muster.ERATELIMIT, "busy"), After: tc.after}
				start := time.Now()
				var calls []time.Duration
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan struct{})
				go func() {
					defer close(done)
					m.retryLoop(ctx, nil, "failed", "works again", func(context.Context) error {
						calls = append(calls, time.Since(start))
						if len(calls) == 1 {
							return refusal
						}
						cancel()
						return nil
					})
				}()
				<-done
				if len(calls) != 2 {
					t.Fatalf("calls %v, want a refusal and its retry", calls)
				}
				if got := calls[1] - calls[0]; got < tc.atLeast || got > tc.atMost {
					t.Errorf("retried after %s, want %s to %s", got, tc.atLeast, tc.atMost)
				}
			})
		})
	}
}
