package agent

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/jsonhttp"
)

// retryLoop is how the daemon talks to its master: it calls once at start
// (for whatever a previous process left) and whenever wake fires, until ctx
// is done. While once fails it is retried with capped, jittered backoff,
// or after the wait the master asked for (Retry-After) when that is
// longer, and wake-ups wait for the retry, so that a master that is away
// or busy is not hammered by every new run or event. failed and recovered
// are what the log says when once fails and when it works again.
func (m *Main) retryLoop(ctx context.Context, wake <-chan struct{}, failed, recovered string, once func(context.Context) error) {
	retryLoop(ctx, m.log, m.cfg.MaxBackoff, wake, failed, recovered, once)
}

// retryLoop is the loop of Main.retryLoop, for callers that have no Main:
// log is told of failures, maxBackoff caps the backoff. An empty recovered
// logs nothing when once works again.
func retryLoop(ctx context.Context, log *slog.Logger, maxBackoff time.Duration, wake <-chan struct{}, failed, recovered string,
	once func(context.Context) error) {
	failures := 0
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		woken := wake
		if failures > 0 {
			woken = nil
		}
		select {
		case <-ctx.Done():
			return
		case <-woken:
		case <-retry.C:
		}
		if err := once(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			d := retryDelay(maxBackoff, failures, err)
			failures++
			logFailure(log, failures, failed, err, d)
			retry.Reset(d)
			continue
		}
		if failures > 0 && recovered != "" {
			log.Info(recovered, muster.LogFailures, failures)
		}
		failures = 0
	}
}

// maxRetryAfter caps the wait a master may ask for with Retry-After: a
// master (or something in front of it) asking for an hour must not make a
// target fall silent for that long.
const maxRetryAfter = 5 * time.Minute

// retryDelay is the wait after failure n (from 0) in a row, err: the
// backoff, or the wait the reply asked for (Retry-After, up to
// maxRetryAfter, with up to 20 % more so that a fleet refused at once does
// not come back at once) when that is longer.
func retryDelay(maxBackoff time.Duration, n int, err error) time.Duration {
	d := backoff(maxBackoff, n)
	if after, ok := jsonhttp.RetryAfter(err); ok {
		after = min(after, maxRetryAfter)
		d = max(d, after+rand.N(after/5+1))
	}
	return d
}

// backoff returns the wait before attempt n (from 0) to reach the master:
// doubling from 100 ms, capped at maxBackoff, with ±20 % jitter so a fleet
// reconnecting after an outage spreads out.
func backoff(maxBackoff time.Duration, n int) time.Duration {
	d := 100 * time.Millisecond << min(n, 10)
	d = min(d, maxBackoff)
	jitter := time.Duration(rand.Int64N(int64(d)/5*2+1)) - d/5
	return d + jitter
}

// untilAccepted calls once until a master does not refuse it for now: a
// refusal that asks to try again (a 429 or 503 with Retry-After) within
// maxWait is retried through retryLoop, at most attempts calls in all. It
// returns what the last call returned. For a client of the master with no
// daemon to run it (enlistment).
func untilAccepted(ctx context.Context, log *slog.Logger, attempts int, maxWait time.Duration, once func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var err error
	calls := 0
	retryLoop(ctx, log, DefaultConfig().MaxBackoff, nil, "the master refused for now; trying again", "", func(ctx context.Context) error {
		calls++
		err = once(ctx)
		if after, ok := jsonhttp.RetryAfter(err); ok && after <= maxWait && calls < attempts {
			return err
		}
		cancel()
		return nil
	})
	return err
}

// always is a wake-up that is always there: a loop woken by it runs again
// as soon as it is done (the poll loop, whose every call is a long poll).
var always = func() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()
