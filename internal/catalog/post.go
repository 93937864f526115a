package catalog

import (
	"context"
	"fmt"
	"maps"
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
	Operation muster.Operation
	Job       string
	Targets   []string
	Value     int
}

// Post posts the instructions a PostRequest asks for, in one transaction,
// and returns them. An actor with a scope posts a job operation only for a
// job in it, and a server operation only to targets it names, each in one
// of its groups.
func (c *Catalog) Post(ctx context.Context, req PostRequest, by muster.Actor) ([]muster.Instruction, error) {
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
	switch {
	case op.JobOperation() && !by.Scope.HasJob(req.Job):
		return nil, outOfScope(by, fmt.Sprintf("job %q", req.Job))
	case !op.JobOperation() && by.Scope.Limited() && len(req.Targets) == 0:
		return nil, muster.Errorf(muster.EFORBIDDEN, "targets: API key %q is scoped (%s), so %s must name its targets, each in one of its groups", by.Name, by.Scope, op)
	}
	if op == muster.OpStart {
		res, err := c.StartJob(ctx, StartRequest{Job: req.Job, Targets: req.Targets}, by)
		if err != nil {
			return nil, err
		}
		// The STARTs were posted when the transaction began, the default
		// expiry before they expire.
		at := res.ExpiresAt.Add(-muster.DefaultStartExpiry)
		var out []muster.Instruction
		for _, r := range res.Runs {
			out = append(out, muster.Instruction{Seq: r.Seq, Target: r.Target, Operation: op, Job: res.Job, PostedAt: at,
				Status: muster.InstructionPending, RunID: r.RunID, Queued: r.Queued})
		}
		return out, nil
	}
	if op == muster.OpStop {
		// As muster job stop: the STARTs max_parallel_targets holds back
		// for those targets go too, so that no START follows the STOP,
		// and, posted to all the job's targets, its running rollouts.
		var ch muster.JobChange
		err := c.update(ctx, func(tx *tx) error {
			job, err := tx.loadJobToPost(req.Job)
			if err != nil {
				return err
			}
			if len(job.targets) == 0 {
				return muster.Errorf(muster.EPRECONDITION, "job %q runs on no target", req.Job)
			}
			ch, err = tx.stopJob(job, req.Targets, by)
			return err
		})
		return ch.Posted, err
	}
	var posted []muster.Instruction
	err := c.update(ctx, func(tx *tx) error {
		posted = posted[:0]
		targets, job, err := tx.postTargets(op, req.Job, req.Targets)
		if err != nil {
			return err
		}
		names := sortedKeys(targets)
		if !op.JobOperation() {
			if err := tx.targetsInScope(by, "targets", names); err != nil {
				return err
			}
		}
		ps := make([]posting, len(names))
		for i, name := range names {
			var payload any
			switch op {
			case muster.OpInsert:
				payload = insertPayload(job.job, name, job.via[name])
			case muster.OpUpdate:
				payload = updatePayload(job.definitionFor(name))
			case muster.OpSetPoll:
				payload = agentproto.SetPollPayload{PollInterval: req.Value}
			}
			ps[i] = posting{target: targets[name], op: op, job: req.Job, payload: payload}
		}
		seqs, err := tx.postAll(ps)
		if err != nil {
			return err
		}
		e := muster.AuditEntry{Action: muster.AuditInstructionPost, Targets: names}
		if req.Job != "" {
			e.Jobs = []string{req.Job}
		}
		for i, name := range names {
			posted = append(posted, muster.Instruction{Seq: seqs[i], Target: name, Operation: op, Job: req.Job, PostedAt: tx.now.UTC(), Status: muster.InstructionPending})
			line := fmt.Sprintf("posted %s %s (seq %d)", op, name, seqs[i])
			if op == muster.OpSetPoll {
				line += fmt.Sprintf(": poll every %ds", req.Value)
			}
			e.Changes = append(e.Changes, line)
		}
		if op == muster.OpDelete {
			// As a deletion of the job: the STARTs max_parallel_targets
			// holds back for those targets would reach them without the
			// job, and be refused.
			ids := make([]int64, len(names))
			for i, name := range names {
				ids[i] = targets[name]
			}
			dropped, err := tx.dropQueued(job.id, ids, "a DELETE of the job was posted to the target")
			if err != nil {
				return err
			}
			if dropped > 0 {
				e.Changes = append(e.Changes, fmt.Sprintf("%d START(s) held back by max_parallel_targets dropped", dropped))
			}
		}
		return tx.audit(by, e)
	})
	return posted, err
}

// postTargets resolves the targets a posted instruction goes to.
func (tx *tx) postTargets(op muster.Operation, jobName string, named []string) (map[string]int64, storedJob, error) {
	named = normalizeTargets(named)
	if !op.JobOperation() {
		if len(named) > 0 {
			ids, err := tx.targetIDs("targets", named)
			return ids, storedJob{}, err
		}
		ids, err := tx.ActiveTargets(tx.ctx)
		return ids, storedJob{}, err
	}
	// The job's row is taken before it is read: a change or deletion of
	// the job committed meanwhile would otherwise be overtaken by what
	// this posts (an INSERT of a deleted job after its DELETE).
	job, err := tx.lockJob(jobName)
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

// normalizeTargets returns target names normalized, as a new slice.
func normalizeTargets(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = muster.NormalizeTargetName(n)
	}
	return out
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// ResyncTargets resyncs the named targets, or every target when all is set
// (SQL Server's sp_resync_targetserver), in one transaction.
func (c *Catalog) ResyncTargets(ctx context.Context, names []string, all bool, by muster.Actor) ([]string, error) {
	var done []string
	err := c.update(ctx, func(tx *tx) error {
		var ids map[string]int64
		var err error
		if all {
			ids, err = tx.ActiveTargets(ctx)
		} else {
			ids, err = tx.targetIDs("targets", normalizeTargets(names))
		}
		if err != nil {
			return err
		}
		done = sortedKeys(ids)
		if err := tx.targetsInScope(by, "targets", done); err != nil {
			return err
		}
		var jobs []string
		for _, name := range done {
			_, posted, err := tx.resync(ids[name], 0)
			if err != nil {
				return fmt.Errorf("resync %s: %w", name, err)
			}
			jobs = append(jobs, posted...)
		}
		if len(done) == 0 {
			return nil
		}
		return tx.audit(by, muster.AuditEntry{Action: muster.AuditTargetResync, Targets: done, Jobs: jobs, Changes: []string{resyncLine}})
	})
	return done, err
}

// DeleteAllTargets deletes every target, posting each a DEFECT (or, with
// force, forgetting them at once): the multiserver setup is dismantled.
func (c *Catalog) DeleteAllTargets(ctx context.Context, force bool, by muster.Actor) ([]string, error) {
	targets, err := c.FindTargets(ctx, TargetFilter{})
	if err != nil {
		return nil, err
	}
	var done []string
	for _, t := range targets {
		if slices.Contains(t.Flags, muster.FlagDeleted) && !force {
			continue // already waiting for its DEFECT
		}
		if err := c.DeleteTarget(ctx, t.Name, force, by); err != nil {
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
func (c *Catalog) SetPaused(ctx context.Context, names []string, group string, paused bool, by muster.Actor) ([]string, error) {
	if group != "" && !by.Scope.HasGroup(group) {
		return nil, outOfScope(by, fmt.Sprintf("group %q", group))
	}
	var done []string
	err := c.update(ctx, func(tx *tx) error {
		ids := map[string]int64{}
		if group != "" {
			gids, err := tx.groupIDs("group", []string{group})
			if err != nil {
				return err
			}
			if ids, err = tx.GroupMembers(ctx, gids[group]); err != nil {
				return err
			}
		}
		named, err := tx.targetIDs("targets", normalizeTargets(names))
		if err != nil {
			return err
		}
		if err := tx.targetsInScope(by, "targets", sortedKeys(named)); err != nil {
			return err
		}
		maps.Copy(ids, named)
		done = sortedKeys(ids)
		list := make([]int64, 0, len(ids))
		for _, n := range done {
			list = append(list, ids[n])
		}
		tx.c.Poke = append(tx.c.Poke, list...)
		if err := tx.SetPaused(ctx, list, paused); err != nil || len(done) == 0 {
			return err
		}
		e := muster.AuditEntry{Action: muster.AuditTargetPause, Targets: done}
		if paused {
			e.Changes = []string{"paused: no schedule fires, STARTs are recorded skipped"}
		} else {
			e.Action, e.Changes = muster.AuditTargetResume, []string{"resumed"}
		}
		if group != "" {
			e.Object = "group " + group
		}
		return tx.audit(by, e)
	})
	return done, err
}

// PruneDownloaded keeps at most keep finished instructions (downloaded,
// superseded or deleted) per target, deleting the oldest; pending and
// failed ones are never deleted (SQL Server's DownloadedMaxRows).
func (c *Catalog) PruneDownloaded(ctx context.Context, keep int) (int64, error) {
	var n int64
	err := c.update(ctx, func(tx *tx) error {
		var err error
		n, err = tx.PruneDownloaded(ctx, keep)
		return err
	})
	return n, err
}
