package pgstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/sqlstore"
)

// txQueries is a write transaction: the shared statements, with the ones
// PostgreSQL batches or locks overridden. Each batch is one round trip
// where the shared statements would take one per row.
type txQueries struct {
	*sqlstore.Queries
	tx *pipeline
	s  *Store
}

// LockTarget takes a target's row until commit.
func (t *txQueries) LockTarget(ctx context.Context, id int64) error {
	_, err := t.tx.Exec(ctx, `SELECT id FROM targets WHERE id = $1 FOR UPDATE`, id)
	return classify(err)
}

// LockJobs takes the named jobs' rows (every job's for nil), in id order
// so that two transactions never wait for each other.
func (t *txQueries) LockJobs(ctx context.Context, names []string) error {
	var err error
	if names == nil {
		_, err = t.tx.Exec(ctx, `SELECT id FROM jobs ORDER BY id FOR UPDATE`)
	} else if len(names) > 0 {
		_, err = t.tx.Exec(ctx, `SELECT id FROM jobs WHERE name = ANY($1) ORDER BY id FOR UPDATE`, names)
	}
	return classify(err)
}

// ShareGroups takes every group's row, FOR SHARE: applies share them
// with each other, and wait for, or hold off, a change of a group's
// members or name.
func (t *txQueries) ShareGroups(ctx context.Context) error {
	_, err := t.tx.Exec(ctx, `SELECT id FROM groups ORDER BY id FOR SHARE`)
	return classify(err)
}

// LockGroup takes a group's row FOR NO KEY UPDATE: it waits for, and holds
// off, ShareGroups' FOR SHARE, but not the FOR KEY SHARE that a row
// referring to the group takes (a job's groups rewritten, a member added),
// which FOR UPDATE would: a change of one group, rewriting a job that
// names it and another, would then wait for a change of the other group
// waiting for the job, a deadlock.
func (t *txQueries) LockGroup(ctx context.Context, id int64) error {
	_, err := t.tx.Exec(ctx, `SELECT id FROM groups WHERE id = $1 FOR NO KEY UPDATE`, id)
	return classify(err)
}

// LockOperator returns an operator's row, taken until commit.
func (t *txQueries) LockOperator(ctx context.Context, name string) (catalog.OperatorRow, error) {
	if _, err := t.tx.Exec(ctx, `SELECT id FROM operators WHERE name = $1 FOR UPDATE`, name); err != nil {
		return catalog.OperatorRow{}, classify(err)
	}
	return t.Queries.LockOperator(ctx, name)
}

// lockedTargets is the FROM item by which a statement that writes the rows
// of the targets whose ids are $1 reaches them: it locks them in id order,
// FOR NO KEY UPDATE, the order and the lock of every transaction that
// writes several targets' rows (see the package comment).
const lockedTargets = `(SELECT id FROM targets WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE) AS locked`

// NextSeqs increments the targets' counters in one statement that takes
// their rows in id order, so that two posts to overlapping targets never
// wait for each other: its subquery locks the rows as its sort hands them
// out, and the update reaches a row only through the subquery's. The lock
// is the one an update of columns other than the key takes (FOR NO KEY
// UPDATE): a row referenced by a foreign key being checked meanwhile (a job
// applied to the target inserts its job_targets row) holds FOR KEY SHARE,
// which that lock does not wait for, where FOR UPDATE would. A target
// whose departure committed while the statement waited for its row is not
// posted to (catalog.ErrRetry).
func (t *txQueries) NextSeqs(ctx context.Context, counts map[int64]int) (map[int64]int64, error) {
	if len(counts) == 1 {
		return t.Queries.NextSeqs(ctx, counts)
	}
	ids := make([]int64, 0, len(counts))
	for id := range counts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	ns := make([]int64, len(ids))
	for i, id := range ids {
		ns[i] = int64(counts[id])
	}
	rows, err := t.tx.Query(ctx, `UPDATE targets t SET last_seq = t.last_seq + c.n
		FROM `+lockedTargets+`,
			unnest($1::bigint[], $2::bigint[]) AS c(id, n)
		WHERE t.id = locked.id AND c.id = locked.id AND t.state = 'active' RETURNING t.id, t.last_seq`, ids, ns)
	if err != nil {
		return nil, classify(err)
	}
	out := make(map[int64]int64, len(ids))
	for rows.Next() {
		var id, seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			rows.Close()
			return nil, classify(err)
		}
		out[id] = seq
	}
	if err := rows.Err(); err != nil {
		return nil, classify(err)
	}
	if len(out) != len(ids) {
		// One left the fleet since the transaction read it (its departure
		// held its row): run again, it reads the fleet without it.
		return nil, fmt.Errorf("post to %d targets: %d in the fleet: %w", len(ids), len(out), catalog.ErrRetry)
	}
	return out, nil
}

// InsertInstructions appends instructions with COPY.
func (t *txQueries) InsertInstructions(ctx context.Context, ins []catalog.InstructionRow) error {
	if len(ins) <= 2 {
		return t.Queries.InsertInstructions(ctx, ins)
	}
	_, err := t.tx.CopyFrom(ctx, pgx.Identifier{"instructions"},
		[]string{"target_id", "seq", "operation", "job_name", "payload", "status", "posted_at", "run_id", "expires_at"},
		pgx.CopyFromSlice(len(ins), func(i int) ([]any, error) {
			in := ins[i]
			var expires sql.NullInt64
			if in.ExpiresAt != nil {
				expires = sql.NullInt64{Int64: in.ExpiresAt.UnixMilli(), Valid: true}
			}
			return []any{in.TargetID, in.Seq, string(in.Operation), in.Job, string(in.Payload), "pending", in.PostedAt.UnixMilli(),
				in.RunID, expires}, nil
		}))
	return classify(err)
}

// MarkSent records in one statement, held, that targets were sent a job.
func (t *txQueries) MarkSent(ctx context.Context, targetIDs []int64, job string) error {
	t.tx.hold(`INSERT INTO sent_jobs (target_id, job_name) SELECT unnest($1::bigint[]), $2 ON CONFLICT DO NOTHING`,
		targetIDs, job)
	return nil
}

// AckInstructions records a target's acks in one statement.
func (t *txQueries) AckInstructions(ctx context.Context, targetID int64, acks []catalog.AckRow, at time.Time) ([]catalog.Acked, error) {
	seqs, statuses, errs := make([]int64, len(acks)), make([]string, len(acks)), make([]string, len(acks))
	for i, a := range acks {
		seqs[i], statuses[i], errs[i] = a.Seq, string(a.Status), a.Error
	}
	rows, err := t.tx.Query(ctx, `UPDATE instructions i SET status = a.status, error = a.error, downloaded_at = $2
		FROM unnest($3::bigint[], $4::text[], $5::text[]) AS a(seq, status, error)
		WHERE i.target_id = $1 AND i.seq = a.seq AND i.status = 'pending'
		RETURNING i.operation, i.status`, targetID, at.UnixMilli(), seqs, statuses, errs)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []catalog.Acked
	for rows.Next() {
		var op, status string
		if err := rows.Scan(&op, &status); err != nil {
			return nil, classify(err)
		}
		out = append(out, catalog.Acked{Operation: muster.Operation(op), Status: muster.InstructionStatus(status)})
	}
	return out, classify(rows.Err())
}

// UpsertRuns stores runs in one statement, their rows passed as arrays;
// each keeps its own revision guard, and only the runs it changed come
// back. A batch that names a run twice (which one statement cannot insert
// and then update) goes one statement a run, pipelined.
func (t *txQueries) UpsertRuns(ctx context.Context, targetID int64, runs []catalog.RunRow, at time.Time) ([]catalog.RunUpsert, error) {
	if len(runs) == 0 {
		return nil, nil
	}
	index, distinct := sqlstore.RunIndex(runs)
	if !distinct {
		return t.upsertRunsEach(ctx, targetID, runs, at)
	}
	n := len(runs)
	ids, jobs, statuses, triggers := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	messages, steps := make([]string, n), make([]string, n)
	revisions, started, durations := make([]int64, n), make([]int64, n), make([]int64, n)
	finished := make([]*int64, n)
	for i, r := range runs {
		b, err := json.Marshal(r.Steps)
		if err != nil {
			return nil, err
		}
		ids[i], jobs[i], statuses[i], triggers[i] = r.RunID, r.Job, string(r.Status), r.Trigger
		messages[i], steps[i] = r.Message, string(b)
		revisions[i], started[i], durations[i] = r.Revision, r.StartedAt.UnixMilli(), r.DurationMS
		if r.FinishedAt != nil {
			ms := r.FinishedAt.UnixMilli()
			finished[i] = &ms
		}
	}
	rows, err := t.tx.Query(ctx, sqlUpsertRuns, targetID, at.UnixMilli(),
		ids, jobs, statuses, triggers, messages, revisions, started, finished, durations, steps)
	if err != nil {
		return nil, classify(err)
	}
	out, err := sqlstore.ScanUpserts(rows, index)
	return out, classify(err)
}

// sqlUpsertRuns is sqlstore's statement that stores a run at its revision,
// for many runs at once: $1 the target, $2 the time, then a column each.
const sqlUpsertRuns = `INSERT INTO runs (target_id, run_id, job_name, status, trigger, message, revision,
		started_at, finished_at, duration_ms, steps, updated_at)
	SELECT $1, r.run_id, r.job_name, r.status, r.trigger, r.message, r.revision, r.started_at, r.finished_at, r.duration_ms, r.steps, $2
	FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::text[])
		AS r(run_id, job_name, status, trigger, message, revision, started_at, finished_at, duration_ms, steps)
	` + sqlstore.SQLRunAtRevision + `
	RETURNING id, prior_status, prior_started, run_id`

// upsertRunsEach stores runs one statement each, in one pipelined batch.
func (t *txQueries) upsertRunsEach(ctx context.Context, targetID int64, runs []catalog.RunRow, at time.Time) ([]catalog.RunUpsert, error) {
	b := &pgx.Batch{}
	for _, r := range runs {
		params, err := sqlstore.RunParams(targetID, r, at)
		if err != nil {
			return nil, err
		}
		b.Queue(sqlstore.SQLUpsertRun, params...)
	}
	res, err := t.tx.send(ctx, b)
	if err != nil {
		return nil, classify(err)
	}
	out := make([]catalog.RunUpsert, len(runs))
	for i := range runs {
		err := sqlstore.ScanUpsert(res.QueryRow(), &out[i])
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			res.Close()
			return nil, classify(err)
		default:
			out[i].Changed = true
		}
	}
	return out, classify(res.Close())
}

// InsertOutputs stores chunks of output in one statement, held.
func (t *txQueries) InsertOutputs(ctx context.Context, chunks []catalog.OutputRow) error {
	if len(chunks) <= 1 {
		return t.Queries.InsertOutputs(ctx, chunks)
	}
	n := len(chunks)
	runs, attempts, offsets, data := make([]int64, n), make([]int32, n), make([]int64, n), make([][]byte, n)
	for i, c := range chunks {
		runs[i], attempts[i], offsets[i], data[i] = c.Run, int32(c.Attempt), c.Offset, c.Data
	}
	t.tx.hold(`INSERT INTO run_output (run, attempt, byte_offset, data)
		SELECT * FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::bytea[]) ON CONFLICT DO NOTHING`,
		runs, attempts, offsets, data)
	return nil
}

// FlushHeartbeats writes heartbeats in one statement; one older than what a
// target's row holds (written by another master) changes nothing. It takes
// the targets' rows in id order, as a post does (NextSeqs): a flush and a
// START to the same targets that took them in different orders could each
// hold a row the other waits for, until PostgreSQL found the deadlock
// (deadlock_timeout, 1 s by default) and failed one of them, to be run
// again. Taken in one order, the later waits for the earlier to commit. Its
// lock, like NextSeqs', lets foreign-key checks of the rows through.
func (t *txQueries) FlushHeartbeats(ctx context.Context, beats map[int64]catalog.Heartbeat) error {
	n := len(beats)
	ids, at, offsets := make([]int64, 0, n), make([]int64, 0, n), make([]*int64, 0, n)
	local, zones, versions := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	utc, intervals, protocols, depth, dropped := make([]int32, 0, n), make([]int32, 0, n), make([]int32, 0, n), make([]int32, 0, n), make([]int32, 0, n)
	skew := make([]int64, 0, n)
	full, tracking := make([]bool, 0, n), make([]string, 0, n)
	oldest := make([]*int64, 0, n)
	for id, hb := range beats {
		var o *int64
		if v := sqlstore.SpoolOldestAt(hb); v.Valid {
			o = &v.Int64
		}
		oldest = append(oldest, o)
		ids, at = append(ids, id), append(at, hb.At.UnixMilli())
		var off *int64
		if hb.ClockOffset != nil {
			ms := hb.ClockOffset.Milliseconds()
			off = &ms
		}
		offsets = append(offsets, off)
		lt := ""
		if !hb.LocalTime.IsZero() {
			lt = hb.LocalTime.Format(time.RFC3339Nano)
		}
		local, zones, versions = append(local, lt), append(zones, hb.TimeZone), append(versions, hb.Version)
		utc, skew = append(utc, int32(hb.OffsetMinutes())), append(skew, hb.SkewMS())
		intervals, protocols = append(intervals, int32(hb.PollInterval)), append(protocols, int32(hb.Protocol))
		depth, dropped = append(depth, int32(hb.SpoolDepth)), append(dropped, int32(hb.SpoolDropped))
		full, tracking = append(full, hb.DiskFull), append(tracking, hb.ProcessTracking)
	}
	_, err := t.tx.Exec(ctx, `UPDATE targets t SET last_poll_at = h.at, local_time_at_poll = h.local, time_zone = h.tz,
			utc_offset_minutes = h.utc, clock_skew_ms = h.skew, poll_interval = h.interval, version = h.version,
			protocol = h.protocol, spool_depth = h.depth, spool_dropped = h.dropped,
			clock_offset_ms = COALESCE(h.offset_ms, t.clock_offset_ms), disk_full = h.disk_full, process_tracking = h.tracking,
			spool_oldest_at = h.oldest
		FROM `+lockedTargets+`,
			unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::int[], $6::bigint[], $7::int[], $8::text[],
			$9::int[], $10::int[], $11::int[], $12::bigint[], $13::boolean[], $14::text[], $15::bigint[])
			AS h(id, at, local, tz, utc, skew, interval, version, protocol, depth, dropped, offset_ms, disk_full, tracking, oldest)
		WHERE t.id = locked.id AND h.id = locked.id AND (t.last_poll_at IS NULL OR t.last_poll_at <= h.at)`,
		ids, at, local, zones, utc, skew, intervals, versions, protocols, depth, dropped, offsets, full, tracking, oldest)
	return classify(err)
}

// SetPaused pauses or resumes targets, taking their rows in id order, as
// posts and heartbeat flushes do (see FlushHeartbeats): a group of targets
// paused while a START to them posts waits for the post or makes it wait,
// and never deadlocks with it.
func (t *txQueries) SetPaused(ctx context.Context, ids []int64, paused bool) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := t.tx.Exec(ctx, `UPDATE targets t SET paused = $2
		FROM `+lockedTargets+`
		WHERE t.id = locked.id`, ids, paused)
	return classify(err)
}

// FindJobs reads a job to post (a START's, a STOP's) in one statement,
// with its targets' ids and names as two arrays in name order, where the
// shared statements take two round trips; other reads are sqlstore's.
func (t *txQueries) FindJobs(ctx context.Context, f catalog.JobQuery) ([]catalog.JobRow, error) {
	if !f.Posting || f.Name == "" || f.TargetID != 0 {
		return t.Queries.FindJobs(ctx, f)
	}
	var ids []int64
	var names []string
	j, err := sqlstore.ScanJob(pgRow{t.tx.QueryRow(ctx, `SELECT `+sqlstore.JobColumns+`,
			COALESCE(p.ids, '{}'), COALESCE(p.names, '{}')
		FROM jobs j LEFT JOIN LATERAL (
			SELECT array_agg(jt.target_id ORDER BY t.name) AS ids, array_agg(t.name ORDER BY t.name) AS names
			FROM job_targets jt JOIN targets t ON t.id = jt.target_id WHERE jt.job_id = j.id) p ON TRUE
		WHERE j.name = $1`, f.Name)}, &ids, &names)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return []catalog.JobRow{}, nil
	case err != nil:
		return nil, err
	case len(ids) != len(names):
		return nil, fmt.Errorf("job %q: %d target ids for %d names", f.Name, len(ids), len(names))
	}
	for i, id := range ids {
		j.Targets = append(j.Targets, catalog.JobTargetRow{TargetID: id, Target: names[i]})
	}
	return []catalog.JobRow{j}, nil
}
