package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
)

// Limits on an uploaded run.
const (
	MaxRunsPerUpload = 1000
	MaxRunIDLen      = 64
	MaxAttempts      = 10 * muster.MaxSteps // a run never executes more than 10 × its steps
	MaxOutputBytes   = 4 << 20              // per attempt, as uploaded
	MaxMessageLen    = 4096
)

const (
	sqlUpsertRun = `INSERT INTO runs (target_id, run_id, job_name, status, trigger, message, revision,
			started_at, finished_at, duration_ms, steps, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (target_id, run_id) DO UPDATE SET status = excluded.status, trigger = excluded.trigger,
			message = excluded.message, revision = excluded.revision, started_at = excluded.started_at,
			finished_at = excluded.finished_at, duration_ms = excluded.duration_ms, steps = excluded.steps,
			updated_at = excluded.updated_at
		WHERE excluded.revision > runs.revision`
	sqlRunOutcome = `UPDATE job_targets SET last_run_id = ?, last_status = ?, last_message = ?,
			last_started_at = ?, last_duration_ms = ?
		WHERE target_id = ? AND job_id = (SELECT id FROM jobs WHERE name = ?)
			AND (last_started_at IS NULL OR last_started_at <= ?)`
	sqlJobSent     = `SELECT EXISTS (SELECT 1 FROM sent_jobs WHERE target_id = ? AND job_name = ?)`
	sqlLastSuccess = `UPDATE job_targets SET last_success_at = MAX(COALESCE(last_success_at, 0), ?)
		WHERE target_id = ? AND job_id = (SELECT id FROM jobs WHERE name = ?)`
)

// UpsertRuns records runs uploaded by a target, each at its revision: a
// report not newer than the revision held changes nothing, so late or
// repeated uploads never overwrite newer data. The target's identity comes
// from its certificate, never from the report. The answer is per run: one
// bad run is refused on its own and does not hold up the others.
func (db *DB) UpsertRuns(ctx context.Context, target TargetIdentity, reports []agentproto.RunReport) ([]agentproto.RunResult, error) {
	results := make([]agentproto.RunResult, len(reports))
	err := db.update(ctx, func(tx *tx) error {
		upsert, err := tx.stmt(sqlUpsertRun)
		if err != nil {
			return err
		}
		outcome, err := tx.stmt(sqlRunOutcome)
		if err != nil {
			return err
		}
		sent := map[string]bool{} // jobs this target was ever sent
		// The last outcome of each job is the finished run that started
		// last; only that one of a batch is written.
		latest := map[string]muster.Run{}
		// Jobs with a run newly recorded succeeded: their last success on
		// the target, which no_success watches, moves to when the master
		// learns of it (windows are judged by the master's clock).
		succeeded := map[string]bool{}
		for i, rep := range reports {
			r := rep.Run
			results[i].RunID = r.RunID
			if msg := checkRun(rep); msg != "" {
				results[i].Error = msg
				continue
			}
			ok, known := sent[r.Job]
			if !known {
				if ok, err = tx.wasSent(target.ID, r.Job); err != nil {
					return err
				}
				sent[r.Job] = ok
			}
			if !ok {
				results[i].Error = fmt.Sprintf("run %s: job %q was never sent to target %s", r.RunID, r.Job, target.Name)
				continue
			}
			steps, err := json.Marshal(r.Steps)
			if err != nil {
				return err
			}
			var finished sql.NullInt64
			if r.FinishedAt != nil {
				finished = sql.NullInt64{Int64: ms(*r.FinishedAt), Valid: true}
			}
			res, err := upsert.ExecContext(ctx, target.ID, r.RunID, r.Job, string(r.Status), r.Trigger, r.Message, rep.Revision,
				ms(r.StartedAt), finished, r.DurationMS, string(steps), ms(tx.now))
			if err != nil {
				return err
			}
			results[i].OK = true
			if n, _ := res.RowsAffected(); n == 0 {
				continue // an older or repeated revision
			}
			tx.runs = append(tx.runs, r.RunID)
			if err := tx.runEvents(target, r); err != nil {
				return err
			}
			if r.Status == muster.RunSucceeded {
				succeeded[r.Job] = true
			}
			if prev, ok := latest[r.Job]; r.Status.Finished() && (!ok || ms(r.StartedAt) >= ms(prev.StartedAt)) {
				latest[r.Job] = r
			}
		}
		for job := range succeeded {
			if _, err := tx.Exec(sqlLastSuccess, ms(tx.now), target.ID, job); err != nil {
				return err
			}
		}
		for _, r := range latest {
			if _, err := outcome.ExecContext(ctx, r.RunID, string(r.Status), r.Message, ms(r.StartedAt), r.DurationMS,
				target.ID, r.Job, ms(r.StartedAt)); err != nil {
				return err
			}
			// A run that ended frees a max_parallel_targets slot.
			if err := tx.releaseQueued(r.Job); err != nil {
				return err
			}
		}
		return nil
	})
	return results, err
}

// wasSent reports whether the target was ever sent the job.
func (tx *tx) wasSent(targetID int64, job string) (bool, error) {
	var ok bool
	err := tx.QueryRow(sqlJobSent, targetID, job).Scan(&ok)
	return ok, err
}

// checkRun returns why a report cannot be stored, or "".
func checkRun(rep agentproto.RunReport) string {
	r := rep.Run
	switch {
	case r.RunID == "" || len(r.RunID) > MaxRunIDLen:
		return fmt.Sprintf("run_id: 1 to %d characters", MaxRunIDLen)
	case r.Job == "" || len(r.Job) > muster.MaxNameLen:
		return fmt.Sprintf("run %s: job: a job name is required", r.RunID)
	case rep.Revision < 1:
		return fmt.Sprintf("run %s: revision: must be 1 or more", r.RunID)
	case !r.Status.Valid():
		return fmt.Sprintf("run %s: status: %q is not a run status", r.RunID, r.Status)
	case r.StartedAt.IsZero():
		return fmt.Sprintf("run %s: started_at: required", r.RunID)
	case len(r.Steps) > MaxAttempts:
		return fmt.Sprintf("run %s: steps: at most %d attempts", r.RunID, MaxAttempts)
	case len(r.Message) > MaxMessageLen:
		return fmt.Sprintf("run %s: message: at most %d bytes", r.RunID, MaxMessageLen)
	}
	for i, s := range r.Steps {
		switch {
		case !s.Status.Valid():
			return fmt.Sprintf("run %s: steps[%d]: status: %q is not a step attempt status", r.RunID, i, s.Status)
		case len(s.Output) > MaxOutputBytes:
			return fmt.Sprintf("run %s: steps[%d]: output: at most %d bytes", r.RunID, i, MaxOutputBytes)
		}
	}
	return ""
}

// RunFilter selects runs.
type RunFilter struct {
	Job    string
	Target string
	RunIDs []string
	Limit  int
}

// FindRuns returns runs, newest first.
func (db *DB) FindRuns(ctx context.Context, f RunFilter) ([]muster.Run, error) {
	q := `SELECT r.job_name, t.name, r.run_id, r.status, r.trigger, r.message, r.started_at, r.finished_at, r.duration_ms, r.steps,
			t.id, t.last_poll_at, t.poll_interval
		FROM runs r JOIN targets t ON t.id = r.target_id WHERE 1 = 1`
	var args []any
	if f.Job != "" {
		q += ` AND r.job_name = ?`
		args = append(args, f.Job)
	}
	if f.Target != "" {
		q += ` AND t.name = ?`
		args = append(args, f.Target)
	}
	if len(f.RunIDs) > 0 {
		q += ` AND r.run_id IN (` + placeholders(len(f.RunIDs)) + `)`
		for _, id := range f.RunIDs {
			args = append(args, id)
		}
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	q += ` ORDER BY r.started_at DESC, r.id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := db.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	runs := []muster.Run{}
	now := db.opts.Now()
	for rows.Next() {
		var r muster.Run
		var started, targetID int64
		var finished, lastPoll sql.NullInt64
		var steps string
		var interval int
		if err := rows.Scan(&r.Job, &r.Target, &r.RunID, &r.Status, &r.Trigger, &r.Message, &started, &finished, &r.DurationMS, &steps,
			&targetID, &lastPoll, &interval); err != nil {
			return nil, err
		}
		if r.Status == muster.RunRunning {
			state := muster.TargetState{PollInterval: interval}
			if lastPoll.Valid {
				state.LastPoll = fromMS(lastPoll.Int64)
			}
			if hb, ok := db.beats.lookup(targetID); ok {
				state.LastPoll, state.PollInterval = hb.At, hb.PollInterval
			}
			status, _ := muster.DeriveStatus(now, state)
			r.TargetOffline = status == muster.StatusSuspectedOffline
		}
		r.StartedAt, r.FinishedAt = fromMS(started), fromNullMS(finished)
		if err := json.Unmarshal([]byte(steps), &r.Steps); err != nil {
			return nil, fmt.Errorf("run %s: stored steps: %w", r.RunID, err)
		}
		if r.Steps == nil {
			r.Steps = []muster.StepAttempt{}
		}
		runs = append(runs, r)
	}
	return runs, rows.Err()
}
