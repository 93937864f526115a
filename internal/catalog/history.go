package catalog

import (
	"context"
	"time"

	"github.com/musterhq/muster"
)

// PurgeRequest says which finished runs to delete: those that started
// before now minus OlderThan (when set), and beyond the newest KeepPerJob of
// each job (when set), for one job or every job. Running runs are kept.
type PurgeRequest struct {
	Job        string        `json:"job,omitempty"`
	OlderThan  time.Duration `json:"older_than,omitempty"`
	KeepPerJob int           `json:"keep_per_job,omitempty"`
}

// PurgeResult says how many runs a purge deleted.
type PurgeResult struct {
	Deleted int64 `json:"deleted"`
}

// PurgeRuns deletes history (SQL Server's sp_purge_jobhistory, plus its
// per-job row limit).
func (db *DB) PurgeRuns(ctx context.Context, req PurgeRequest) (PurgeResult, error) {
	if req.OlderThan < 0 || req.KeepPerJob < 0 {
		return PurgeResult{}, muster.Errorf(muster.EINVALID, "older_than and keep_per_job must not be negative")
	}
	if req.OlderThan == 0 && req.KeepPerJob == 0 {
		return PurgeResult{}, muster.Errorf(muster.EINVALID, "give older_than or keep_per_job (or both): a purge needs a limit")
	}
	var res PurgeResult
	err := db.update(ctx, func(tx *tx) error {
		jobFilter, args := "", []any{}
		if req.Job != "" {
			jobFilter, args = " AND job_name = ?", append(args, req.Job)
		}
		if req.OlderThan > 0 {
			r, err := tx.Exec(`DELETE FROM runs WHERE status <> 'running' AND started_at < ?`+jobFilter,
				append([]any{ms(tx.now.Add(-req.OlderThan))}, args...)...)
			if err != nil {
				return err
			}
			n, _ := r.RowsAffected()
			res.Deleted += n
		}
		if req.KeepPerJob > 0 {
			r, err := tx.Exec(`DELETE FROM runs WHERE id IN (
				SELECT id FROM (SELECT id, status, ROW_NUMBER() OVER (PARTITION BY job_name ORDER BY started_at DESC, id DESC) AS n
					FROM runs WHERE 1 = 1`+jobFilter+`)
				WHERE n > ? AND status <> 'running')`, append(args, req.KeepPerJob)...)
			if err != nil {
				return err
			}
			n, _ := r.RowsAffected()
			res.Deleted += n
		}
		return nil
	})
	return res, err
}
