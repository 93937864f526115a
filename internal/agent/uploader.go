package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/musterhq/muster"
)

// Limits on one upload: how many runs it carries, and about how many bytes
// (the master accepts up to 64 MiB). A run larger than maxRunUpload is sent
// with its attempts' outputs cut to fit (the spool keeps them whole), so one
// huge run never blocks the others.
const (
	uploadBatch   = 500
	maxUploadSize = 32 << 20
	maxRunUpload  = 8 << 20
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

// uploadOnce sends every unsent run, in batches, and records the master's
// per-run answers. A run the master refuses is kept locally, marked with
// the reason, and not sent again.
func (m *Main) uploadOnce(ctx context.Context) error {
	for {
		unsent, err := m.store.unsentRuns(ctx, uploadBatch)
		if err != nil || len(unsent) == 0 {
			return err
		}
		runs, size := unsent[:0], 0
		for _, rep := range unsent {
			fitRun(&rep.Run, maxRunUpload)
			n := runSize(rep.Run)
			if len(runs) > 0 && size+n > maxUploadSize {
				break
			}
			runs, size = append(runs, rep), size+n
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
		if len(unsent) < uploadBatch && len(runs) == len(unsent) {
			return m.expireRuns(ctx)
		}
	}
}

// runSize estimates a run's encoded size.
func runSize(r muster.Run) int {
	n := 1024 + len(r.Message)
	for _, a := range r.Steps {
		n += 512 + len(a.Output) + len(a.Message)
	}
	return n
}

// fitRun cuts the outputs of a run's attempts, keeping each one's head and
// tail, until the run's size is within max.
func fitRun(r *muster.Run, max int) {
	if runSize(*r) <= max || len(r.Steps) == 0 {
		return
	}
	budget := max / len(r.Steps) / 2 * 2
	for i := range r.Steps {
		out := r.Steps[i].Output
		if len(out) <= budget {
			continue
		}
		half := budget / 2
		r.Steps[i].Output = out[:half] + fmt.Sprintf("\n[muster: %d bytes of this output are kept on the target only]\n", len(out)-2*half) + out[len(out)-half:]
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
