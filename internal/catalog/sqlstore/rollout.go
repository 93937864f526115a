package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

// FindRollouts returns rollouts, newest first.
func (s *Queries) FindRollouts(ctx context.Context, f catalog.RolloutQuery) ([]catalog.RolloutRow, error) {
	a := &args{d: s.D}
	q := `SELECT id, job_id, job_name, state, reason, batch, wave_size, waves, max_failures, current_wave, request,
			created_at, created_by, ended_at
		FROM rollouts WHERE TRUE`
	if f.Job != "" {
		q += ` AND job_name = ` + a.add(f.Job)
	}
	if f.ID != 0 {
		q += ` AND id = ` + a.add(f.ID)
	}
	if f.RunningOnly {
		q += ` AND state = 'running'`
	}
	q += ` ORDER BY id DESC`
	if f.Limit > 0 {
		q += ` LIMIT ` + a.add(f.Limit)
	}
	return collect(ctx, s.Q, func(r Rows) (ro catalog.RolloutRow, err error) {
		var request, state string
		var created int64
		var ended sql.NullInt64
		err = r.Scan(&ro.ID, &ro.JobID, &ro.Job, &state, &ro.Reason, &ro.Batch, &ro.WaveSize, &ro.Waves, &ro.MaxFailures,
			&ro.Wave, &request, &created, &ro.CreatedBy, &ended)
		ro.State, ro.Request, ro.CreatedAt, ro.EndedAt = muster.RolloutState(state), []byte(request), fromMS(created), fromNullMS(ended)
		return ro, err
	}, q, a.vals...)
}

// RolloutTargets returns the targets of rollouts, in order, each with its
// run and its START as they stand.
func (s *Queries) RolloutTargets(ctx context.Context, rolloutIDs []int64) ([]catalog.RolloutTargetRow, error) {
	a := &args{d: s.D}
	q := `SELECT rt.rollout_id, rt.position, rt.wave, rt.target_id, rt.target, rt.run_id,
			COALESCE(r.status, ''), COALESCE(r.duration_ms, 0), COALESCE(r.message, ''),
			COALESCE(i.status, ''), COALESCE(i.error, ''), i.expires_at,
			CASE WHEN r.status IS NULL AND i.status IS NULL AND rt.wave <= ro.current_wave
				THEN EXISTS (SELECT 1 FROM queued_starts q JOIN jobs j ON j.id = q.job_id
					WHERE j.name = ro.job_name AND q.target_id = rt.target_id)
				ELSE FALSE END,
			COALESCE(tg.state, 'defected') <> 'active'
		FROM rollout_targets rt JOIN rollouts ro ON ro.id = rt.rollout_id
		LEFT JOIN targets tg ON tg.id = rt.target_id
		LEFT JOIN runs r ON r.target_id = rt.target_id AND r.run_id = rt.run_id
		LEFT JOIN instructions i ON i.target_id = rt.target_id AND i.run_id = rt.run_id AND i.run_id <> ''
		WHERE ` + in(a, "rt.rollout_id", rolloutIDs) + ` ORDER BY rt.rollout_id, rt.position`
	return collect(ctx, s.Q, func(r Rows) (t catalog.RolloutTargetRow, err error) {
		var expires sql.NullInt64
		var run, start string
		err = r.Scan(&t.RolloutID, &t.Position, &t.Wave, &t.TargetID, &t.Target, &t.RunID,
			&run, &t.DurationMS, &t.Message, &start, &t.StartError, &expires, &t.Held, &t.Gone)
		t.RunStatus, t.StartStatus, t.ExpiresAt = muster.RunStatus(run), muster.InstructionStatus(start), fromNullMS(expires)
		return t, err
	}, q, a.vals...)
}

// PruneRollouts deletes the rollouts, of one job or every job, that ended
// before a time; their targets go with them.
func (s *Queries) PruneRollouts(ctx context.Context, job string, endedBefore time.Time) (int64, error) {
	a := &args{d: s.D}
	q := `DELETE FROM rollouts WHERE state <> 'running' AND ended_at < ` + a.add(ms(endedBefore))
	if job != "" {
		q += ` AND job_name = ` + a.add(job)
	}
	return s.Q.Exec(ctx, q, a.vals...)
}

// JobsWithRunningRollouts returns the jobs that have a running rollout.
func (s *Queries) JobsWithRunningRollouts(ctx context.Context) ([]string, error) {
	return texts(ctx, s.Q, `SELECT DISTINCT job_name FROM rollouts WHERE state = 'running' ORDER BY job_name`)
}

// JobsAwaitingRuns returns the jobs with held-back STARTs and those with a
// running rollout, in one statement.
func (s *Queries) JobsAwaitingRuns(ctx context.Context) (queued, rolling []string, err error) {
	type jobOf struct {
		name    string
		rollout bool
	}
	jobs, err := collect(ctx, s.Q, func(r Rows) (j jobOf, err error) {
		var kind int
		err = r.Scan(&j.name, &kind)
		j.rollout = kind == 1
		return j, err
	}, `SELECT j.name, 0 FROM queued_starts q JOIN jobs j ON j.id = q.job_id
		UNION SELECT job_name, 1 FROM rollouts WHERE state = 'running'`)
	for _, j := range jobs {
		if j.rollout {
			rolling = append(rolling, j.name)
		} else {
			queued = append(queued, j.name)
		}
	}
	return queued, rolling, err
}

// InsertRollout stores a rollout and returns its id.
func (s *Queries) InsertRollout(ctx context.Context, ro catalog.RolloutRow) (int64, error) {
	var id int64
	err := s.Q.QueryRow(ctx, `INSERT INTO rollouts (job_id, job_name, state, reason, batch, wave_size, waves, max_failures,
			current_wave, request, created_at, created_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id`,
		ro.JobID, ro.Job, string(ro.State), ro.Reason, ro.Batch, ro.WaveSize, ro.Waves, ro.MaxFailures, ro.Wave,
		string(ro.Request), ms(ro.CreatedAt), ro.CreatedBy).Scan(&id)
	return id, err
}

// InsertRolloutTargets stores targets of rollouts, in one statement.
func (s *Queries) InsertRolloutTargets(ctx context.Context, ts []catalog.RolloutTargetRow) error {
	if len(ts) == 0 {
		return nil
	}
	a := &args{d: s.D}
	rows := make([]string, len(ts))
	for i, t := range ts {
		rows[i] = "(" + a.add(t.RolloutID) + ", " + a.add(t.Position) + ", " + a.add(t.Wave) + ", " + a.add(t.TargetID) +
			", " + a.add(t.Target) + ", " + a.add(t.RunID) + ")"
	}
	_, err := s.Q.Exec(ctx, `INSERT INTO rollout_targets (rollout_id, position, wave, target_id, target, run_id) VALUES `+
		strings.Join(rows, ", "), a.vals...)
	return err
}

// AdvanceRollout moves a running rollout from one wave to the next.
func (s *Queries) AdvanceRollout(ctx context.Context, id int64, from, to int) (bool, error) {
	n, err := s.Q.Exec(ctx, `UPDATE rollouts SET current_wave = $1 WHERE id = $2 AND current_wave = $3 AND state = 'running'`,
		to, id, from)
	return n > 0, err
}

// EndRollout moves a running rollout to a final state.
func (s *Queries) EndRollout(ctx context.Context, id int64, state muster.RolloutState, reason string, at time.Time) (bool, error) {
	n, err := s.Q.Exec(ctx, `UPDATE rollouts SET state = $1, reason = $2, ended_at = $3 WHERE id = $4 AND state = 'running'`,
		string(state), reason, ms(at), id)
	return n > 0, err
}
