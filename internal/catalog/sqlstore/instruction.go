package sqlstore

import (
	"context"
	"database/sql"
	"strconv"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

// pendingInstruction is a pending instruction as its columns read it; an
// empty payload is none.
func pendingInstruction(targetID, seq int64, op, job, payload string) catalog.InstructionRow {
	in := catalog.InstructionRow{TargetID: targetID, Seq: seq, Operation: muster.Operation(op), Job: job, Status: muster.InstructionPending}
	if payload != "" {
		in.Payload = []byte(payload)
	}
	return in
}

// PendingInstructions returns a target's pending instructions after a
// sequence number, in order.
func (s *Queries) PendingInstructions(ctx context.Context, targetID, after int64, limit int) ([]catalog.InstructionRow, error) {
	return collect(ctx, s.Q, func(r Rows) (in catalog.InstructionRow, err error) {
		var seq int64
		var op, job, payload string
		err = r.Scan(&seq, &op, &job, &payload)
		return pendingInstruction(targetID, seq, op, job, payload), err
	}, `SELECT seq, operation, job_name, payload FROM instructions
		WHERE target_id = $1 AND seq > $2 AND status = 'pending' ORDER BY seq LIMIT $3`, targetID, after, limit)
}

// PollPending returns what a poll reads: its target's last sequence
// number and whether it is paused, with the target's pending instructions
// after a sequence number, in order. One statement reads both, so that
// they are of one snapshot and a poll costs one round trip: the target's
// row, joined to each pending instruction or, with none, alone.
func (s *Queries) PollPending(ctx context.Context, targetID, after int64, limit int) (lastSeq int64, paused bool, ins []catalog.InstructionRow, err error) {
	rows, err := s.Q.Query(ctx, `SELECT t.last_seq, t.paused, i.seq, i.operation, i.job_name, i.payload
		FROM targets t LEFT JOIN instructions i ON i.target_id = t.id AND i.seq > $2 AND i.status = 'pending'
		WHERE t.id = $1 ORDER BY i.seq LIMIT $3`, targetID, after, limit)
	if err != nil {
		return 0, false, nil, err
	}
	defer rows.Close()
	found := false
	ins = []catalog.InstructionRow{}
	for rows.Next() {
		var seq sql.NullInt64
		var op, job, payload sql.NullString
		if err := rows.Scan(&lastSeq, &paused, &seq, &op, &job, &payload); err != nil {
			return 0, false, nil, err
		}
		found = true
		if !seq.Valid {
			continue // the target's row alone: nothing pending
		}
		ins = append(ins, pendingInstruction(targetID, seq.Int64, op.String, job.String, payload.String))
	}
	if err := rows.Err(); err != nil {
		return 0, false, nil, err
	}
	if !found {
		return 0, false, nil, sql.ErrNoRows
	}
	return lastSeq, paused, ins, nil
}

// PollPendingOf is PollPending for several targets, each after its own
// sequence number (after maps targets to it), at most limit instructions
// a target, in one statement: the polls that came together, read in one
// snapshot. A target without a row has no entry.
func (s *Queries) PollPendingOf(ctx context.Context, after map[int64]int64, limit int) (map[int64]catalog.PollRow, error) {
	a := &args{d: s.D}
	q := `SELECT target_id, last_seq, paused, seq, operation, job_name, payload FROM (
		SELECT t.id AS target_id, t.last_seq, t.paused, i.seq, i.operation, i.job_name, i.payload,
			row_number() OVER (PARTITION BY t.id ORDER BY i.seq) AS n
		FROM (` + s.cursors(a, after) + `) AS p JOIN targets t ON t.id = p.target_id
		LEFT JOIN instructions i ON i.target_id = t.id AND i.seq > p.after_seq AND i.status = 'pending') AS w
		WHERE n <= ` + a.add(limit) + ` ORDER BY target_id, seq`
	rows, err := s.Q.Query(ctx, q, a.vals...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[int64]catalog.PollRow, len(after))
	for rows.Next() {
		var id, last int64
		var paused bool
		var seq sql.NullInt64
		var op, job, payload sql.NullString
		if err := rows.Scan(&id, &last, &paused, &seq, &op, &job, &payload); err != nil {
			return nil, err
		}
		p, ok := out[id]
		if !ok {
			p = catalog.PollRow{LastSeq: last, Paused: paused, Instructions: []catalog.InstructionRow{}}
		}
		if seq.Valid {
			p.Instructions = append(p.Instructions, pendingInstruction(id, seq.Int64, op.String, job.String, payload.String))
		}
		out[id] = p
	}
	return out, rows.Err()
}

// cursors returns a query of the pairs of after as rows (target_id,
// after_seq): from two array parameters, or one JSON parameter on an
// engine without arrays.
func (s *Queries) cursors(a *args, after map[int64]int64) string {
	ids, seqs := make([]int64, 0, len(after)), make([]int64, 0, len(after))
	for id, seq := range after {
		ids, seqs = append(ids, id), append(seqs, seq)
	}
	if s.D.ArrayParams {
		return `SELECT * FROM unnest(` + a.add(ids) + `::bigint[], ` + a.add(seqs) + `::bigint[]) AS p (target_id, after_seq)`
	}
	b := make([]byte, 0, 24*len(ids))
	b = append(b, '[')
	for i := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = strconv.AppendInt(b, ids[i], 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, seqs[i], 10)
		b = append(b, ']')
	}
	b = append(b, ']')
	return `SELECT value ->> 0 AS target_id, value ->> 1 AS after_seq FROM json_each(` + a.add(string(b)) + `)`
}

// PendingInstructionsOf returns the pending instructions of several
// targets, each after its own sequence number (after maps targets to it),
// at most limit a target, in order: the polls a post woke, read in one
// statement. A target with none has no entry.
func (s *Queries) PendingInstructionsOf(ctx context.Context, after map[int64]int64, limit int) (map[int64][]catalog.InstructionRow, error) {
	a := &args{d: s.D}
	polls := s.cursors(a, after)
	q := `SELECT target_id, seq, operation, job_name, payload FROM (
		SELECT i.target_id, i.seq, i.operation, i.job_name, i.payload,
			row_number() OVER (PARTITION BY i.target_id ORDER BY i.seq) AS n
		FROM (` + polls + `) AS p JOIN instructions i ON i.target_id = p.target_id AND i.seq > p.after_seq
		WHERE i.status = 'pending') AS w
		WHERE n <= ` + a.add(limit) + ` ORDER BY target_id, seq`
	rows, err := collect(ctx, s.Q, func(r Rows) (catalog.InstructionRow, error) {
		var target, seq int64
		var op, job, payload string
		err := r.Scan(&target, &seq, &op, &job, &payload)
		return pendingInstruction(target, seq, op, job, payload), err
	}, q, a.vals...)
	if err != nil {
		return nil, err
	}
	out := map[int64][]catalog.InstructionRow{}
	for _, in := range rows {
		out[in.TargetID] = append(out[in.TargetID], in)
	}
	return out, nil
}

// FindInstructions lists the newest download-list entries of targets that
// are not defected (newest by when they were posted, their sequence
// number, then their target), at most f.Limit, in that order.
func (s *Queries) FindInstructions(ctx context.Context, f catalog.InstructionFilter) ([]catalog.StoredInstruction, error) {
	a := &args{d: s.D}
	q := `SELECT t.name AS target, i.seq, i.operation, i.job_name, i.posted_at, i.downloaded_at, i.status, i.error, i.target_id
		FROM instructions i JOIN targets t ON t.id = i.target_id WHERE t.state <> 'defected'`
	if f.Target != "" {
		q += ` AND t.name = ` + a.add(f.Target)
	}
	if f.Job != "" {
		q += ` AND i.job_name = ` + a.add(f.Job)
	}
	if f.Operation != "" {
		q += ` AND i.operation = ` + a.add(string(f.Operation))
	}
	if f.Pending {
		q += ` AND i.status = 'pending'`
	}
	if f.Errors {
		q += ` AND i.status = 'failed'`
	}
	if f.Seq != 0 {
		q += ` AND i.seq = ` + a.add(f.Seq)
	}
	if f.Scope.Limited() {
		q += ` AND ` + scopeJobOrTarget(a, "i.job_name", f.Scope, func(a *args) string { return scopeTargetIDs(a, "i.target_id", f.Scope) })
	}
	if b := f.Before; b != nil {
		// The first term reads the index by time of posting; the rest
		// orders what was posted at one instant.
		at, seq := a.add(ms(b.PostedAt)), a.add(b.Seq)
		q += ` AND i.posted_at <= ` + at + ` AND (i.posted_at < ` + at + ` OR i.seq < ` + seq +
			` OR (i.seq = ` + seq + ` AND i.target_id < ` + a.add(b.TargetID) + `))`
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	q += ` ORDER BY i.posted_at DESC, i.seq DESC, i.target_id DESC LIMIT ` + a.add(limit)
	return collect(ctx, s.Q, func(r Rows) (in catalog.StoredInstruction, err error) {
		var op, status string
		var posted int64
		var downloaded sql.NullInt64
		err = r.Scan(&in.Target, &in.Seq, &op, &in.Job, &posted, &downloaded, &status, &in.Error, &in.TargetID)
		in.Operation, in.Status = muster.Operation(op), muster.InstructionStatus(status)
		in.PostedAt, in.DownloadedAt = fromMS(posted), fromNullMS(downloaded)
		return in, err
	}, q, a.vals...)
}

// InstructionsBySeq returns the instructions with a sequence number on
// active targets (on the one named, when target is set).
func (s *Queries) InstructionsBySeq(ctx context.Context, target string, seq int64) ([]catalog.InstructionRow, error) {
	a := &args{d: s.D}
	q := `SELECT i.target_id, t.name, i.seq, i.operation, i.job_name, i.payload, i.status, i.posted_at, i.run_id, i.expires_at
		FROM instructions i JOIN targets t ON t.id = i.target_id WHERE t.state = 'active' AND i.seq = ` + a.add(seq)
	if target != "" {
		q += ` AND t.name = ` + a.add(target)
	}
	return collect(ctx, s.Q, func(r Rows) (in catalog.InstructionRow, err error) {
		var op, status, payload string
		var posted int64
		var expires sql.NullInt64
		err = r.Scan(&in.TargetID, &in.Target, &in.Seq, &op, &in.Job, &payload, &status, &posted, &in.RunID, &expires)
		in.Operation, in.Status, in.PostedAt, in.ExpiresAt = muster.Operation(op), muster.InstructionStatus(status), fromMS(posted), fromNullMS(expires)
		if payload != "" {
			in.Payload = []byte(payload)
		}
		return in, err
	}, q+` ORDER BY t.name`, a.vals...)
}

// WasSent reports whether a target was ever sent a job.
func (s *Queries) WasSent(ctx context.Context, targetID int64, job string) (bool, error) {
	var ok bool
	err := s.Q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sent_jobs WHERE target_id = $1 AND job_name = $2)`, targetID, job).Scan(&ok)
	return ok, err
}

// Supersede marks superseded the failed instructions of a job on the
// targets, and its pending ones whose operation the new one makes moot.
// The failed and the pending go by a statement each, so that each reads
// only the index of its status, never the targets' whole history.
func (s *Queries) Supersede(ctx context.Context, targetIDs []int64, job string, moot []muster.Operation) error {
	if len(targetIDs) == 0 {
		return nil
	}
	ops := make([]string, len(moot))
	for i, op := range moot {
		ops[i] = string(op)
	}
	// of is the statements' choice of targets and job.
	of := func(a *args) string {
		if job != "" {
			return in(a, "target_id", targetIDs) + ` AND job_name = ` + a.add(job)
		}
		return in(a, "target_id", targetIDs) + ` AND job_name <> ''`
	}
	a := &args{d: s.D}
	if _, err := s.Q.Exec(ctx, `UPDATE instructions SET status = 'superseded' WHERE status = 'failed' AND `+of(a), a.vals...); err != nil || len(ops) == 0 {
		return err
	}
	a = &args{d: s.D}
	_, err := s.Q.Exec(ctx, `UPDATE instructions SET status = 'superseded' WHERE status = 'pending' AND `+in(a, "operation", ops)+` AND `+of(a), a.vals...)
	return err
}

// InsertInstructions appends instructions to download lists, pending:
// several, on an engine without array parameters (SQLite), to a statement,
// a row of parameters each (a START fanned out to a thousand targets is
// seven statements of 128 rows and three smaller); otherwise one statement each, as the
// engine that takes arrays does only for one or two (pgstore copies more).
func (s *Queries) InsertInstructions(ctx context.Context, ins []catalog.InstructionRow) error {
	if len(ins) > 1 && !s.D.ArrayParams {
		// Many to a statement, a row of parameters each (see valuesInsert).
		params := make([]any, 0, insertInstructionsValues.cols*insertInstructionsValues.rows(len(ins)))
		for rest := ins; len(rest) > 0; {
			n := insertInstructionsValues.rows(len(rest))
			params = params[:0]
			for _, in := range rest[:n] {
				params = append(params, in.TargetID, in.Seq, string(in.Operation), in.Job, string(in.Payload), statusPending,
					ms(in.PostedAt), in.RunID, nullMS(in.ExpiresAt))
			}
			if _, err := s.Q.Exec(ctx, insertInstructionsValues.text(n), params...); err != nil {
				return err
			}
			rest = rest[n:]
		}
		return nil
	}
	for _, in := range ins {
		if err := s.execHeld(ctx, `INSERT INTO instructions (target_id, seq, operation, job_name, payload, status, posted_at, run_id, expires_at)
			VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8)`,
			in.TargetID, in.Seq, string(in.Operation), in.Job, string(in.Payload), ms(in.PostedAt), in.RunID, nullMS(in.ExpiresAt)); err != nil {
			return err
		}
	}
	return nil
}

// insertInstructionsValues stores many instructions at once, each pending.
var insertInstructionsValues = newValuesInsert(`INSERT INTO instructions (target_id, seq, operation, job_name, payload, status, posted_at, run_id, expires_at)`, 9, ``)

// statusPending is the status of an instruction posted.
const statusPending = string(muster.InstructionPending)

// MarkSent records that targets were sent a job (by an INSERT): a target may
// upload runs only of jobs it was sent.
func (s *Queries) MarkSent(ctx context.Context, targetIDs []int64, job string) error {
	for _, id := range targetIDs {
		if _, err := s.Q.Exec(ctx, `INSERT INTO sent_jobs (target_id, job_name) VALUES ($1, $2) ON CONFLICT DO NOTHING`, id, job); err != nil {
			return err
		}
	}
	return nil
}

// AckInstructions records outcomes of a target's pending instructions; one
// no longer pending is left as it is.
func (s *Queries) AckInstructions(ctx context.Context, targetID int64, acks []catalog.AckRow, at time.Time) ([]catalog.Acked, error) {
	var out []catalog.Acked
	for _, a := range acks {
		var op string
		err := s.Q.QueryRow(ctx, `UPDATE instructions SET status = $1, error = $2, downloaded_at = $3
			WHERE target_id = $4 AND seq = $5 AND status = 'pending' RETURNING operation`,
			string(a.Status), a.Error, ms(at), targetID, a.Seq).Scan(&op)
		switch {
		case noRows(err):
		case err != nil:
			return nil, err
		default:
			out = append(out, catalog.Acked{Operation: muster.Operation(op), Status: a.Status})
		}
	}
	return out, nil
}

// SetInstructionStatus moves an instruction from one of the statuses from.
func (s *Queries) SetInstructionStatus(ctx context.Context, targetID, seq int64, from []muster.InstructionStatus, status muster.InstructionStatus) (bool, error) {
	a := &args{d: s.D}
	q := `UPDATE instructions SET status = ` + a.add(string(status)) + ` WHERE target_id = ` + a.add(targetID) +
		` AND seq = ` + a.add(seq) + ` AND ` + in(a, "status", statusTexts(from))
	n, err := s.Q.Exec(ctx, q, a.vals...)
	return n > 0, err
}

// CloseInstructions moves every instruction of a target in one of the
// statuses from to status.
func (s *Queries) CloseInstructions(ctx context.Context, targetID int64, from []muster.InstructionStatus, status muster.InstructionStatus) error {
	a := &args{d: s.D}
	q := `UPDATE instructions SET status = ` + a.add(string(status)) + ` WHERE target_id = ` + a.add(targetID) +
		` AND ` + in(a, "status", statusTexts(from))
	_, err := s.Q.Exec(ctx, q, a.vals...)
	return err
}

func statusTexts(ss []muster.InstructionStatus) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

// PruneDownloaded keeps at most keep finished instructions per target.
func (s *Queries) PruneDownloaded(ctx context.Context, keep int) (int64, error) {
	return s.Q.Exec(ctx, `DELETE FROM instructions WHERE (target_id, seq) IN (
		SELECT target_id, seq FROM (SELECT target_id, seq, ROW_NUMBER() OVER (PARTITION BY target_id ORDER BY seq DESC) AS n
			FROM instructions WHERE status IN ('downloaded', 'superseded', 'deleted')) AS ranked
		WHERE n > $1)`, keep)
}
