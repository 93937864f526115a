package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/musterhq/muster/internal/catalog"
)

// FindStart returns what a start request recorded under an idempotency key.
func (s *Queries) FindStart(ctx context.Context, key string) (request, response string, ok bool, err error) {
	err = s.Q.QueryRow(ctx, `SELECT request, response FROM starts WHERE idempotency_key = $1`, key).Scan(&request, &response)
	if noRows(err) {
		return "", "", false, nil
	}
	return request, response, err == nil, err
}

// ClaimStart records a start request's idempotency key unless it is
// taken, reads the job, and takes the sequence number of the START's
// target when it may: one statement after the other.
func (s *Queries) ClaimStart(ctx context.Context, c catalog.StartClaim) (catalog.ClaimedStart, error) {
	out := catalog.ClaimedStart{Claimed: true}
	if c.Key != "" {
		n, err := s.Q.Exec(ctx, `INSERT INTO starts (idempotency_key, request, response, created_at) VALUES ($1, $2, '', $3)
			`+SQLClaimForgotten, c.Key, c.Request, ms(c.At), ms(c.Forgotten))
		if err != nil || n == 0 {
			return catalog.ClaimedStart{}, err
		}
	}
	jobs, err := s.FindJobs(ctx, catalog.JobQuery{Name: c.Job, Posting: true})
	if err != nil || len(jobs) == 0 {
		return out, err
	}
	out.Job, out.Found = jobs[0], true
	if !c.One {
		return out, nil
	}
	var def struct {
		MaxParallelTargets int `json:"max_parallel_targets"`
	}
	if err := json.Unmarshal(out.Job.Definition, &def); err != nil {
		return catalog.ClaimedStart{}, fmt.Errorf("job %q: stored definition: %w", c.Job, err)
	}
	if def.MaxParallelTargets > 0 {
		return out, nil
	}
	for _, t := range out.Job.Targets {
		if t.Target == c.Target || c.Target == "" && len(out.Job.Targets) == 1 {
			seqs, err := s.NextSeqs(ctx, map[int64]int{t.TargetID: 1})
			if err != nil {
				return catalog.ClaimedStart{}, err
			}
			out.TargetID, out.Seq = t.TargetID, seqs[t.TargetID]
			break
		}
	}
	return out, nil
}

// SQLClaimForgotten ends the insert of a start's idempotency key, $4
// being the time before which a key is forgotten: a key taken and not
// forgotten stays as it is; a forgotten one is recorded anew.
const SQLClaimForgotten = `ON CONFLICT (idempotency_key) DO UPDATE SET request = excluded.request, response = '',
		created_at = excluded.created_at WHERE starts.created_at < $4`

// SetStartResponse records the answer to a claimed start request.
func (s *Queries) SetStartResponse(ctx context.Context, key, response string) error {
	return s.execHeld(ctx, `UPDATE starts SET response = $1 WHERE idempotency_key = $2`, response, key)
}

// DeleteStarts forgets idempotency keys recorded before a time.
func (s *Queries) DeleteStarts(ctx context.Context, before time.Time) (int64, error) {
	return s.Q.Exec(ctx, `DELETE FROM starts WHERE created_at < $1`, ms(before))
}

// ActiveStarts counts a job's runs that hold a max_parallel_targets slot:
// runs under way on targets that are not suspected offline, and STARTs that
// have not expired and whose run is not recorded yet.
func (s *Queries) ActiveStarts(ctx context.Context, job string, now time.Time) (int, error) {
	var n int
	err := s.Q.QueryRow(ctx, `SELECT
		(SELECT COUNT(*) FROM runs r JOIN targets t ON t.id = r.target_id
			WHERE r.job_name = $1 AND r.status = 'running' AND t.last_poll_at + 3 * t.poll_interval * 1000 >= CAST($2 AS BIGINT))
		+ (SELECT COUNT(*) FROM instructions i WHERE i.job_name = $1 AND i.operation = 'START'
			AND i.status IN ('pending', 'downloaded') AND i.expires_at > CAST($2 AS BIGINT)
			AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.target_id = i.target_id AND r.run_id = i.run_id))`,
		job, ms(now)).Scan(&n)
	return n, err
}

// QueuedStarts returns a job's held-back STARTs, oldest first.
func (s *Queries) QueuedStarts(ctx context.Context, jobID int64, limit int) ([]catalog.QueuedStartRow, error) {
	return collect(ctx, s.Q, func(r Rows) (q catalog.QueuedStartRow, err error) {
		var payload string
		var created int64
		err = r.Scan(&q.ID, &q.JobID, &q.TargetID, &payload, &created)
		q.Payload, q.CreatedAt = []byte(payload), fromMS(created)
		return q, err
	}, `SELECT id, job_id, target_id, payload, created_at FROM queued_starts WHERE job_id = $1 ORDER BY id LIMIT $2`, jobID, limit)
}

// JobsWithQueuedStarts returns the jobs that have held-back STARTs.
func (s *Queries) JobsWithQueuedStarts(ctx context.Context) ([]string, error) {
	return texts(ctx, s.Q, `SELECT DISTINCT j.name FROM queued_starts q JOIN jobs j ON j.id = q.job_id ORDER BY j.name`)
}

// InsertQueuedStart holds a START back.
func (s *Queries) InsertQueuedStart(ctx context.Context, q catalog.QueuedStartRow) error {
	_, err := s.Q.Exec(ctx, `INSERT INTO queued_starts (job_id, target_id, payload, created_at) VALUES ($1, $2, $3, $4)`,
		q.JobID, q.TargetID, string(q.Payload), ms(q.CreatedAt))
	return err
}

// DeleteQueuedStart removes a queue entry and reports whether it was there.
func (s *Queries) DeleteQueuedStart(ctx context.Context, id int64) (bool, error) {
	n, err := s.Q.Exec(ctx, `DELETE FROM queued_starts WHERE id = $1`, id)
	return n > 0, err
}

// DeleteQueuedStarts drops the STARTs held back for a job (any, when jobID
// is 0) on the targets (any, when targetIDs is nil), and returns them.
func (s *Queries) DeleteQueuedStarts(ctx context.Context, jobID int64, targetIDs []int64) ([]catalog.QueuedStartRow, error) {
	a := &args{d: s.D}
	where := "TRUE"
	if jobID != 0 {
		where += ` AND job_id = ` + a.add(jobID)
	}
	if targetIDs != nil {
		targets, err := inJSON(a, "target_id", targetIDs)
		if err != nil {
			return nil, err
		}
		where += ` AND ` + targets
	}
	return collect(ctx, s.Q, func(r Rows) (q catalog.QueuedStartRow, err error) {
		var payload string
		var created int64
		err = r.Scan(&q.ID, &q.JobID, &q.TargetID, &payload, &created, &q.Job)
		q.Payload, q.CreatedAt = []byte(payload), fromMS(created)
		return q, err
	}, `DELETE FROM queued_starts WHERE `+where+`
		RETURNING id, job_id, target_id, payload, created_at, (SELECT name FROM jobs WHERE jobs.id = queued_starts.job_id)`, a.vals...)
}
