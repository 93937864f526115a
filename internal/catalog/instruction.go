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

const sqlNextSeq = `UPDATE targets SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq`

// nextSeq allocates the target's next sequence number. The counter lives on
// the target's row and is incremented inside the posting transaction, so
// sequence numbers commit in order: a poller never sees seq N+1 before N.
func (tx *tx) nextSeq(targetID int64) (int64, error) {
	var seq int64
	err := tx.QueryRow(sqlNextSeq, targetID).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("post to target %d: no such target", targetID)
	}
	return seq, err
}

// post appends an instruction to a target's download list and wakes its
// poll after commit. An INSERT or DELETE of a job supersedes the job's
// failed instructions, so the target is no longer blocked by them, and its
// pending ones that the new instruction makes moot.
func (tx *tx) post(targetID int64, op muster.Operation, job string, payload any) (int64, error) {
	seq, err := tx.nextSeq(targetID)
	if err != nil {
		return 0, err
	}
	return seq, tx.insertInstruction(targetID, seq, op, job, payload)
}

const (
	sqlInsertInstruction = `INSERT INTO instructions (target_id, seq, operation, job_name, payload, status, posted_at, run_id, expires_at)
	VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)`
	sqlSentJob = `INSERT INTO sent_jobs (target_id, job_name) VALUES (?, ?) ON CONFLICT DO NOTHING`
)

func (tx *tx) insertInstruction(targetID, seq int64, op muster.Operation, job string, payload any) error {
	var body []byte
	if payload != nil {
		var err error
		if body, err = json.Marshal(payload); err != nil {
			return err
		}
	}
	if err := tx.supersede(targetID, op, job); err != nil {
		return err
	}
	var runID string
	var expires sql.NullInt64
	if p, ok := payload.(agentproto.StartPayload); ok {
		runID, expires = p.RunID, sql.NullInt64{Int64: ms(p.ExpiresAt), Valid: true}
	}
	_, err := tx.Exec(sqlInsertInstruction, targetID, seq, string(op), job, string(body), ms(tx.now), runID, expires)
	if err != nil {
		return err
	}
	if op == muster.OpInsert {
		if _, err := tx.Exec(sqlSentJob, targetID, job); err != nil {
			return err
		}
	}
	tx.wake[targetID] = struct{}{}
	return nil
}

func (tx *tx) supersede(targetID int64, op muster.Operation, job string) error {
	var moot []string // pending operations the new instruction makes moot
	switch op {
	case muster.OpInsert:
		moot = []string{"INSERT", "UPDATE"}
	case muster.OpDelete:
		moot = []string{"INSERT", "UPDATE", "START", "STOP"}
	default:
		return nil
	}
	q := `UPDATE instructions SET status = 'superseded'
		WHERE target_id = ? AND (status = 'failed' OR (status = 'pending' AND operation IN ('` + strings.Join(moot, "', '") + `')))`
	args := []any{targetID}
	if job != "" {
		q += ` AND job_name = ?`
		args = append(args, job)
	} else {
		q += ` AND job_name <> ''`
	}
	_, err := tx.Exec(q, args...)
	return err
}

// MaxPollBatch bounds how many instructions one poll reply carries.
const MaxPollBatch = 500

// PendingInstructions returns the target's pending instructions after seq,
// in sequence order.
func (db *DB) PendingInstructions(ctx context.Context, targetID, after int64) ([]agentproto.Instruction, error) {
	rows, err := db.query(ctx, `SELECT seq, operation, job_name, payload FROM instructions
		WHERE target_id = ? AND seq > ? AND status = 'pending' ORDER BY seq LIMIT ?`, targetID, after, MaxPollBatch)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []agentproto.Instruction
	for rows.Next() {
		var in agentproto.Instruction
		var op, payload string
		if err := rows.Scan(&in.Seq, &op, &in.Job, &payload); err != nil {
			return nil, err
		}
		in.Operation = muster.Operation(op)
		if payload != "" {
			in.Payload = json.RawMessage(payload)
		}
		out = append(out, in)
	}
	return out, rows.Err()
}

// LastSeq returns the last sequence number posted to a target.
func (db *DB) LastSeq(ctx context.Context, targetID int64) (int64, error) {
	var seq int64
	err := db.queryRow(ctx, `SELECT last_seq FROM targets WHERE id = ?`, targetID).Scan(&seq)
	return seq, err
}

// MaxErrorLen bounds an instruction error as stored.
const MaxErrorLen = 1024

const (
	sqlAckInstruction = `UPDATE instructions SET status = ?, error = ?, downloaded_at = ?
		WHERE target_id = ? AND seq = ? AND status = 'pending'`
	sqlLiftTombstone = `UPDATE targets SET state = ?, defected_at = ? WHERE id = ? AND state = ?
		AND EXISTS (SELECT 1 FROM instructions WHERE target_id = ? AND operation = 'DEFECT' AND status IN ('downloaded', 'failed'))`
)

// Ack records the outcome of instructions a target applied. An ack for an
// instruction that is no longer pending (superseded, deleted, already
// acknowledged) changes nothing, so acks may be repeated.
func (db *DB) Ack(ctx context.Context, targetID int64, acks []agentproto.Ack) error {
	if len(acks) == 0 {
		return nil
	}
	return db.update(ctx, func(tx *tx) error {
		stmt, err := tx.stmt(sqlAckInstruction)
		if err != nil {
			return err
		}
		for _, a := range acks {
			status, msg := muster.InstructionDownloaded, ""
			if !a.OK {
				status, msg = muster.InstructionFailed, a.Error
				if msg == "" {
					msg = "the target reported an error without a message"
				}
				if len(msg) > MaxErrorLen {
					msg = msg[:MaxErrorLen]
				}
			}
			if _, err := stmt.ExecContext(ctx, string(status), msg, ms(tx.now), targetID, a.Seq); err != nil {
				return err
			}
		}
		// A deleted target that has collected its DEFECT is gone: the
		// tombstone is lifted and its name is free.
		res, err := tx.Exec(sqlLiftTombstone, TargetDefected, ms(tx.now), targetID, TargetDeleted, targetID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			_, err = tx.Exec(`UPDATE instructions SET status = 'deleted' WHERE target_id = ? AND status = 'pending'`, targetID)
		}
		return err
	})
}

// InstructionFilter selects download-list entries.
type InstructionFilter struct {
	Target    string
	Job       string
	Operation muster.Operation
	Pending   bool // only pending
	Errors    bool // only failed
	Seq       int64
	Limit     int
}

// FindInstructions lists download-list entries of active targets, by target
// then sequence number.
func (db *DB) FindInstructions(ctx context.Context, f InstructionFilter) ([]muster.Instruction, error) {
	query := `SELECT t.name, i.seq, i.operation, i.job_name, i.posted_at, i.downloaded_at, i.status, i.error
		FROM instructions i JOIN targets t ON t.id = i.target_id WHERE t.state <> 'defected'`
	var args []any
	if f.Target != "" {
		query += ` AND t.name = ?`
		args = append(args, f.Target)
	}
	if f.Job != "" {
		query += ` AND i.job_name = ?`
		args = append(args, f.Job)
	}
	if f.Operation != "" {
		query += ` AND i.operation = ?`
		args = append(args, string(f.Operation))
	}
	if f.Pending {
		query += ` AND i.status = 'pending'`
	}
	if f.Errors {
		query += ` AND i.status = 'failed'`
	}
	if f.Seq != 0 {
		query += ` AND i.seq = ?`
		args = append(args, f.Seq)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	// The newest entries are the interesting ones; show them in order.
	query = `SELECT * FROM (` + query + ` ORDER BY i.posted_at DESC, i.seq DESC LIMIT ?) ORDER BY 1, 2`
	args = append(args, limit)
	rows, err := db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []muster.Instruction{}
	for rows.Next() {
		var in muster.Instruction
		var op, status string
		var posted int64
		var downloaded sql.NullInt64
		if err := rows.Scan(&in.Target, &in.Seq, &op, &in.Job, &posted, &downloaded, &status, &in.Error); err != nil {
			return nil, err
		}
		in.Operation, in.Status = muster.Operation(op), muster.InstructionStatus(status)
		in.PostedAt, in.DownloadedAt = fromMS(posted), fromNullMS(downloaded)
		out = append(out, in)
	}
	return out, rows.Err()
}

// instructionRow is one instruction as the operator commands address it.
type instructionRow struct {
	targetID int64
	target   string
	seq      int64
	op       muster.Operation
	job      string
	payload  string
	status   muster.InstructionStatus
}

// instructionRef finds the one instruction seq names, among those in the
// given statuses, optionally on one target. Sequence numbers are per target,
// so a bare seq must be unambiguous.
func (tx *tx) instructionRef(target string, seq int64, statuses ...muster.InstructionStatus) (instructionRow, error) {
	q := `SELECT i.target_id, t.name, i.seq, i.operation, i.job_name, i.payload, i.status FROM instructions i
		JOIN targets t ON t.id = i.target_id WHERE t.state = 'active' AND i.seq = ?`
	args := []any{seq}
	if target != "" {
		q += ` AND t.name = ?`
		args = append(args, target)
	}
	rows, err := tx.Query(q, args...)
	if err != nil {
		return instructionRow{}, err
	}
	defer rows.Close()
	var all, usable []instructionRow
	for rows.Next() {
		var r instructionRow
		if err := rows.Scan(&r.targetID, &r.target, &r.seq, &r.op, &r.job, &r.payload, &r.status); err != nil {
			return instructionRow{}, err
		}
		all = append(all, r)
		if slices.Contains(statuses, r.status) {
			usable = append(usable, r)
		}
	}
	if err := rows.Err(); err != nil {
		return instructionRow{}, err
	}
	want := make([]string, len(statuses))
	for i, s := range statuses {
		want[i] = string(s)
	}
	switch {
	case len(usable) == 1:
		return usable[0], nil
	case len(usable) > 1:
		var names []string
		for _, r := range usable {
			names = append(names, r.target)
		}
		return instructionRow{}, muster.Errorf(muster.EINVALID, "instruction %d: sequence numbers are per target, and %s each have a %s one; name the target with --target", seq, strings.Join(names, ", "), strings.Join(want, " or "))
	case len(all) == 1:
		return instructionRow{}, muster.Errorf(muster.EPRECONDITION, "instruction %d on %s is %s; only a %s instruction can be changed", seq, all[0].target, all[0].status, strings.Join(want, " or "))
	case len(all) > 1:
		return instructionRow{}, muster.Errorf(muster.EPRECONDITION, "no %s instruction %d; name the target with --target", strings.Join(want, " or "), seq)
	}
	if target != "" {
		return instructionRow{}, muster.Errorf(muster.ENOTFOUND, "no instruction %d on target %q", seq, target)
	}
	return instructionRow{}, muster.Errorf(muster.ENOTFOUND, "no instruction %d", seq)
}

// RetryInstruction reposts a failed instruction as a new one and marks the
// failed one superseded, which clears the block it caused. A failed INSERT
// is reposted with the job's current definition, since that is what the
// operator wants in force.
func (db *DB) RetryInstruction(ctx context.Context, target string, seq int64) (muster.Instruction, error) {
	var posted muster.Instruction
	err := db.update(ctx, func(tx *tx) error {
		r, err := tx.instructionRef(target, seq, muster.InstructionFailed)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(`UPDATE instructions SET status = 'superseded' WHERE target_id = ? AND seq = ?`, r.targetID, seq); err != nil {
			return err
		}
		var body any
		if r.payload != "" {
			body = json.RawMessage(r.payload)
		}
		if r.op == muster.OpStart {
			// A retried START is a new start: a new run id (from the new
			// sequence number) and a new expiry.
			var uid string
			if err := tx.QueryRow(sqlTargetUID, r.targetID).Scan(&uid); err != nil {
				return err
			}
			var old agentproto.StartPayload
			if err := json.Unmarshal([]byte(r.payload), &old); err != nil {
				return fmt.Errorf("instruction %d: stored START: %w", seq, err)
			}
			seq, err := tx.nextSeq(r.targetID)
			if err != nil {
				return err
			}
			// The same start again: its env and first step, a new run id and a
			// fresh expiry.
			p := old
			p.RunID, p.ExpiresAt = muster.StartRunID(uid, seq), expiry(tx.now, 0).UTC()
			posted = muster.Instruction{Seq: seq, Target: r.target, Operation: r.op, Job: r.job, PostedAt: tx.now.UTC(), Status: muster.InstructionPending}
			return tx.insertInstruction(r.targetID, seq, r.op, r.job, p)
		}
		if r.op == muster.OpInsert {
			j, targeted, err := tx.jobForTarget(r.job, r.targetID)
			if err != nil {
				return err
			}
			if !targeted {
				return muster.Errorf(muster.EPRECONDITION, "instruction %d: job %q no longer runs on %s; delete the instruction instead", seq, r.job, r.target)
			}
			body = agentproto.JobFromDomain(j.DefinitionFor(r.target))
		}
		newSeq, err := tx.post(r.targetID, r.op, r.job, body)
		posted = muster.Instruction{Seq: newSeq, Target: r.target, Operation: r.op, Job: r.job, PostedAt: tx.now.UTC(), Status: muster.InstructionPending}
		return err
	})
	return posted, err
}

// DeleteInstruction marks a pending or failed instruction deleted: it is not
// delivered, and no longer blocks its target.
func (db *DB) DeleteInstruction(ctx context.Context, target string, seq int64) error {
	return db.update(ctx, func(tx *tx) error {
		r, err := tx.instructionRef(target, seq, muster.InstructionPending, muster.InstructionFailed)
		if err != nil {
			return err
		}
		_, err = tx.Exec(`UPDATE instructions SET status = 'deleted' WHERE target_id = ? AND seq = ?`, r.targetID, seq)
		return err
	})
}

// Resync drops a target's open instructions and posts DELETE of every job
// followed by an INSERT of each job it should hold (SQL Server's
// sp_resync_targetserver). The sequence counter moves past after, the
// target's own cursor, so a catalog restored from a backup does not hand
// out numbers the target has already consumed. It returns the sequence
// number the re-posted instructions follow.
func (db *DB) Resync(ctx context.Context, targetID, after int64) (int64, error) {
	var base int64
	err := db.update(ctx, func(tx *tx) error {
		var err error
		base, err = tx.resync(targetID, after)
		return err
	})
	return base, err
}

func (tx *tx) resync(targetID, after int64) (int64, error) {
	if _, err := tx.Exec(`UPDATE instructions SET status = 'superseded' WHERE target_id = ? AND status IN ('pending', 'failed')`, targetID); err != nil {
		return 0, err
	}
	var base int64
	var name string
	if err := tx.QueryRow(`UPDATE targets SET last_seq = MAX(last_seq, ?) WHERE id = ? RETURNING last_seq, name`, after, targetID).Scan(&base, &name); err != nil {
		return 0, err
	}
	if _, err := tx.post(targetID, muster.OpDelete, "", nil); err != nil {
		return 0, err
	}
	jobs, err := tx.jobsOfTarget(targetID)
	if err != nil {
		return 0, err
	}
	for _, j := range jobs {
		if _, err := tx.post(targetID, muster.OpInsert, j.Name, agentproto.JobFromDomain(j.DefinitionFor(name))); err != nil {
			return 0, err
		}
	}
	return base, nil
}

// expiry converts an optional duration to an absolute time.
func expiry(now time.Time, d time.Duration) time.Time {
	if d <= 0 {
		d = muster.DefaultStartExpiry
	}
	return now.Add(d)
}
