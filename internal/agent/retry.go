package agent

import (
	"context"
	"time"

	"github.com/musterhq/muster"
)

// retryLoop is how the daemon talks to its master: it calls once at start
// (for whatever a previous process left) and whenever wake fires, until ctx
// is done. While once fails it is retried with capped, jittered backoff,
// and wake-ups wait for the retry, so that a master that is away is not
// hammered by every new run or event. failed and recovered are what the
// log says when once fails and when it works again.
func (m *Main) retryLoop(ctx context.Context, wake <-chan struct{}, failed, recovered string, once func(context.Context) error) {
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
			d := m.backoff(failures)
			failures++
			logFailure(m.log, failures, failed, err, d)
			retry.Reset(d)
			continue
		}
		if failures > 0 {
			m.log.Info(recovered, muster.LogFailures, failures)
		}
		failures = 0
	}
}

// always is a wake-up that is always there: a loop woken by it runs again
// as soon as it is done (the poll loop, whose every call is a long poll).
var always = func() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()
