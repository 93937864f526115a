package catalog

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
)

// posting is one instruction to post.
type posting struct {
	target  int64
	op      muster.Operation
	job     string
	payload any // sent as JSON; nil for none
}

// moot lists the pending operations an instruction makes moot: an INSERT
// or DELETE of a job supersedes them, and the job's failed instructions, so
// the target is no longer blocked by those.
func moot(op muster.Operation) []muster.Operation {
	switch op {
	case muster.OpInsert:
		return []muster.Operation{muster.OpInsert, muster.OpUpdate}
	case muster.OpDelete:
		return []muster.Operation{muster.OpInsert, muster.OpUpdate, muster.OpStart, muster.OpStop}
	}
	return nil
}

// post appends one instruction to a target's download list and returns its
// sequence number.
func (tx *tx) post(target int64, op muster.Operation, job string, payload any) (int64, error) {
	seqs, err := tx.postAll([]posting{{target: target, op: op, job: job, payload: payload}})
	if err != nil {
		return 0, err
	}
	return seqs[0], nil
}

// postAll appends instructions to download lists, in the order given on
// each target, and wakes those targets' polls after commit. It returns
// their sequence numbers, in the order given. Sequence numbers come from
// each target's counter, incremented (and its row locked) here.
func (tx *tx) postAll(ps []posting) ([]int64, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	// Supersede first: the new instructions themselves are never moot.
	type supersession struct {
		op  muster.Operation
		job string
	}
	superseded := map[supersession][]int64{}
	var order []supersession
	counts := map[int64]int{}
	for _, p := range ps {
		counts[p.target]++
		if m := moot(p.op); m != nil {
			k := supersession{p.op, p.job}
			if _, ok := superseded[k]; !ok {
				order = append(order, k)
			}
			superseded[k] = append(superseded[k], p.target)
		}
	}
	for _, k := range order {
		if k.op == muster.OpDelete && k.job != "" {
			// The job's STARTs the targets have not collected will never
			// run there.
			err := tx.endStarts(StartQuery{TargetIDs: superseded[k], Job: k.job,
				Statuses: []muster.InstructionStatus{muster.InstructionPending}}, notRunSuperseded)
			if err != nil {
				return nil, err
			}
		}
		if err := tx.Supersede(tx.ctx, superseded[k], k.job, moot(k.op)); err != nil {
			return nil, err
		}
		tx.unpost(superseded[k]...)
	}
	last, err := tx.nextSeqs(counts)
	if err != nil {
		return nil, err
	}
	next := make(map[int64]int64, len(last))
	for id, seq := range last {
		next[id] = seq - int64(counts[id]) + 1
	}
	seqs := make([]int64, len(ps))
	rows := make([]InstructionRow, len(ps))
	sent := map[string][]int64{}
	for i, p := range ps {
		seqs[i] = next[p.target]
		next[p.target]++
		row := InstructionRow{TargetID: p.target, Seq: seqs[i], Operation: p.op, Job: p.job, PostedAt: tx.now}
		if p.payload != nil {
			if row.Payload, err = json.Marshal(p.payload); err != nil {
				return nil, err
			}
		}
		if s, ok := p.payload.(agentproto.StartPayload); ok {
			expires := s.ExpiresAt
			row.RunID, row.ExpiresAt = s.RunID, &expires
		}
		if p.op == muster.OpInsert {
			sent[p.job] = append(sent[p.job], p.target)
		}
		rows[i] = row
		tx.wake[p.target] = struct{}{}
	}
	if err := tx.InsertInstructions(tx.ctx, rows); err != nil {
		return nil, err
	}
	if tx.c.Posted == nil {
		tx.c.Posted = map[int64][]InstructionRow{}
	}
	for _, row := range rows {
		row.Status = muster.InstructionPending
		tx.c.Posted[row.TargetID] = append(tx.c.Posted[row.TargetID], row)
	}
	for job, targets := range sent {
		if err := tx.MarkSent(tx.ctx, targets, job); err != nil {
			return nil, err
		}
	}
	return seqs, nil
}

// nextSeqs increments each target's sequence counter by the count given
// (NextSeqs), a number taken already with a read (tx.seqs) counting as
// the first, and returns each counter's new value.
func (tx *tx) nextSeqs(counts map[int64]int) (map[int64]int64, error) {
	last := make(map[int64]int64, len(counts))
	rest := make(map[int64]int, len(counts))
	for id, n := range counts {
		if seq, ok := tx.seqs[id]; ok {
			delete(tx.seqs, id)
			last[id] = seq
			n--
		}
		if n > 0 {
			rest[id] = n
		}
	}
	if len(rest) == 0 {
		return last, nil
	}
	more, err := tx.NextSeqs(tx.ctx, rest)
	if err != nil {
		return nil, err
	}
	for id, seq := range more {
		last[id] = seq // the target's row stayed locked since its number was taken: they follow
	}
	return last, nil
}

// seqsUsed checks that the sequence numbers taken with a read were all
// posted: one left would leave a gap in its target's instructions.
func (tx *tx) seqsUsed() error {
	if len(tx.seqs) > 0 {
		return fmt.Errorf("sequence numbers taken and not posted (by target): %v", tx.seqs)
	}
	return nil
}

// unpost leaves the targets out of what the commit says was posted
// (Commit.Posted): the transaction changed instructions it may have posted
// to them, and their polls read what is pending.
func (tx *tx) unpost(targets ...int64) {
	if tx.unposted == nil {
		tx.unposted = map[int64]struct{}{}
	}
	for _, id := range targets {
		delete(tx.c.Posted, id)
		tx.unposted[id] = struct{}{}
	}
}

// CloseInstructions, SetInstructionStatus and ClearTarget are the store's,
// having left the target out of what the commit says was posted.
func (tx *tx) CloseInstructions(ctx context.Context, targetID int64, from []muster.InstructionStatus, status muster.InstructionStatus) error {
	tx.unpost(targetID)
	return tx.Tx.CloseInstructions(ctx, targetID, from, status)
}

func (tx *tx) SetInstructionStatus(ctx context.Context, targetID, seq int64, from []muster.InstructionStatus, status muster.InstructionStatus) (bool, error) {
	tx.unpost(targetID)
	return tx.Tx.SetInstructionStatus(ctx, targetID, seq, from, status)
}

func (tx *tx) ClearTarget(ctx context.Context, targetID int64) error {
	tx.unpost(targetID)
	return tx.Tx.ClearTarget(ctx, targetID)
}

// MaxPollBatch bounds how many instructions one poll reply carries.
const MaxPollBatch = 500

// FitPoll returns the first of rows, in sequence order, that one poll
// reply carries: at most MaxPollBatch, and none past the one that would
// take their payloads over agentproto.MaxPollBytes, but always the
// first, so that a job larger than the bound alone still goes. The rest
// are the next poll's, after the cursor the target acknowledges.
func (c *Catalog) FitPoll(rows []InstructionRow) []InstructionRow {
	rows = rows[:min(len(rows), MaxPollBatch)]
	size := 0
	for i, r := range rows {
		size += len(r.Payload)
		if i > 0 && size > c.maxPollBytes {
			return rows[:i]
		}
	}
	return rows
}

// PendingInstructions returns the target's pending instructions after seq,
// in sequence order, as many as one poll reply carries (FitPoll).
func (c *Catalog) PendingInstructions(ctx context.Context, targetID, after int64) ([]InstructionRow, error) {
	ins, err := c.store.PendingInstructions(ctx, targetID, after, MaxPollBatch)
	return c.FitPoll(ins), err
}

// PollPending returns what a poll reads of the catalog: the last
// sequence number posted to the target, whether it is paused, and its
// pending instructions after seq (as many as one reply carries, FitPoll,
// in sequence order), in one read of one snapshot. In a fan-out every
// target polls again as soon as it is answered: one statement a poll instead of two
// halves what those polls ask of the catalog's connections while the
// later replies are still being sent, and polls that come while one is
// read are read together, in one statement (pollread.go). The caller
// subscribes to wake-ups before it calls PollPending: the read begins
// after the call.
func (c *Catalog) PollPending(ctx context.Context, targetID, after int64) (lastSeq int64, paused bool, ins []InstructionRow, err error) {
	p, err := c.pollPending(ctx, targetID, after)
	if err != nil {
		return 0, false, nil, err
	}
	return p.LastSeq, p.Paused, c.FitPoll(p.Instructions), nil
}

// PendingInstructionsOf returns the pending instructions of several
// targets, each after its own cursor (after maps targets to it), at most
// one reply's worth a target (FitPoll), in one read: the held polls one post woke are
// answered together. A target with none has no entry. One target, as a
// single START wakes, is read with its own statement, which costs less
// than the join.
func (c *Catalog) PendingInstructionsOf(ctx context.Context, after map[int64]int64) (map[int64][]InstructionRow, error) {
	switch len(after) {
	case 0:
		return nil, nil
	case 1:
		for id, seq := range after {
			ins, err := c.PendingInstructions(ctx, id, seq)
			if err != nil || len(ins) == 0 {
				return nil, err
			}
			return map[int64][]InstructionRow{id: ins}, nil
		}
	}
	pending, err := c.store.PendingInstructionsOf(ctx, after, MaxPollBatch)
	for id, ins := range pending {
		pending[id] = c.FitPoll(ins)
	}
	return pending, err
}

// MaxErrorLen bounds an instruction error as stored.
const MaxErrorLen = 1024

// Ack records the outcome of instructions a target applied. An ack for an
// instruction that is no longer pending (superseded, deleted, already
// acknowledged) changes nothing, so acks may be repeated.
func (c *Catalog) Ack(ctx context.Context, targetID int64, acks []AckRow) ([]Acked, error) {
	if len(acks) == 0 {
		return nil, nil
	}
	rows := make([]AckRow, len(acks))
	for i, a := range acks {
		rows[i] = AckRow{Seq: a.Seq, Status: muster.InstructionDownloaded}
		if a.Status == muster.InstructionFailed {
			msg := a.Error
			if msg == "" {
				msg = "the target reported an error without a message"
			}
			rows[i].Status, rows[i].Error = muster.InstructionFailed, truncate(storable(msg), MaxErrorLen)
		}
	}
	var acked []Acked
	// Acknowledgements share their transaction with those (and the run
	// uploads) that come meanwhile: see updateShared.
	err := c.updateShared(ctx, 0, func(tx *tx) error {
		var err error
		if acked, err = tx.AckInstructions(ctx, targetID, rows, tx.now); err != nil {
			return err
		}
		// A START its target refused will never run: its run is recorded
		// so, rather than left starting.
		if slices.ContainsFunc(acked, func(a Acked) bool { return a.Operation == muster.OpStart && a.Status == muster.InstructionFailed }) {
			var failed []int64
			for _, r := range rows {
				if r.Status == muster.InstructionFailed {
					failed = append(failed, r.Seq)
				}
			}
			if err := tx.endStarts(StartQuery{TargetIDs: []int64{targetID}, Seqs: failed,
				Statuses: []muster.InstructionStatus{muster.InstructionFailed}}, ""); err != nil {
				return err
			}
		}
		// A deleted target that has collected its DEFECT is gone: the
		// tombstone is lifted and its name is free. Only a deleted target
		// is posted a DEFECT, with its deletion, so only the ack that
		// brings one can lift it: the others skip the statement.
		if !slices.ContainsFunc(acked, func(a Acked) bool { return a.Operation == muster.OpDefect }) {
			tx.keepCredentials()
			return nil
		}
		lifted, err := tx.LiftTombstone(ctx, targetID, tx.now)
		if err != nil || !lifted {
			tx.keepCredentials()
			return err
		}
		if err := tx.CloseInstructions(ctx, targetID, []muster.InstructionStatus{muster.InstructionPending}, muster.InstructionDeleted); err != nil {
			return err
		}
		// Runs it did not report before it went (a tombstone may not)
		// never will be.
		return tx.abandonRuns(targetID, func(name string) (string, error) {
			gone, err := tx.FindGoneTargets(ctx, []string{name})
			return departure(gone[name]), err
		})
	})
	if err != nil {
		return nil, err
	}
	return acked, nil
}

// storable returns text a target reported with each NUL byte as U+FFFD:
// PostgreSQL's text cannot hold a NUL, and a report refused for one would
// be sent again and again. Both engines store the same.
func storable(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// truncate cuts s to at most n bytes, on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8Start(s[n]) {
		n--
	}
	return s[:n]
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// InstructionFilter selects download-list entries.
type InstructionFilter struct {
	Target    string
	Job       string
	Operation muster.Operation
	Pending   bool // only pending
	Errors    bool // only failed
	Seq       int64
	Limit     int // the newest this many; 1000 when zero
	// Scope keeps only the instructions of its jobs, and those of no job
	// on targets in its groups.
	Scope muster.Scope
	// Cursor reads on after the page that named it as its next. Empty for
	// the newest.
	Cursor string
	// Before, when not nil, keeps the instructions posted before it, newest
	// first. The catalog sets it from Cursor for its store.
	Before *InstructionKey
}

// InstructionKey is where an instruction sorts among the download lists,
// newest first: when it was posted, then its sequence number, then its
// target's row (a START fanned out posts the same number to many targets
// at one instant).
type InstructionKey struct {
	PostedAt time.Time
	Seq      int64
	TargetID int64
}

// StoredInstruction is a download-list entry with its target's row, which
// orders it among entries posted at one instant.
type StoredInstruction struct {
	muster.Instruction
	TargetID int64
}

// downloadList names the download lists in their cursors.
const downloadList = "download lists"

// FindInstructions lists download-list entries of active targets, by target
// then sequence number.
func (c *Catalog) FindInstructions(ctx context.Context, f InstructionFilter) ([]muster.Instruction, error) {
	list, _, err := c.FindInstructionsPage(ctx, f)
	return list, err
}

// FindInstructionsPage reads a page of the download lists of active
// targets: the newest entries (by when they were posted, their sequence
// number, their target), listed by target then sequence number, and the
// cursor of the next page: empty when no entry the filter selects is
// older than the page's oldest.
func (c *Catalog) FindInstructionsPage(ctx context.Context, f InstructionFilter) ([]muster.Instruction, string, error) {
	key, err := decodeCursor(downloadList, f.Cursor, 3, 1)
	if err != nil {
		return nil, "", err
	}
	if key != nil {
		f.Before = &InstructionKey{PostedAt: time.UnixMilli(key[0]).UTC(), Seq: key[1], TargetID: key[2]}
	}
	limit := cmp.Or(f.Limit, 1000)
	f.Limit = limit + 1 // one more tells whether there is a next page
	rows, err := c.store.FindInstructions(ctx, f)
	if err != nil {
		return nil, "", err
	}
	rows, next := pageOf(rows, limit, downloadList, func(in StoredInstruction) []int64 {
		return []int64{in.PostedAt.UnixMilli(), in.Seq, in.TargetID}
	})
	out := make([]muster.Instruction, len(rows))
	for i, r := range rows {
		out[i] = r.Instruction
	}
	slices.SortFunc(out, func(a, b muster.Instruction) int {
		return cmp.Or(strings.Compare(a.Target, b.Target), cmp.Compare(a.Seq, b.Seq))
	})
	return out, next, nil
}

// instructionRef finds the one instruction seq names, among those in the
// given statuses, optionally on one target, and in by's scope. Sequence
// numbers are per target, so a bare seq must be unambiguous.
func (tx *tx) instructionRef(by muster.Actor, target string, seq int64, statuses ...muster.InstructionStatus) (InstructionRow, error) {
	all, err := tx.InstructionsBySeq(tx.ctx, target, seq)
	if err != nil {
		return InstructionRow{}, err
	}
	if all, err = tx.instructionsInScope(by, all); err != nil {
		return InstructionRow{}, err
	}
	var usable []InstructionRow
	for _, r := range all {
		if slices.Contains(statuses, r.Status) {
			usable = append(usable, r)
		}
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
			names = append(names, r.Target)
		}
		return InstructionRow{}, muster.Errorf(muster.EINVALID, "instruction %d: sequence numbers are per target, and %s each have a %s one; name the target with --target", seq, strings.Join(names, ", "), strings.Join(want, " or "))
	case len(all) == 1:
		return InstructionRow{}, muster.Errorf(muster.EPRECONDITION, "instruction %d on %s is %s; only a %s instruction can be changed", seq, all[0].Target, all[0].Status, strings.Join(want, " or "))
	case len(all) > 1:
		return InstructionRow{}, muster.Errorf(muster.EPRECONDITION, "no %s instruction %d; name the target with --target", strings.Join(want, " or "), seq)
	}
	if target != "" {
		return InstructionRow{}, muster.Errorf(muster.ENOTFOUND, "no instruction %d on target %q", seq, target)
	}
	return InstructionRow{}, muster.Errorf(muster.ENOTFOUND, "no instruction %d", seq)
}

// instructionsInScope keeps the instructions by's scope covers: those of
// its jobs, and those of no job on targets in its groups. When it covers
// none of several, the refusal says so.
func (tx *tx) instructionsInScope(by muster.Actor, rows []InstructionRow) ([]InstructionRow, error) {
	if !by.Scope.Limited() || len(rows) == 0 {
		return rows, nil
	}
	members, err := scopeTargets(tx.ctx, tx, by.Scope)
	if err != nil {
		return nil, err
	}
	var out []InstructionRow
	for _, r := range rows {
		if (r.Job != "" && by.Scope.HasJob(r.Job)) || (r.Job == "" && members[r.Target]) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, outOfScope(by, fmt.Sprintf("instruction %d", rows[0].Seq))
	}
	return out, nil
}

// setStatus moves an instruction out of one of the statuses from; when
// another master moved it first, the transaction is run again and finds it
// as it is now.
func (tx *tx) setStatus(r InstructionRow, status muster.InstructionStatus, from ...muster.InstructionStatus) error {
	ok, err := tx.SetInstructionStatus(tx.ctx, r.TargetID, r.Seq, from, status)
	if err == nil && !ok {
		err = fmt.Errorf("instruction %d on %s changed meanwhile: %w", r.Seq, r.Target, ErrRetry)
	}
	return err
}

// RetryInstruction reposts a failed instruction as a new one and marks the
// failed one superseded, which clears the block it caused. A failed INSERT
// is reposted with the job's current definition, since that is what the
// operator wants in force; a failed START is a new start, with a new run id
// (which the instruction returned says) and a fresh expiry, held back like
// any start while the job runs on as many targets as its
// max_parallel_targets allows (the refused run stays in the history,
// skipped).
func (c *Catalog) RetryInstruction(ctx context.Context, target string, seq int64, by muster.Actor) (muster.Instruction, error) {
	var posted muster.Instruction
	err := c.update(ctx, func(tx *tx) error {
		r, err := tx.instructionRef(by, target, seq, muster.InstructionFailed)
		if err != nil {
			return err
		}
		if err := tx.setStatus(r, muster.InstructionSuperseded, muster.InstructionFailed); err != nil {
			return err
		}
		var body any
		if len(r.Payload) > 0 {
			body = json.RawMessage(r.Payload)
		}
		audit := func(posted string) error {
			return tx.audit(by, muster.AuditEntry{Action: muster.AuditInstructionRetry, Object: fmt.Sprintf("instruction %d", seq),
				Jobs: nonEmpty(r.Job), Targets: []string{r.Target},
				Changes: []string{fmt.Sprintf("failed %s %s (seq %d) superseded, %s", r.Operation, r.Target, seq, posted)}})
		}
		switch r.Operation {
		case muster.OpStart:
			run, err := tx.retryStart(r)
			if err != nil {
				return err
			}
			posted = muster.Instruction{Seq: run.Seq, Target: r.Target, Operation: r.Operation, Job: r.Job, PostedAt: tx.now.UTC(),
				Status: muster.InstructionPending, RunID: run.RunID, Queued: run.Queued}
			if run.Queued {
				return audit(fmt.Sprintf("run %s queued by max_parallel_targets", run.RunID))
			}
			return audit(fmt.Sprintf("reposted as seq %d, run %s", run.Seq, run.RunID))
		case muster.OpInsert:
			j, targeted, err := tx.jobForTarget(r.Job, r.TargetID)
			if err != nil {
				return err
			}
			if !targeted {
				return muster.Errorf(muster.EPRECONDITION, "instruction %d: job %q no longer runs on %s; delete the instruction instead", seq, r.Job, r.Target)
			}
			body = insertPayload(j.job, r.Target, j.via[r.Target])
		}
		newSeq, err := tx.post(r.TargetID, r.Operation, r.Job, body)
		if err != nil {
			return err
		}
		posted = muster.Instruction{Seq: newSeq, Target: r.Target, Operation: r.Operation, Job: r.Job, PostedAt: tx.now.UTC(), Status: muster.InstructionPending}
		return audit(fmt.Sprintf("reposted as seq %d", newSeq))
	})
	return posted, err
}

// retryStart starts again, as a new run, the failed START r: posted now,
// or held back by the job's max_parallel_targets as any start is.
func (tx *tx) retryStart(r InstructionRow) (muster.StartedRun, error) {
	var p agentproto.StartPayload
	if err := json.Unmarshal(r.Payload, &p); err != nil {
		return muster.StartedRun{}, fmt.Errorf("instruction %d: stored START: %w", r.Seq, err)
	}
	// The job's row is taken first, as a start takes it, so that two
	// starts count the runs under way in turn.
	job, err := tx.lockJobToPost(r.Job)
	if err != nil && muster.ErrorCode(err) != muster.ENOTFOUND {
		return muster.StartedRun{}, err
	}
	if _, ok := job.targets[r.Target]; err != nil || !ok {
		return muster.StartedRun{}, muster.Errorf(muster.EPRECONDITION, "instruction %d: job %q no longer runs on %s; delete the instruction instead", r.Seq, r.Job, r.Target)
	}
	p.RunID, p.ExpiresAt = muster.NewRunID(), time.Time{}
	runs, err := tx.startRuns(job, []string{r.Target}, []string{p.RunID}, p, 0)
	if err != nil {
		return muster.StartedRun{}, err
	}
	return runs[0], tx.seqsUsed()
}

// DeleteInstruction marks a pending or failed instruction deleted: it is not
// delivered, and no longer blocks its target.
func (c *Catalog) DeleteInstruction(ctx context.Context, target string, seq int64, by muster.Actor) error {
	return c.update(ctx, func(tx *tx) error {
		open := []muster.InstructionStatus{muster.InstructionPending, muster.InstructionFailed}
		r, err := tx.instructionRef(by, target, seq, open...)
		if err != nil {
			return err
		}
		if r.Operation == muster.OpStart && r.Status == muster.InstructionPending {
			err := tx.endStarts(StartQuery{TargetIDs: []int64{r.TargetID}, Seqs: []int64{r.Seq},
				Statuses: []muster.InstructionStatus{muster.InstructionPending}}, notRunDeleted)
			if err != nil {
				return err
			}
		}
		if err := tx.setStatus(r, muster.InstructionDeleted, open...); err != nil {
			return err
		}
		return tx.audit(by, muster.AuditEntry{Action: muster.AuditInstructionDelete, Object: fmt.Sprintf("instruction %d", seq),
			Jobs: nonEmpty(r.Job), Targets: []string{r.Target},
			Changes: []string{fmt.Sprintf("%s %s %s (seq %d) deleted", r.Status, r.Operation, r.Target, seq)}})
	})
}

// nonEmpty returns s as a list of one, or none when it is "".
func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// Resync drops a target's open instructions and posts DELETE of every job
// followed by an INSERT of each job it should hold (SQL Server's
// sp_resync_targetserver), as the target asks when it finds the catalog
// restored. The sequence counter moves past after, the target's own
// cursor, so a catalog restored from a backup does not hand out numbers
// the target has already consumed. It returns the sequence number the
// re-posted instructions follow. The resync is recorded in the audit log
// under by, the target.
func (c *Catalog) Resync(ctx context.Context, targetID, after int64, by muster.Actor) (int64, error) {
	var base int64
	err := c.update(ctx, func(tx *tx) error {
		var jobs []string
		var err error
		if base, jobs, err = tx.resync(targetID, after); err != nil {
			return err
		}
		return tx.audit(by, muster.AuditEntry{Action: muster.AuditTargetResync, Targets: []string{by.Name}, Jobs: jobs,
			Changes: []string{fmt.Sprintf("asked by the target, its cursor at seq %d: %s", after, resyncLine)}})
	})
	return base, err
}

// resyncLine says what a resync does, for the audit log.
const resyncLine = "open instructions superseded; DELETE of every job, then an INSERT of each job it runs, posted"

// resync does a target's resync and returns the sequence number the
// instructions it posted follow, and the jobs it posted an INSERT of.
func (tx *tx) resync(targetID, after int64) (int64, []string, error) {
	// The target collected the STARTs up to its cursor, after, whatever a
	// catalog restored from a backup says: only those after it are not run.
	err := tx.endStarts(StartQuery{TargetIDs: []int64{targetID}, After: after,
		Statuses: []muster.InstructionStatus{muster.InstructionPending}}, notRunResync)
	if err != nil {
		return 0, nil, err
	}
	open := []muster.InstructionStatus{muster.InstructionPending, muster.InstructionFailed}
	if err := tx.CloseInstructions(tx.ctx, targetID, open, muster.InstructionSuperseded); err != nil {
		return 0, nil, err
	}
	base, err := tx.RaiseSeq(tx.ctx, targetID, after)
	if err != nil {
		return 0, nil, err
	}
	jobs, err := tx.loadJobs(JobQuery{TargetID: targetID})
	if err != nil {
		return 0, nil, err
	}
	ps := []posting{{target: targetID, op: muster.OpDelete}}
	var names []string
	for _, name := range sortedKeys(jobs) {
		sj := jobs[name]
		for tname, tid := range sj.targets {
			if tid == targetID {
				ps = append(ps, posting{target: targetID, op: muster.OpInsert, job: name, payload: insertPayload(sj.job, tname, sj.via[tname])})
				names = append(names, name)
			}
		}
	}
	_, err = tx.postAll(ps)
	return base, names, err
}

// expiry converts an optional duration to an absolute time.
func expiry(now time.Time, d time.Duration) time.Time {
	if d <= 0 {
		d = muster.DefaultStartExpiry
	}
	return now.Add(d)
}
