package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
)

// Bounds on a start request.
const (
	MaxIdempotencyKeyLen = 128
	MaxStartExpiry       = 24 * time.Hour
	// IdempotencyWindow is how long a start's key is remembered.
	IdempotencyWindow = 24 * time.Hour
)

// StartRequest asks to run a job now on some or all of its targets.
type StartRequest struct {
	Job     string   `json:"job"`
	Targets []string `json:"targets,omitempty"` // default: every target of the job
	// IdempotencyKey makes a retried request return the first one's result
	// instead of starting the job again.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// ExpiresIn is how long the START stays valid; a target that receives it
	// later records a skipped run. Default 10 minutes.
	ExpiresIn time.Duration `json:"expires_in,omitempty"`
	// Env overrides the job's and steps' environment for these runs.
	Env map[string]string `json:"env,omitempty"`
	// Step is the step the runs begin at (default: the first).
	Step        string `json:"step,omitempty"`
	RequestedBy string `json:"-"`
}

// StartedRun is the run a START will create on one target.
type StartedRun struct {
	Target string `json:"target"`
	Seq    int64  `json:"seq"` // 0 while queued
	RunID  string `json:"run_id"`
	// Queued is set when the job's max_parallel_targets holds the START
	// back; it is posted when a run of the job ends.
	Queued bool `json:"queued,omitempty"`
}

// StartResult answers a start request.
type StartResult struct {
	Job       string       `json:"job"`
	Runs      []StartedRun `json:"runs"`
	ExpiresAt time.Time    `json:"expires_at"`
	// Replayed is true when the idempotency key matched an earlier request
	// and nothing new was posted.
	Replayed bool `json:"replayed"`
}

const (
	sqlTargetUID    = `SELECT uid FROM targets WHERE id = ?`
	sqlExpireStarts = `DELETE FROM starts WHERE created_at < ?`
	sqlFindStart    = `SELECT request, response FROM starts WHERE idempotency_key = ?`
	sqlRecordStart  = `INSERT INTO starts (idempotency_key, request, response, created_at) VALUES (?, ?, ?, ?)`
)

// StartJob posts START to the job's targets (all, or those named) in one
// transaction. With an idempotency key seen before, it returns the earlier
// result and posts nothing; the same key with a different request is a
// conflict.
func (db *DB) StartJob(ctx context.Context, req StartRequest) (StartResult, error) {
	if len(req.IdempotencyKey) > MaxIdempotencyKeyLen {
		return StartResult{}, muster.Errorf(muster.EINVALID, "idempotency_key: at most %d characters", MaxIdempotencyKeyLen)
	}
	if req.ExpiresIn < 0 || req.ExpiresIn > MaxStartExpiry {
		return StartResult{}, muster.Errorf(muster.EINVALID, "expires_in: from 0 (the default, %s) to %s", muster.DefaultStartExpiry, MaxStartExpiry)
	}
	for i, t := range req.Targets {
		req.Targets[i] = muster.NormalizeTargetName(t)
	}
	slices.Sort(req.Targets)
	req.Targets = slices.Compact(req.Targets)
	if err := muster.ValidateEnv("env", req.Env); err != nil {
		return StartResult{}, err
	}
	canonical, err := json.Marshal(struct {
		Job       string
		Targets   []string
		ExpiresIn time.Duration
		Env       map[string]string
		Step      string
	}{req.Job, req.Targets, req.ExpiresIn, req.Env, req.Step})
	if err != nil {
		return StartResult{}, err
	}
	var res StartResult
	err = db.update(ctx, func(tx *tx) error {
		if req.IdempotencyKey != "" {
			if _, err := tx.Exec(sqlExpireStarts, ms(tx.now.Add(-IdempotencyWindow))); err != nil {
				return err
			}
			var prevReq, prevRes string
			err := tx.QueryRow(sqlFindStart, req.IdempotencyKey).Scan(&prevReq, &prevRes)
			switch {
			case err == nil && prevReq != string(canonical):
				return muster.Errorf(muster.ECONFLICT, "idempotency_key %q was already used for a different start request", req.IdempotencyKey)
			case err == nil:
				if err := json.Unmarshal([]byte(prevRes), &res); err != nil {
					return err
				}
				res.Replayed = true
				return nil
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
		}
		job, err := tx.loadJob(req.Job)
		if err != nil {
			return err
		}
		if req.Step != "" && !slices.ContainsFunc(job.job.Steps, func(s muster.Step) bool { return s.Name == req.Step }) {
			return muster.Errorf(muster.EINVALID, "step: job %q has no step %q", req.Job, req.Step)
		}
		effective := job.targetNames()
		targets := req.Targets
		if len(targets) == 0 {
			targets = effective
		}
		if len(effective) == 0 {
			return muster.Errorf(muster.EPRECONDITION, "job %q runs on no target; give it targets: or groups: in its definition", req.Job)
		}
		for _, t := range targets {
			if _, ok := job.targets[t]; !ok {
				return muster.Errorf(muster.EINVALID, "targets: job %q does not run on %q; it runs on %s", req.Job, t, strings.Join(effective, ", "))
			}
		}
		res = StartResult{Job: job.job.Name, ExpiresAt: expiry(tx.now, req.ExpiresIn).UTC(), Runs: []StartedRun{}}
		limit, active := job.job.MaxParallelTargets, 0
		if limit > 0 {
			if active, err = tx.activeStarts(job.job.Name); err != nil {
				return err
			}
		}
		for _, t := range targets {
			tid := job.targets[t]
			var uid string
			if err := tx.QueryRow(sqlTargetUID, tid).Scan(&uid); err != nil {
				return err
			}
			if limit > 0 && active >= limit {
				q := queuedStart{Payload: agentproto.StartPayload{RequestedBy: req.RequestedBy, Env: req.Env, Step: req.Step}, ExpiresIn: req.ExpiresIn}
				runID, err := tx.queueStart(job.id, tid, uid, q)
				if err != nil {
					return err
				}
				res.Runs = append(res.Runs, StartedRun{Target: t, RunID: runID, Queued: true})
				continue
			}
			active++
			seq, err := tx.nextSeq(tid)
			if err != nil {
				return err
			}
			runID := muster.StartRunID(uid, seq)
			payload := agentproto.StartPayload{RunID: runID, ExpiresAt: res.ExpiresAt, RequestedBy: req.RequestedBy, Env: req.Env, Step: req.Step}
			if err := tx.insertInstruction(tid, seq, muster.OpStart, job.job.Name, payload); err != nil {
				return err
			}
			res.Runs = append(res.Runs, StartedRun{Target: t, Seq: seq, RunID: runID})
		}
		if req.IdempotencyKey != "" {
			body, err := json.Marshal(res)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(sqlRecordStart,
				req.IdempotencyKey, string(canonical), string(body), ms(tx.now)); err != nil {
				return fmt.Errorf("record idempotency key: %w", err)
			}
		}
		return nil
	})
	return res, err
}

// StopJob posts STOP to the job's targets (all, or those named): each
// cancels the job's running run, which is recorded as canceled.
func (db *DB) StopJob(ctx context.Context, name string, targets []string) (JobChange, error) {
	var c JobChange
	err := db.update(ctx, func(tx *tx) error {
		job, err := tx.loadJob(name)
		if err != nil {
			return err
		}
		if len(targets) == 0 {
			targets = job.targetNames()
		}
		c = JobChange{Job: job.job.Name, Action: "stop", Version: job.job.Version}
		for _, t := range targets {
			t = muster.NormalizeTargetName(t)
			tid, ok := job.targets[t]
			if !ok {
				return muster.Errorf(muster.EINVALID, "targets: job %q does not run on %q", name, t)
			}
			seq, err := tx.post(tid, muster.OpStop, job.job.Name, nil)
			if err != nil {
				return err
			}
			c.record(tx, muster.OpStop, t, seq)
		}
		return nil
	})
	return c, err
}

// queuedStart is a START held back by max_parallel_targets.
type queuedStart struct {
	Payload   agentproto.StartPayload `json:"payload"` // run id set; expiry set when posted
	ExpiresIn time.Duration           `json:"expires_in"`
}

// queueStart holds a START back and returns the run id it will have.
func (tx *tx) queueStart(jobID, targetID int64, uid string, q queuedStart) (string, error) {
	res, err := tx.Exec(`INSERT INTO queued_starts (job_id, target_id, payload, created_at) VALUES (?, ?, '', ?)`, jobID, targetID, ms(tx.now))
	if err != nil {
		return "", err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return "", err
	}
	q.Payload.RunID = muster.QueuedRunID(uid, id)
	body, err := json.Marshal(q)
	if err != nil {
		return "", err
	}
	_, err = tx.Exec(`UPDATE queued_starts SET payload = ? WHERE id = ?`, string(body), id)
	return q.Payload.RunID, err
}

// activeStarts counts a job's runs that hold a max_parallel_targets slot:
// runs under way on targets that are not suspected offline, and STARTs
// that have not expired and whose run is not recorded yet (pending, or
// acknowledged but not yet uploaded).
func (tx *tx) activeStarts(job string) (int, error) {
	var n int
	now := ms(tx.now)
	err := tx.QueryRow(`SELECT
		(SELECT COUNT(*) FROM runs r JOIN targets t ON t.id = r.target_id
			WHERE r.job_name = ? AND r.status = 'running' AND t.last_poll_at >= ? - 3 * t.poll_interval * 1000)
		+ (SELECT COUNT(*) FROM instructions i WHERE i.job_name = ? AND i.operation = 'START'
			AND i.status IN ('pending', 'downloaded') AND i.expires_at > ?
			AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.target_id = i.target_id AND r.run_id = i.run_id))`,
		job, now, job, now).Scan(&n)
	return n, err
}

// releaseQueued posts the STARTs a job's max_parallel_targets held back, in
// order, while slots are free.
func (tx *tx) releaseQueued(job string) error {
	var jobID int64
	var def string
	err := tx.QueryRow(`SELECT id, definition FROM jobs WHERE name = ? AND EXISTS (SELECT 1 FROM queued_starts WHERE job_id = jobs.id)`, job).Scan(&jobID, &def)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	var j muster.Job
	if err := json.Unmarshal([]byte(def), &j); err != nil {
		return err
	}
	free := 1 << 30 // the cap was lifted: release them all
	if j.MaxParallelTargets > 0 {
		active, err := tx.activeStarts(job)
		if err != nil {
			return err
		}
		free = j.MaxParallelTargets - active
	}
	if free <= 0 {
		return nil
	}
	rows, err := tx.Query(`SELECT id, target_id, payload FROM queued_starts WHERE job_id = ? ORDER BY id LIMIT ?`, jobID, free)
	if err != nil {
		return err
	}
	type entry struct {
		id, target int64
		q          queuedStart
	}
	var batch []entry
	for rows.Next() {
		var e entry
		var payload string
		if err := rows.Scan(&e.id, &e.target, &payload); err != nil {
			rows.Close()
			return err
		}
		if err := json.Unmarshal([]byte(payload), &e.q); err != nil {
			rows.Close()
			return err
		}
		batch = append(batch, e)
	}
	rows.Close()
	for _, e := range batch {
		e.q.Payload.ExpiresAt = expiry(tx.now, e.q.ExpiresIn).UTC()
		if _, err := tx.post(e.target, muster.OpStart, job, e.q.Payload); err != nil {
			return err
		}
		if _, err := tx.Exec(`DELETE FROM queued_starts WHERE id = ?`, e.id); err != nil {
			return err
		}
	}
	return nil
}

// ReleaseQueuedStarts posts held-back STARTs of every job that has free
// slots. The master calls it periodically, for slots freed by a START
// that failed or expired rather than by a run that ended.
func (db *DB) ReleaseQueuedStarts(ctx context.Context) error {
	return db.update(ctx, func(tx *tx) error {
		jobs, err := tx.names(`SELECT DISTINCT j.name FROM queued_starts q JOIN jobs j ON j.id = q.job_id`)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if err := tx.releaseQueued(j); err != nil {
				return err
			}
		}
		return nil
	})
}
