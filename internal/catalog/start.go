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
	ExpiresIn   time.Duration `json:"expires_in,omitempty"`
	RequestedBy string        `json:"-"`
}

// StartedRun is the run a START will create on one target.
type StartedRun struct {
	Target string `json:"target"`
	Seq    int64  `json:"seq"`
	RunID  string `json:"run_id"`
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
	canonical, err := json.Marshal(struct {
		Job       string
		Targets   []string
		ExpiresIn time.Duration
	}{req.Job, req.Targets, req.ExpiresIn})
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
		targets := req.Targets
		if len(targets) == 0 {
			targets = job.job.Targets
		}
		if len(job.job.Targets) == 0 {
			return muster.Errorf(muster.EPRECONDITION, "job %q has no targets; give it some under targets: in its definition", req.Job)
		}
		for _, t := range targets {
			if _, ok := job.targets[t]; !ok {
				return muster.Errorf(muster.EINVALID, "targets: job %q does not run on %q; it runs on %s", req.Job, t, strings.Join(job.job.Targets, ", "))
			}
		}
		res = StartResult{Job: job.job.Name, ExpiresAt: expiry(tx.now, req.ExpiresIn).UTC(), Runs: []StartedRun{}}
		for _, t := range targets {
			tid := job.targets[t]
			var uid string
			if err := tx.QueryRow(sqlTargetUID, tid).Scan(&uid); err != nil {
				return err
			}
			seq, err := tx.nextSeq(tid)
			if err != nil {
				return err
			}
			runID := muster.StartRunID(uid, seq)
			payload := agentproto.StartPayload{RunID: runID, ExpiresAt: res.ExpiresAt, RequestedBy: req.RequestedBy}
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
