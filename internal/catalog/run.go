package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
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
	// MaxOutputNote is what a target may add to an attempt's output
	// beyond MaxOutputBytes: the line saying how much it dropped.
	MaxOutputNote = 1 << 10
	// MaxRunOutputBytes bounds the output of all of a run's attempts.
	MaxRunOutputBytes = 64 << 20
)

// RunUpload is a run a target uploads, at a revision. Output holds the
// output the master does not have yet, as chunks appended to the
// attempts' outputs; the attempts' own Output fields, when set (by a
// target of protocol 1), hold whole outputs that replace what is held.
type RunUpload struct {
	Revision int64
	Run      muster.Run
	Output   []OutputChunk
}

// OutputChunk is a piece of the output of one attempt of a run: Data
// follows the first Offset bytes of the output of Run.Steps[Attempt].
type OutputChunk struct {
	Attempt int
	Offset  int64
	Data    string
}

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
	sqlRunKey    = `SELECT id FROM runs WHERE target_id = ? AND run_id = ?`
	sqlOutputEnd = `SELECT offset + length(data) FROM run_output WHERE run = ? AND attempt = ? ORDER BY offset DESC LIMIT 1`
	sqlAppend    = `INSERT INTO run_output (run, attempt, offset, data) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`
)

// UpsertRuns records runs uploaded by a target, each at its revision: a
// report not newer than the revision held changes nothing, so late or
// repeated uploads never overwrite newer data. The target's identity comes
// from its certificate, never from the report. The answer is per run: one
// bad run is refused on its own and does not hold up the others.
func (db *DB) UpsertRuns(ctx context.Context, target TargetIdentity, reports []RunUpload) ([]agentproto.RunResult, error) {
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
			if err := tx.appendOutput(target.ID, r.RunID, rep.Output); err != nil {
				return err
			}
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

// appendOutput stores the chunks of output of one of the target's runs
// that the catalog does not hold yet: each is appended to its attempt's
// output, from where that output ends, and a chunk (or the part of one)
// already held is not stored again.
func (tx *tx) appendOutput(targetID int64, runID string, chunks []OutputChunk) error {
	if len(chunks) == 0 {
		return nil
	}
	var run int64
	if err := tx.QueryRow(sqlRunKey, targetID, runID).Scan(&run); err != nil {
		return err
	}
	for _, c := range chunks {
		var end int64
		if err := tx.QueryRow(sqlOutputEnd, run, c.Attempt).Scan(&end); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if held := end - c.Offset; held > 0 {
			if held >= int64(len(c.Data)) {
				continue
			}
			c.Offset, c.Data = end, c.Data[held:]
		}
		if _, err := tx.Exec(sqlAppend, run, c.Attempt, c.Offset, []byte(c.Data)); err != nil {
			return err
		}
	}
	return nil
}

// outputs adds to runs, by their keys in the runs table, the output held
// in chunks. A gap between chunks (a chunk lost on the way) is said, not
// closed up.
func (db *DB) outputs(ctx context.Context, runs map[int64]*muster.Run) error {
	if len(runs) == 0 {
		return nil
	}
	keys := make([]any, 0, len(runs))
	for k := range runs {
		keys = append(keys, k)
	}
	rows, err := db.read.QueryContext(ctx, `SELECT run, attempt, offset, data FROM run_output WHERE run IN (`+placeholders(len(keys))+`)
		ORDER BY run, attempt, offset`, keys...)
	if err != nil {
		return err
	}
	defer rows.Close()
	held := map[[2]int64]int64{} // (run, attempt) → bytes of chunks so far
	for rows.Next() {
		var run, offset int64
		var attempt int
		var data []byte
		if err := rows.Scan(&run, &attempt, &offset, &data); err != nil {
			return err
		}
		r := runs[run]
		if attempt < 0 || attempt >= len(r.Steps) {
			continue
		}
		k := [2]int64{run, int64(attempt)}
		if gap := offset - held[k]; gap > 0 {
			r.Steps[attempt].Output += fmt.Sprintf("\n[muster: %d bytes of output never reached the master]\n", gap)
		}
		r.Steps[attempt].Output += string(data)
		held[k] = offset + int64(len(data))
	}
	return rows.Err()
}

// wasSent reports whether the target was ever sent the job.
func (tx *tx) wasSent(targetID int64, job string) (bool, error) {
	var ok bool
	err := tx.QueryRow(sqlJobSent, targetID, job).Scan(&ok)
	return ok, err
}

// checkRun returns why a report cannot be stored, or "".
func checkRun(rep RunUpload) string {
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
		case len(s.Output) > MaxOutputBytes+MaxOutputNote:
			return fmt.Sprintf("run %s: steps[%d]: output: at most %d bytes", r.RunID, i, MaxOutputBytes)
		}
	}
	var total int64
	for i, c := range rep.Output {
		end := c.Offset + int64(len(c.Data))
		switch {
		case c.Attempt < 0 || c.Attempt >= len(r.Steps):
			return fmt.Sprintf("run %s: output[%d]: attempt: %d is not an attempt of the run (0 to %d)", r.RunID, i, c.Attempt, len(r.Steps)-1)
		case c.Offset < 0:
			return fmt.Sprintf("run %s: output[%d]: offset: must not be negative", r.RunID, i)
		case end > MaxOutputBytes+MaxOutputNote:
			return fmt.Sprintf("run %s: output[%d]: an attempt's output is at most %d bytes", r.RunID, i, MaxOutputBytes)
		}
		total += int64(len(c.Data))
	}
	if total > MaxRunOutputBytes {
		return fmt.Sprintf("run %s: output: at most %d bytes in one upload", r.RunID, MaxRunOutputBytes)
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
			t.id, t.last_poll_at, t.poll_interval, r.id
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
	var keys []int64
	now := db.opts.Now()
	for rows.Next() {
		var r muster.Run
		var started, targetID, key int64
		var finished, lastPoll sql.NullInt64
		var steps string
		var interval int
		if err := rows.Scan(&r.Job, &r.Target, &r.RunID, &r.Status, &r.Trigger, &r.Message, &started, &finished, &r.DurationMS, &steps,
			&targetID, &lastPoll, &interval, &key); err != nil {
			return nil, err
		}
		keys = append(keys, key)
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
	if err := rows.Err(); err != nil {
		return nil, err
	}
	byKey := make(map[int64]*muster.Run, len(runs))
	for i, k := range keys {
		byKey[k] = &runs[i]
	}
	return runs, db.outputs(ctx, byKey)
}
