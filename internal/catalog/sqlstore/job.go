package sqlstore

import (
	"context"
	"database/sql"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

// FindJobs returns jobs by name, each with its groups and its effective
// targets (why it runs there, and how it last went).
func (s *Queries) FindJobs(ctx context.Context, f catalog.JobQuery) ([]catalog.JobRow, error) {
	a := &args{d: s.D}
	where := ``
	switch {
	case f.Name != "":
		where = ` WHERE j.name = ` + a.add(f.Name)
	case f.TargetID != 0:
		where = ` WHERE j.id IN (SELECT job_id FROM job_targets WHERE target_id = ` + a.add(f.TargetID) + `)`
	}
	jobs, err := collect(ctx, s.Q, func(r Rows) (catalog.JobRow, error) { return ScanJob(r) },
		`SELECT `+JobColumns+` FROM jobs j`+where+` ORDER BY j.name`, a.vals...)
	if err != nil || len(jobs) == 0 {
		return jobs, err
	}
	index := make(map[int64]int, len(jobs))
	ids := make([]int64, len(jobs))
	for i, j := range jobs {
		index[j.ID], ids[i] = i, j.ID
	}
	if f.Posting {
		return jobs, s.postingTargets(ctx, jobs, index, ids)
	}
	if !f.WithoutTargets {
		if err := s.jobTargets(ctx, jobs, index, ids); err != nil {
			return nil, err
		}
	}
	return jobs, s.jobGroups(ctx, jobs, index, ids)
}

// JobColumns are the columns of jobs j that ScanJob reads.
const JobColumns = `j.id, j.name, j.version, j.definition, j.enabled, j.scheduled, j.category, j.created_at, j.updated_at,
	j.created_by, j.updated_by`

// ScanJob reads a job's JobColumns, then extra, from a row; the job's
// groups and targets are empty.
func ScanJob(r Row, extra ...any) (catalog.JobRow, error) {
	var j catalog.JobRow
	var def string
	var created, updated int64
	err := r.Scan(append([]any{&j.ID, &j.Name, &j.Version, &def, &j.Enabled, &j.Scheduled, &j.Category, &created, &updated,
		&j.CreatedBy, &j.UpdatedBy}, extra...)...)
	j.Definition, j.CreatedAt, j.UpdatedAt = []byte(def), fromMS(created), fromMS(updated)
	j.Groups, j.Targets = []string{}, []catalog.JobTargetRow{}
	return j, err
}

// jobTargets reads each job's effective targets, with the job's groups
// each is in.
func (s *Queries) jobTargets(ctx context.Context, jobs []catalog.JobRow, index map[int64]int, ids []int64) error {
	a := &args{d: s.D}
	rows, err := s.Q.Query(ctx, `SELECT jt.job_id, jt.target_id, t.name, jt.explicit, jt.last_run_id, jt.last_status, jt.last_message,
			jt.last_started_at, jt.last_duration_ms, jt.last_success_at,
			(SELECT string_agg(g.name, ',' ORDER BY g.name) FROM job_groups jg JOIN groups g ON g.id = jg.group_id
				JOIN group_members gm ON gm.group_id = g.id WHERE jg.job_id = jt.job_id AND gm.target_id = jt.target_id)
		FROM job_targets jt JOIN targets t ON t.id = jt.target_id WHERE `+in(a, "jt.job_id", ids)+` ORDER BY t.name`, a.vals...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var jobID int64
		var o catalog.JobTargetRow
		var started, success sql.NullInt64
		var via sql.NullString
		var status string
		if err := rows.Scan(&jobID, &o.TargetID, &o.Target, &o.Explicit, &o.LastRunID, &status, &o.LastMessage,
			&started, &o.LastDurationMS, &success, &via); err != nil {
			return err
		}
		o.LastStatus, o.LastStartedAt, o.LastSuccessAt, o.Via = muster.RunStatus(status), fromNullMS(started), fromNullMS(success), split(via)
		i := index[jobID]
		jobs[i].Targets = append(jobs[i].Targets, o)
	}
	return rows.Err()
}

// jobGroups reads each job's groups.
func (s *Queries) jobGroups(ctx context.Context, jobs []catalog.JobRow, index map[int64]int, ids []int64) error {
	a := &args{d: s.D}
	groups, err := s.Q.Query(ctx, `SELECT jg.job_id, g.name FROM job_groups jg JOIN groups g ON g.id = jg.group_id
		WHERE `+in(a, "jg.job_id", ids)+` ORDER BY g.name`, a.vals...)
	if err != nil {
		return err
	}
	defer groups.Close()
	for groups.Next() {
		var id int64
		var g string
		if err := groups.Scan(&id, &g); err != nil {
			return err
		}
		i := index[id]
		jobs[i].Groups = append(jobs[i].Groups, g)
	}
	return groups.Err()
}

// postingTargets reads the effective targets of jobs (whose positions
// in jobs index maps their ids to) with only their ids and names: one
// indexed join, without the groups each target is in.
func (s *Queries) postingTargets(ctx context.Context, jobs []catalog.JobRow, index map[int64]int, ids []int64) error {
	a := &args{d: s.D}
	rows, err := s.Q.Query(ctx, `SELECT jt.job_id, jt.target_id, t.name FROM job_targets jt JOIN targets t ON t.id = jt.target_id
		WHERE `+in(a, "jt.job_id", ids)+` ORDER BY t.name`, a.vals...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var jobID int64
		var o catalog.JobTargetRow
		if err := rows.Scan(&jobID, &o.TargetID, &o.Target); err != nil {
			return err
		}
		i := index[jobID]
		jobs[i].Targets = append(jobs[i].Targets, o)
	}
	return rows.Err()
}

// GroupTargets returns the active targets in the groups a job names, each
// with those of the groups it is in.
func (s *Queries) GroupTargets(ctx context.Context, jobID int64) (map[string]catalog.Member, error) {
	rows, err := s.Q.Query(ctx, `SELECT t.name, t.id, g.name FROM job_groups jg JOIN group_members gm ON gm.group_id = jg.group_id
		JOIN groups g ON g.id = jg.group_id JOIN targets t ON t.id = gm.target_id
		WHERE jg.job_id = $1 AND t.state = 'active' ORDER BY t.name, g.name`, jobID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]catalog.Member{}
	for rows.Next() {
		var name, group string
		var id int64
		if err := rows.Scan(&name, &id, &group); err != nil {
			return nil, err
		}
		m := out[name]
		m.ID, m.Groups = id, append(m.Groups, group)
		out[name] = m
	}
	return out, rows.Err()
}

// LockJobs does nothing: a transaction of a store that is not shared is
// alone.
func (s *Queries) LockJobs(context.Context, []string) error { return nil }

// ShareGroups does nothing, as LockJobs.
func (s *Queries) ShareGroups(context.Context) error { return nil }

// LockGroup does nothing, as LockJobs.
func (s *Queries) LockGroup(context.Context, int64) error { return nil }

// InsertJob creates a job; a name taken is ErrDuplicate.
func (s *Queries) InsertJob(ctx context.Context, j catalog.JobRow) (int64, error) {
	var id int64
	err := s.Q.QueryRow(ctx, `INSERT INTO jobs (name, version, definition, enabled, scheduled, category, created_at, updated_at,
			created_by, updated_by, watched_since)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $7) RETURNING id`,
		j.Name, j.Version, string(j.Definition), j.Enabled, j.Scheduled, j.Category, ms(j.CreatedAt), ms(j.UpdatedAt),
		j.CreatedBy, j.UpdatedBy).Scan(&id)
	return id, err
}

// UpdateJob stores a new definition of a job still at version from. A
// job that becomes enabled and scheduled again is watched for no_success
// from now (watched_since); the right side of SET reads the row as it was.
func (s *Queries) UpdateJob(ctx context.Context, j catalog.JobRow, from int64) (bool, error) {
	n, err := s.Q.Exec(ctx, `UPDATE jobs SET version = $1, definition = $2, enabled = $3, scheduled = $4, category = $5,
			updated_at = $6, updated_by = $7,
			watched_since = CASE WHEN jobs.enabled AND jobs.scheduled THEN jobs.watched_since ELSE $6 END
		WHERE id = $8 AND version = $9`,
		j.Version, string(j.Definition), j.Enabled, j.Scheduled, j.Category, ms(j.UpdatedAt), j.UpdatedBy, j.ID, from)
	return n > 0, err
}

// DeleteJob deletes a job, with its targets and groups (its history stays).
func (s *Queries) DeleteJob(ctx context.Context, id int64) error {
	for _, q := range []string{
		`DELETE FROM job_targets WHERE job_id = $1`,
		`DELETE FROM job_groups WHERE job_id = $1`,
		`DELETE FROM queued_starts WHERE job_id = $1`,
		`DELETE FROM jobs WHERE id = $1`,
	} {
		if _, err := s.Q.Exec(ctx, q, id); err != nil {
			return err
		}
	}
	return nil
}

// SetJobGroups replaces the groups a job names.
func (s *Queries) SetJobGroups(ctx context.Context, jobID int64, groupIDs []int64) error {
	if _, err := s.Q.Exec(ctx, `DELETE FROM job_groups WHERE job_id = $1`, jobID); err != nil {
		return err
	}
	for _, g := range groupIDs {
		if _, err := s.Q.Exec(ctx, `INSERT INTO job_groups (job_id, group_id) VALUES ($1, $2)`, jobID, g); err != nil {
			return err
		}
	}
	return nil
}

// InsertJobTarget makes a target one of a job's effective targets.
func (s *Queries) InsertJobTarget(ctx context.Context, jobID, targetID int64, explicit bool) error {
	_, err := s.Q.Exec(ctx, `INSERT INTO job_targets (job_id, target_id, explicit) VALUES ($1, $2, $3)`, jobID, targetID, explicit)
	return err
}

// DeleteJobTarget removes a target from a job's effective targets.
func (s *Queries) DeleteJobTarget(ctx context.Context, jobID, targetID int64) error {
	_, err := s.Q.Exec(ctx, `DELETE FROM job_targets WHERE job_id = $1 AND target_id = $2`, jobID, targetID)
	return err
}

// SetJobTargetExplicit records whether a job names one of its targets.
func (s *Queries) SetJobTargetExplicit(ctx context.Context, jobID, targetID int64, explicit bool) error {
	_, err := s.Q.Exec(ctx, `UPDATE job_targets SET explicit = $1 WHERE job_id = $2 AND target_id = $3`, explicit, jobID, targetID)
	return err
}
