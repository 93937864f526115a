package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/sqlstore"
)

// ClaimStart makes a start request's first reads in one statement, where
// the shared statements take up to three round trips: the key's claim, the
// job with its targets' ids and names as two arrays in name order (as
// FindJobs reads a job to post), and the sequence number of the START's
// target. The number is taken only if the claim is this transaction's (a
// key used before takes none), the job runs on the target, and its
// definition sets no max_parallel_targets: a START counted against that
// cap takes the job's row before its target's, as every other transaction
// that takes both does. A job that does not exist returns no row: whether
// the key was claimed is then read apart.
func (t *txQueries) ClaimStart(ctx context.Context, c catalog.StartClaim) (catalog.ClaimedStart, error) {
	var out catalog.ClaimedStart
	var ids []int64
	var names []string
	var err error
	out.Job, err = sqlstore.ScanJob(pgRow{t.tx.QueryRow(ctx, sqlClaimStart, c.Key, c.Request, c.At.UnixMilli(), c.Forgotten.UnixMilli(), c.Job, c.One, c.Target)},
		&ids, &names, &out.Claimed, &out.TargetID, &out.Seq)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return t.claimedWithoutJob(ctx, c.Key)
	case err != nil:
		return catalog.ClaimedStart{}, err
	case len(ids) != len(names):
		return catalog.ClaimedStart{}, fmt.Errorf("job %q: %d target ids for %d names", c.Job, len(ids), len(names))
	}
	out.Found = true
	for i, id := range ids {
		out.Job.Targets = append(out.Job.Targets, catalog.JobTargetRow{TargetID: id, Target: names[i]})
	}
	return out, nil
}

// claimedWithoutJob tells, for a start of a job that does not exist,
// whether sqlClaimStart claimed the key: a key this transaction claimed
// has no response yet, where one a committed start claimed has its answer.
func (t *txQueries) claimedWithoutJob(ctx context.Context, key string) (catalog.ClaimedStart, error) {
	if key == "" {
		return catalog.ClaimedStart{Claimed: true}, nil
	}
	_, response, ok, err := t.FindStart(ctx, key)
	if err != nil {
		return catalog.ClaimedStart{}, err
	}
	return catalog.ClaimedStart{Claimed: ok && response == ""}, nil
}

// sqlClaimStart claims the key $1 for the request $2 at $3, taking it over
// if it was recorded before $4 (none when $1 is empty), reads the job named
// $5, and, when $6 (StartClaim.One), takes the next sequence number of its
// target named $7, or of its only target when $7 is empty, on the
// conditions of ClaimStart. The statement's parts see one snapshot: the claim's row is
// known to the rest only through the claim's RETURNING, and the target's
// counter is read as of its row's lock (READ COMMITTED's update of the
// newest version), so it follows whatever START committed before; a
// target whose departure committed meanwhile is not numbered (the START's
// post, NextSeqs, then finds it gone).
const sqlClaimStart = `WITH claim AS (
		INSERT INTO starts (idempotency_key, request, response, created_at)
		SELECT $1, $2, '', $3 WHERE $1 <> ''
		` + sqlstore.SQLClaimForgotten + `
		RETURNING 1),
	claimed AS (SELECT $1 = '' OR EXISTS (SELECT FROM claim) AS yes),
	job AS (
		SELECT j.*, COALESCE(p.ids, '{}') AS target_ids, COALESCE(p.names, '{}') AS target_names
		FROM jobs j LEFT JOIN LATERAL (
			SELECT array_agg(jt.target_id ORDER BY t.name) AS ids, array_agg(t.name ORDER BY t.name) AS names
			FROM job_targets jt JOIN targets t ON t.id = jt.target_id WHERE jt.job_id = j.id) p ON TRUE
		WHERE j.name = $5),
	seq AS (
		UPDATE targets t SET last_seq = t.last_seq + 1
		FROM job, claimed
		WHERE $6 AND claimed.yes AND t.id = CASE
				WHEN $7 <> '' THEN job.target_ids[array_position(job.target_names, $7)]
				WHEN cardinality(job.target_ids) = 1 THEN job.target_ids[1] END
			AND COALESCE((job.definition::jsonb ->> 'max_parallel_targets')::int, 0) <= 0
			AND t.state = 'active'
		RETURNING t.id, t.last_seq)
	SELECT ` + sqlstore.JobColumns + `, j.target_ids, j.target_names, claimed.yes,
		COALESCE(seq.id, 0), COALESCE(seq.last_seq, 0)
	FROM job j CROSS JOIN claimed LEFT JOIN seq ON TRUE`
