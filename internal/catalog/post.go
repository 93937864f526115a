package catalog

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
)

// PostRequest posts an instruction by hand (SQL Server's
// sp_post_msx_operation). Job operations (INSERT, UPDATE, DELETE, START,
// STOP) need Job and go to the job's targets, or those named; server
// operations (RE-ENLIST, SYNC-TIME, SET-POLL) take no job and go to every
// target, or those named. SET-POLL needs Value, the poll interval in
// seconds.
type PostRequest struct {
	Operation   muster.Operation `json:"operation"`
	Job         string           `json:"job,omitempty"`
	Targets     []string         `json:"targets,omitempty"`
	Value       int              `json:"value,omitempty"`
	RequestedBy string           `json:"-"`
}

// Post posts the instructions a PostRequest asks for, in one transaction,
// and returns them.
func (db *DB) Post(ctx context.Context, req PostRequest) ([]muster.Instruction, error) {
	op := muster.Operation(strings.ToUpper(string(req.Operation)))
	switch {
	case !op.Valid():
		return nil, muster.Errorf(muster.EINVALID, "operation: %q is not one of INSERT, UPDATE, DELETE, START, STOP, RE-ENLIST, SYNC-TIME, SET-POLL", req.Operation)
	case op == muster.OpDefect:
		return nil, muster.Errorf(muster.EINVALID, "operation: DEFECT is posted by `muster target delete NAME` (or `--all`), which also clears the target's download list")
	case op.JobOperation() && req.Job == "":
		return nil, muster.Errorf(muster.EINVALID, "job: %s acts on a job; name it with --job", op)
	case !op.JobOperation() && req.Job != "":
		return nil, muster.Errorf(muster.EINVALID, "job: %s acts on targets, not on a job; leave out --job", op)
	case op == muster.OpSetPoll:
		if err := muster.ValidatePollInterval("value", req.Value); err != nil {
			return nil, err
		}
	case req.Value != 0:
		return nil, muster.Errorf(muster.EINVALID, "value: only SET-POLL takes a value")
	}
	if op == muster.OpStart {
		res, err := db.StartJob(ctx, StartRequest{Job: req.Job, Targets: req.Targets, RequestedBy: req.RequestedBy})
		if err != nil {
			return nil, err
		}
		var out []muster.Instruction
		for _, r := range res.Runs {
			out = append(out, muster.Instruction{Seq: r.Seq, Target: r.Target, Operation: op, Job: res.Job, Status: muster.InstructionPending})
		}
		return out, nil
	}
	var posted []muster.Instruction
	err := db.update(ctx, func(tx *tx) error {
		posted = posted[:0]
		targets, job, err := tx.postTargets(op, req.Job, req.Targets)
		if err != nil {
			return err
		}
		names := make([]string, 0, len(targets))
		for n := range targets {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, name := range names {
			var payload any
			switch op {
			case muster.OpInsert:
				payload = agentproto.JobFromDomain(job.job.DefinitionFor(name))
			case muster.OpUpdate:
				payload = updatePayload(job.job)
			case muster.OpSetPoll:
				payload = agentproto.SetPollPayload{PollInterval: req.Value}
			}
			seq, err := tx.post(targets[name], op, req.Job, payload)
			if err != nil {
				return err
			}
			posted = append(posted, muster.Instruction{Seq: seq, Target: name, Operation: op, Job: req.Job, PostedAt: tx.now.UTC(), Status: muster.InstructionPending})
		}
		return nil
	})
	return posted, err
}

// postTargets resolves the targets a posted instruction goes to.
func (tx *tx) postTargets(op muster.Operation, jobName string, named []string) (map[string]int64, storedJob, error) {
	for i, t := range named {
		named[i] = muster.NormalizeTargetName(t)
	}
	if !op.JobOperation() {
		if len(named) > 0 {
			ids, err := tx.targetIDs("targets", named)
			return ids, storedJob{}, err
		}
		ids, err := tx.activeTargets()
		return ids, storedJob{}, err
	}
	job, err := tx.loadJob(jobName)
	if err != nil {
		return nil, job, err
	}
	if len(job.targets) == 0 {
		return nil, job, muster.Errorf(muster.EPRECONDITION, "job %q runs on no target", jobName)
	}
	if len(named) == 0 {
		return job.targets, job, nil
	}
	ids := map[string]int64{}
	for _, t := range named {
		id, ok := job.targets[t]
		if !ok {
			return nil, job, muster.Errorf(muster.EINVALID, "targets: job %q does not run on %q", jobName, t)
		}
		ids[t] = id
	}
	return ids, job, nil
}

// activeTargets returns every active target by name.
func (tx *tx) activeTargets() (map[string]int64, error) {
	ids := map[string]int64{}
	return ids, tx.nameIDs(ids, `SELECT name, id FROM targets WHERE state = 'active'`)
}

// ResyncTargets resyncs the named targets, or every target when all is set
// (SQL Server's sp_resync_targetserver), in one transaction.
func (db *DB) ResyncTargets(ctx context.Context, names []string, all bool) ([]string, error) {
	var done []string
	err := db.update(ctx, func(tx *tx) error {
		var ids map[string]int64
		var err error
		if all {
			ids, err = tx.activeTargets()
		} else {
			for i, n := range names {
				names[i] = muster.NormalizeTargetName(n)
			}
			ids, err = tx.targetIDs("targets", names)
		}
		if err != nil {
			return err
		}
		done = done[:0]
		for name := range ids {
			done = append(done, name)
		}
		slices.Sort(done)
		for _, name := range done {
			if _, err := tx.resync(ids[name], 0); err != nil {
				return fmt.Errorf("resync %s: %w", name, err)
			}
		}
		return nil
	})
	return done, err
}

// DeleteAllTargets deletes every target, posting each a DEFECT (or, with
// force, forgetting them at once): the multiserver setup is dismantled.
func (db *DB) DeleteAllTargets(ctx context.Context, force bool) ([]string, error) {
	targets, err := db.FindTargets(ctx, TargetFilter{})
	if err != nil {
		return nil, err
	}
	var done []string
	for _, t := range targets {
		if slices.Contains(t.Flags, muster.FlagDeleted) && !force {
			continue // already waiting for its DEFECT
		}
		if err := db.DeleteTarget(ctx, t.Name, force); err != nil {
			return done, err
		}
		done = append(done, t.Name)
	}
	return done, nil
}

// SetPaused pauses or resumes the named targets, or the members of group.
// A paused target fires no schedules and records STARTs as skipped; it
// learns of the change at once if it is polling (the hook is told to wake
// it), else at its next poll.
func (db *DB) SetPaused(ctx context.Context, names []string, group string, paused bool) ([]string, error) {
	var done []string
	err := db.update(ctx, func(tx *tx) error {
		done = done[:0]
		ids := map[string]int64{}
		if group != "" {
			if _, err := tx.groupIDs("group", []string{group}); err != nil {
				return err
			}
			if err := tx.nameIDs(ids, `SELECT t.name, t.id FROM group_members gm JOIN groups g ON g.id = gm.group_id
				JOIN targets t ON t.id = gm.target_id WHERE g.name = ? AND t.state = 'active'`, group); err != nil {
				return err
			}
		}
		for i, n := range names {
			names[i] = muster.NormalizeTargetName(n)
		}
		named, err := tx.targetIDs("targets", names)
		if err != nil {
			return err
		}
		for n, id := range named {
			ids[n] = id
		}
		for n, id := range ids {
			if _, err := tx.Exec(`UPDATE targets SET paused = ? WHERE id = ?`, paused, id); err != nil {
				return err
			}
			tx.poke = append(tx.poke, id)
			done = append(done, n)
		}
		slices.Sort(done)
		return nil
	})
	return done, err
}

// PruneDownloaded keeps at most keep finished instructions (downloaded,
// superseded or deleted) per target, deleting the oldest; pending and
// failed ones are never deleted (SQL Server's DownloadedMaxRows).
func (db *DB) PruneDownloaded(ctx context.Context, keep int) (int64, error) {
	var n int64
	err := db.update(ctx, func(tx *tx) error {
		res, err := tx.Exec(`DELETE FROM instructions WHERE rowid IN (
			SELECT rowid FROM (SELECT rowid, ROW_NUMBER() OVER (PARTITION BY target_id ORDER BY seq DESC) AS n
				FROM instructions WHERE status IN ('downloaded', 'superseded', 'deleted'))
			WHERE n > ?)`, keep)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
