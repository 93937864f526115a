package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/jsonhttp"
)

// Limits on one upload: how many runs it carries, and about how many bytes
// once encoded (the master accepts up to agentproto.MaxRunsBody). A run
// whose output still to send is larger goes alone, in as many uploads as
// it takes.
const (
	uploadBatch   = 500
	maxUploadSize = 32 << 20
)

// uploadLimits are what one upload is cut to: at most runs runs, about body
// bytes as encoded, and about report bytes for one run's report.
type uploadLimits struct {
	runs, body, report int
}

// defaultUploadLimits are the limits of an upload to a master that takes
// what the protocol says it takes.
func defaultUploadLimits() uploadLimits {
	return uploadLimits{runs: uploadBatch, body: maxUploadSize, report: agentproto.MaxRunReport}
}

// smaller returns the limits for sending again an upload up that the
// master refused as too large (413): half its runs, or, for one run, half
// its report. It returns false when up cannot be cut: one run with at most
// one chunk of output.
func (l uploadLimits) smaller(up upload) (uploadLimits, bool) {
	size := 0
	for _, rep := range up.reports {
		size += reportSize(rep)
	}
	switch {
	case len(up.reports) > 1:
		l.runs, l.body = len(up.reports)/2, max(size/2, 1)
	case len(up.reports) == 1 && len(up.reports[0].Output) > 1:
		l.body, l.report = max(size/2, 1), max(size/2, 1)
	default:
		return l, false
	}
	return l, true
}

// reportSize is about how many bytes rep takes as sent.
func reportSize(rep agentproto.RunReport) int {
	n := runOverhead + encodedLen(rep.Run.Message)
	for _, c := range rep.Output {
		n += 64 + encodedLen(c.Data)
	}
	return n
}

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
// again. An upload the master refuses as too large is cut in half, and
// the uploads after it are kept as small, until one run with one chunk of
// output is refused: see tooLarge.
func (m *Main) uploadOnce(ctx context.Context) error {
	lim := m.uploadLimits
	for {
		m.exec.quiet(ctx)
		up, err := m.store.unsentRuns(ctx, lim)
		if err != nil || len(up.reports) == 0 {
			return err
		}
		results, err := m.client.uploadRuns(ctx, up.reports)
		// A refusal of the upload as too large, which is not a reply over
		// what the target reads (jsonhttp.ReplyError, ETOOLARGE too): the
		// master may have taken that upload, and nothing is left out.
		var unreadable *jsonhttp.ReplyError
		if muster.ErrorCode(err) == muster.ETOOLARGE && !errors.As(err, &unreadable) {
			if smaller, ok := lim.smaller(up); ok {
				lim = smaller
				continue
			}
			if err := m.tooLarge(ctx, up.reports[0], up.lastChunk[0], err); err != nil {
				return err
			}
			continue
		}
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
		if len(up.reports) < lim.runs && !up.more {
			return m.expireRuns(ctx)
		}
	}
}

// tooLarge deals with the report of one run that the master refused as too
// large although it carries at most one chunk of output (lastChunk, the
// last it carries), which no retry will change. The chunk is left out: the
// run is sent again without it, so that its outcome reaches the master,
// whose copy of the output says how many bytes never reached it. A report
// with no output is refused for what the run is; it is kept in the spool,
// marked refused, as a run the master refuses is. Either way an
// agent_error event says what was lost.
func (m *Main) tooLarge(ctx context.Context, rep agentproto.RunReport, lastChunk int64, refusal error) error {
	e := localEvent{name: muster.EventAgentError, job: rep.Run.Job, runID: rep.Run.RunID, at: m.cfg.Now()}
	if len(rep.Output) == 0 {
		reason := fmt.Sprintf("the master refused the run's report as too large: %s", muster.ErrorMessage(refusal))
		if err := m.store.rejectRun(ctx, rep.Run.RunID, rep.Revision, reason); err != nil {
			return err
		}
		e.message = fmt.Sprintf("run %s: %s; the run is kept in the target's spool only", rep.Run.RunID, reason)
	} else {
		c := rep.Output[0]
		if err := m.store.skipOutput(ctx, rep.Run.RunID, lastChunk); err != nil {
			return err
		}
		e.message = fmt.Sprintf("run %s: the master refused %d bytes of output of attempt %d, from byte %d, as too large (%s); they are left out, and the run is sent without them",
			rep.Run.RunID, len(c.Data), c.Attempt+1, c.Offset, muster.ErrorMessage(refusal))
	}
	m.log.Warn("an upload was refused as too large", muster.LogJob, rep.Run.Job, muster.LogRunID, rep.Run.RunID, muster.LogErr, refusal)
	m.raise(ctx, e)
	return nil
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
