package agent

import (
	"context"
	"time"

	"github.com/musterhq/muster"
)

// Limits on one upload: how many runs it carries, and about how many bytes
// once encoded (the master accepts up to 64 MiB). A run whose output still
// to send is larger goes alone, in as many uploads as it takes.
const (
	uploadBatch   = 500
	maxUploadSize = 32 << 20
)

// expireEvery is how often runs past their retention are deleted from the
// spool. Each sweep is a write of the store; once per upload would cost a
// synced commit per run.
const expireEvery = time.Minute

// uploadLoop sends the spool to the master whenever a run changes, and
// retries with capped backoff while the master is unreachable. A run is
// uploaded within moments of finishing.
func (m *Main) uploadLoop(ctx context.Context) {
	m.retryLoop(ctx, m.uploadWake, "run upload failed; the runs stay in the spool", "run upload works again", m.uploadOnce)
}

// uploadOnce sends every unsent run, with the output the master does not
// hold yet, in batches, and records the master's per-run answers. A run
// the master refuses is kept locally, marked with the reason, and not sent
// again.
func (m *Main) uploadOnce(ctx context.Context) error {
	for {
		up, err := m.store.unsentRuns(ctx, uploadBatch, maxUploadSize)
		if err != nil || len(up.reports) == 0 {
			return err
		}
		results, err := m.client.uploadRuns(ctx, up.reports)
		if err != nil {
			return err
		}
		for _, r := range results {
			if !r.OK {
				m.log.Error("the master refused a run", muster.LogRunID, r.RunID, muster.LogErr, r.Error)
			}
		}
		if err := m.store.markUploaded(ctx, up, results); err != nil {
			return err
		}
		if len(up.reports) < uploadBatch && !up.more {
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
