package target

import (
	"context"
	"time"
)

// uploadBatch is how many runs one upload carries.
const uploadBatch = 500

// expireEvery is how often runs past their retention are deleted from the
// spool. Each sweep is a write of the store; once per upload would cost a
// synced commit per run.
const expireEvery = time.Minute

// uploadLoop sends the spool to the master whenever a run changes, and
// retries with capped backoff while the master is unreachable. A run is
// uploaded within moments of finishing.
func (m *Main) uploadLoop(ctx context.Context) {
	failures := 0
	retry := time.NewTimer(0) // upload at start whatever the previous process left
	defer retry.Stop()
	for {
		wake := m.uploadWake
		if failures > 0 {
			wake = nil // while backing off, new runs wait for the retry
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-retry.C:
		}
		if err := m.uploadOnce(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			d := m.backoff(failures)
			failures++
			logFailure(m.log, failures, "run upload failed; the runs stay in the spool", err, d)
			retry.Reset(d)
			continue
		}
		if failures > 0 {
			m.log.Info("run upload works again", "after_failures", failures)
		}
		failures = 0
	}
}

// uploadOnce sends every unsent run, in batches, and records the master's
// per-run answers. A run the master refuses is kept locally, marked with
// the reason, and not sent again.
func (m *Main) uploadOnce(ctx context.Context) error {
	for {
		runs, err := m.store.unsentRuns(ctx, uploadBatch)
		if err != nil || len(runs) == 0 {
			return err
		}
		results, err := m.client.uploadRuns(ctx, runs)
		if err != nil {
			return err
		}
		for _, r := range results {
			if !r.OK {
				m.log.Error("the master refused a run", "run_id", r.RunID, "err", r.Error)
			}
		}
		if err := m.store.markUploaded(ctx, runs, results); err != nil {
			return err
		}
		if len(runs) < uploadBatch {
			return m.expireRuns(ctx)
		}
	}
}

// expireRuns deletes the runs the master holds that are past their
// retention, at most once every expireEvery.
func (m *Main) expireRuns(ctx context.Context) error {
	now := m.cfg.Now()
	if !m.expiredAt.IsZero() && now.Sub(m.expiredAt) < expireEvery {
		return nil
	}
	if err := m.store.expireRuns(ctx, now.Add(-m.cfg.Settings.RunRetention.Std())); err != nil {
		return err
	}
	m.expiredAt = now
	return nil
}
