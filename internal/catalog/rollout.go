package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
)

// A rollout is a job started in waves, driven by the master so that it
// goes on whoever asked for it and whichever master serves. StartJob stores
// it, with every target's wave and run id, and posts its first wave. When
// every run of the wave posted last has ended, advanceRollouts posts the
// next; it runs where a run upload releases held-back STARTs and, as a
// backstop for STARTs that were refused or expired unrun, from the
// master's periodic duty (AdvanceRollouts). A wave is posted by whoever
// moves the rollout's current wave on, a guarded update: once, however many
// masters release it at once.

// MaxRolloutsShown bounds how many of a job's rollouts FindRollouts returns.
const MaxRolloutsShown = 20

// RolloutTargetGone is why a rollout's target was not run when no START
// of it was posted or held back: the target was deleted or taken out of
// the job before its START was posted, or a STOP dropped the START
// max_parallel_targets held back.
const RolloutTargetGone = "no START was posted: the target was deleted or taken out of the job, or a STOP dropped the START held back by max_parallel_targets"

// RolloutRunLost is why a rollout's target was not run when it collected
// its START but was deleted before its run was recorded.
const RolloutRunLost = "the target was deleted before its run was recorded"

// rolloutInsertBatch is how many targets of a rollout one statement
// inserts.
const rolloutInsertBatch = 500

// rolloutRequest is what each START of a rollout carries, as stored.
type rolloutRequest struct {
	Payload   agentproto.StartPayload `json:"payload"` // run id and expiry set when posted
	ExpiresIn time.Duration           `json:"expires_in"`
}

// createRollout stores a rollout of job over targets, in that order, with
// their run ids, and returns it as it stands once its first wave is posted.
func (tx *tx) createRollout(job storedJob, spec muster.RolloutSpec, targets, runIDs []string, req rolloutRequest, by muster.Actor) (muster.Rollout, error) {
	size, err := spec.WaveSize(len(targets))
	if err != nil {
		return muster.Rollout{}, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return muster.Rollout{}, err
	}
	row := RolloutRow{JobID: job.id, Job: job.job.Name, State: muster.RolloutRunning, Batch: spec.Batch, WaveSize: size,
		Waves: (len(targets) + size - 1) / size, MaxFailures: spec.MaxFailures, Wave: 1, Request: body,
		CreatedAt: tx.now, CreatedBy: by.Name}
	if row.ID, err = tx.InsertRollout(tx.ctx, row); err != nil {
		return muster.Rollout{}, err
	}
	ts := make([]RolloutTargetRow, len(targets))
	for i, t := range targets {
		ts[i] = RolloutTargetRow{RolloutID: row.ID, Position: i, Wave: i/size + 1, TargetID: job.targets[t], Target: t, RunID: runIDs[i]}
	}
	for chunk := range slices.Chunk(ts, rolloutInsertBatch) {
		if err := tx.InsertRolloutTargets(tx.ctx, chunk); err != nil {
			return muster.Rollout{}, err
		}
	}
	// The caller posts the first wave, or holds it back: it shows posted.
	for i := range ts {
		ts[i].Held = ts[i].Wave == 1
	}
	return rolloutOf(row, ts, tx.now), nil
}

// rolloutOf returns a stored rollout with how each of its targets stands
// at now.
func rolloutOf(row RolloutRow, ts []RolloutTargetRow, now time.Time) muster.Rollout {
	ro := muster.Rollout{ID: row.ID, Job: row.Job, State: row.State, Reason: row.Reason, Wave: row.Wave, Waves: row.Waves,
		WaveSize: row.WaveSize, Batch: row.Batch, MaxFailures: row.MaxFailures, CreatedAt: row.CreatedAt,
		CreatedBy: row.CreatedBy, EndedAt: row.EndedAt, Targets: make([]muster.RolloutTarget, 0, len(ts))}
	for _, t := range ts {
		rt := rolloutTarget(t, row.Wave, now)
		if t.Wave <= row.Wave {
			ro.Started++
		}
		switch {
		case rt.Status == string(muster.RunSucceeded):
			ro.Succeeded++
		case rt.Failed():
			ro.Failed++
		}
		ro.Targets = append(ro.Targets, rt)
	}
	return ro
}

// rolloutTarget says how a target of a rollout whose last wave posted is
// wave stands at now.
func rolloutTarget(t RolloutTargetRow, wave int, now time.Time) muster.RolloutTarget {
	out := muster.RolloutTarget{Target: t.Target, Wave: t.Wave, RunID: t.RunID}
	// A START refused, superseded or deleted, or held back and dropped
	// before it was posted, has the run the master recorded for it,
	// skipped (endStarts, dropQueued): the START says more.
	settled := t.StartStatus == muster.InstructionFailed || t.StartStatus == muster.InstructionSuperseded ||
		t.StartStatus == muster.InstructionDeleted || (t.StartStatus == "" && !t.Held)
	switch {
	case t.RunStatus != "" && !(settled && t.RunStatus == muster.RunSkipped):
		out.Status, out.DurationMS, out.Message = string(t.RunStatus), t.DurationMS, t.Message
	case t.Wave > wave:
		out.Status = muster.RolloutWaiting
	case t.StartStatus == muster.InstructionFailed:
		out.Status, out.Message = muster.RolloutNotRun, "the target refused the START: "+t.StartError
	case t.StartStatus == muster.InstructionSuperseded || t.StartStatus == muster.InstructionDeleted:
		out.Status, out.Message = muster.RolloutNotRun, "the START was "+string(t.StartStatus)
	case t.StartStatus == muster.InstructionPending && t.ExpiresAt != nil && !now.Before(*t.ExpiresAt):
		out.Status, out.Message = muster.RolloutNotRun, "the START expired before the target collected it"
	case t.StartStatus == muster.InstructionDownloaded && t.Gone:
		out.Status, out.Message = muster.RolloutNotRun, RolloutRunLost
	case t.StartStatus == "" && !t.Held:
		// Never posted, and no longer held back: dropped with the target
		// (deleted, or out of the job) or by a STOP, or never posted to a
		// target gone before its wave.
		out.Status, out.Message = muster.RolloutNotRun, RolloutTargetGone
	default:
		out.Status = muster.RolloutPosted // posted, or held back by max_parallel_targets
	}
	return out
}

// advanceRollouts moves on the running rollouts of job: each halts when
// more of its runs failed than it allows, ends when its last wave has
// ended, and otherwise posts its next wave once the current one has ended.
func (tx *tx) advanceRollouts(job string) error {
	rows, err := tx.FindRollouts(tx.ctx, RolloutQuery{Job: job, RunningOnly: true})
	if err != nil || len(rows) == 0 {
		return err
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	all, err := tx.RolloutTargets(tx.ctx, ids)
	if err != nil {
		return err
	}
	byRollout := map[int64][]RolloutTargetRow{}
	for _, t := range all {
		byRollout[t.RolloutID] = append(byRollout[t.RolloutID], t)
	}
	for _, row := range rows {
		if err := tx.advanceRollout(row, byRollout[row.ID]); err != nil {
			return fmt.Errorf("rollout %d: %w", row.ID, err)
		}
	}
	return nil
}

// advanceRollout moves one running rollout on, if it can.
func (tx *tx) advanceRollout(row RolloutRow, ts []RolloutTargetRow) error {
	ro := rolloutOf(row, ts, tx.now)
	if ro.Failed > ro.MaxFailures {
		why := fmt.Sprintf("%d run(s) failed by wave %d/%d, more than max_failures %d", ro.Failed, ro.Wave, ro.Waves, ro.MaxFailures)
		_, err := tx.EndRollout(tx.ctx, row.ID, muster.RolloutHalted, why, tx.now)
		return err
	}
	for _, t := range ro.WaveTargets(ro.Wave) {
		if !t.Ended() {
			return nil
		}
	}
	if ro.Wave >= ro.Waves {
		_, err := tx.EndRollout(tx.ctx, row.ID, muster.RolloutDone, "", tx.now)
		return err
	}
	// The job's row first, then the rollout's, in the order a run upload
	// releasing held-back STARTs takes them: two masters never wait on
	// each other.
	job, err := tx.lockJobToPost(row.Job)
	if muster.ErrorCode(err) == muster.ENOTFOUND {
		return nil // deleted meanwhile: its rollouts go with it
	}
	if err != nil {
		return err
	}
	var req rolloutRequest
	if err := json.Unmarshal(row.Request, &req); err != nil {
		return err
	}
	if gone, ok := job.stepGone(req.Payload.Step); ok {
		// The job was applied again without the step the rollout begins
		// at: every target of the wave would refuse its START, and be
		// left blocked by it.
		why := fmt.Sprintf("%s, where the rollout begins: wave %d/%d not started", gone, ro.Wave+1, ro.Waves)
		_, err := tx.EndRollout(tx.ctx, row.ID, muster.RolloutHalted, why, tx.now)
		return err
	}
	// A target deleted, or taken out of the job, since the rollout began
	// gets no START: it would never collect it, or would refuse it. It
	// counts not run, a failure, before the wave's others start.
	var targets, runIDs, gone []string
	for _, t := range ts {
		if t.Wave != ro.Wave+1 {
			continue
		}
		if id, ok := job.targets[t.Target]; !ok || id != t.TargetID {
			gone = append(gone, t.Target)
			continue
		}
		targets, runIDs = append(targets, t.Target), append(runIDs, t.RunID)
	}
	if len(gone) > 0 && ro.Failed+len(gone) > ro.MaxFailures {
		why := fmt.Sprintf("%d run(s) failed by wave %d/%d, and %s of wave %d deleted or taken out of the job: more than max_failures %d",
			ro.Failed, ro.Wave, ro.Waves, strings.Join(gone, ", "), ro.Wave+1, ro.MaxFailures)
		_, err := tx.EndRollout(tx.ctx, row.ID, muster.RolloutHalted, why, tx.now)
		return err
	}
	mine, err := tx.AdvanceRollout(tx.ctx, row.ID, ro.Wave, ro.Wave+1)
	if err != nil || !mine {
		return err // another master posts the wave
	}
	if len(targets) == 0 {
		// Nothing to wait for: the wave ended as it began.
		row.Wave++
		return tx.advanceRollout(row, ts)
	}
	_, err = tx.startRuns(job, targets, runIDs, req.Payload, req.ExpiresIn)
	return err
}

// cancelRollouts cancels the running rollouts of a job that by stopped,
// and returns a line for each, saying how many targets it never started.
func (tx *tx) cancelRollouts(job string, by muster.Actor) ([]string, error) {
	rows, err := tx.FindRollouts(tx.ctx, RolloutQuery{Job: job, RunningOnly: true})
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	ts, err := tx.RolloutTargets(tx.ctx, ids)
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, r := range rows {
		ok, err := tx.EndRollout(tx.ctx, r.ID, muster.RolloutCancelled, "the job was stopped by "+by.Name, tx.now)
		if err != nil {
			return nil, err
		}
		if ok {
			waiting := 0
			for _, t := range ts {
				if t.RolloutID == r.ID && t.Wave > r.Wave {
					waiting++
				}
			}
			lines = append(lines, fmt.Sprintf("rollout %d cancelled at wave %d/%d: %d target(s) not started", r.ID, r.Wave, r.Waves, waiting))
		}
	}
	return lines, nil
}

// AdvanceRollouts moves on the running rollouts of every job. The master
// calls it periodically, for waves whose last runs ended with a START that
// was refused or expired rather than with a run uploaded.
func (c *Catalog) AdvanceRollouts(ctx context.Context) error {
	jobs, err := c.store.JobsWithRunningRollouts(ctx)
	if err != nil || len(jobs) == 0 {
		return err
	}
	return c.update(ctx, func(tx *tx) error {
		for _, j := range jobs {
			if err := tx.advanceRollouts(j); err != nil {
				return err
			}
		}
		return nil
	})
}

// FindRollouts returns a job's rollouts, newest first (at most
// MaxRolloutsShown), with how each target stands; id, when not 0, picks
// one.
func (c *Catalog) FindRollouts(ctx context.Context, job string, id int64) ([]muster.Rollout, error) {
	rows, err := c.store.FindRollouts(ctx, RolloutQuery{Job: job, ID: id, Limit: MaxRolloutsShown})
	if err != nil || len(rows) == 0 {
		return []muster.Rollout{}, err
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	all, err := c.store.RolloutTargets(ctx, ids)
	if err != nil {
		return nil, err
	}
	byRollout := map[int64][]RolloutTargetRow{}
	for _, t := range all {
		byRollout[t.RolloutID] = append(byRollout[t.RolloutID], t)
	}
	now := c.opts.Now()
	out := make([]muster.Rollout, len(rows))
	for i, r := range rows {
		out[i] = rolloutOf(r, byRollout[r.ID], now)
	}
	return out, nil
}
