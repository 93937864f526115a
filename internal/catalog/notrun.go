package catalog

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
)

// NotRunRevision is the revision of the run the master records for a START
// that will never run: lower than any a target reports, so that a report
// of the run, should one come after all, replaces it.
const NotRunRevision = 0

// Why a START was not run, as its run's message says.
const (
	notRunDeleted    = "it was deleted from the download list before the target collected it"
	notRunSuperseded = "a DELETE of the job superseded it before the target collected it"
	notRunResync     = "a resync of the target superseded it before the target collected it"
)

// notRun collects the runs of STARTs that will never run, to record them
// skipped.
type notRun struct {
	tx       *tx
	byTarget map[int64][]RunRow
	order    []int64
}

// add notes the run of a START (p) of job to the target, asked for at
// posted, which will never run, and why.
func (n *notRun) add(targetID int64, job string, p agentproto.StartPayload, posted time.Time, message string) {
	trigger := muster.TriggerOperator
	if p.RequestedBy != "" {
		trigger += ":" + p.RequestedBy
	}
	now := n.tx.now
	r := muster.Run{Job: job, RunID: p.RunID, Status: muster.RunSkipped, Trigger: trigger, Message: truncate(message, MaxMessageLen),
		StartedAt: posted, FinishedAt: &now, Steps: []muster.StepAttempt{}}
	if n.byTarget == nil {
		n.byTarget = map[int64][]RunRow{}
	}
	if _, ok := n.byTarget[targetID]; !ok {
		n.order = append(n.order, targetID)
	}
	n.byTarget[targetID] = append(n.byTarget[targetID], RunRow{Run: r, Revision: NotRunRevision})
}

// record stores the runs noted, each its job's last outcome on its target
// (as a run skipped there is), and wakes whoever follows them.
func (n *notRun) record() error {
	for _, id := range n.order {
		rows := n.byTarget[id]
		ups, err := n.tx.UpsertRuns(n.tx.ctx, id, rows, n.tx.now)
		if err != nil {
			return err
		}
		for k, u := range ups {
			if !u.Changed {
				continue
			}
			n.tx.c.Runs = append(n.tx.c.Runs, rows[k].RunID)
			n.tx.noteEnd(rows[k], u)
			if err := n.tx.SetLastOutcome(n.tx.ctx, id, rows[k], u.Row); err != nil {
				return err
			}
		}
	}
	return nil
}

// endStarts records, for each START q selects (pending or refused) whose
// run is not recorded, a finished run, skipped, since its target never ran
// it, saying why (the target's error, for a refused one): a run is never
// left "starting" for ever. Whoever follows the runs is woken.
func (tx *tx) endStarts(q StartQuery, why string) error {
	starts, err := tx.StartsWithoutRun(tx.ctx, q)
	if err != nil || len(starts) == 0 {
		return err
	}
	n := notRun{tx: tx}
	for _, s := range starts {
		var p agentproto.StartPayload
		if err := json.Unmarshal(s.Payload, &p); err != nil {
			return fmt.Errorf("START seq %d: stored payload: %w", s.Seq, err)
		}
		p.RunID = s.RunID
		reason := why
		if s.Status == muster.InstructionFailed {
			reason = "the target refused it: " + s.Error
		}
		n.add(s.TargetID, s.Job, p, s.PostedAt, fmt.Sprintf("the START (seq %d) was not run: %s", s.Seq, reason))
	}
	return n.record()
}

// dropQueued drops the STARTs max_parallel_targets holds back for a job
// (any, when jobID is 0) on the targets (any, when targetIDs is nil): their
// runs, whose ids the starts returned, are recorded skipped, saying why,
// since they will never be posted. It returns how many it dropped.
func (tx *tx) dropQueued(jobID int64, targetIDs []int64, why string) (int, error) {
	rows, err := tx.DeleteQueuedStarts(tx.ctx, jobID, targetIDs)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	return len(rows), tx.recordDropped(rows, why)
}

// recordDropped records skipped, saying why, the runs of STARTs held back
// by max_parallel_targets and deleted from the queue unposted.
func (tx *tx) recordDropped(rows []QueuedStartRow, why string) error {
	n := notRun{tx: tx}
	for _, e := range rows {
		var q queuedStart
		if err := json.Unmarshal(e.Payload, &q); err != nil {
			return fmt.Errorf("queued start %d: %w", e.ID, err)
		}
		n.add(e.TargetID, e.Job, q.Payload, e.CreatedAt, "the START was held back by max_parallel_targets, and dropped before it was posted: "+why)
	}
	return n.record()
}

// endRunsOf ends, as a target leaves (how: "defected", or "was deleted";
// left, its row as it leaves, says so in full), what it will never
// report: its STARTs not collected, or held back, are recorded not run,
// and its runs still recorded running abandoned. A target that has left
// uploads nothing more.
func (tx *tx) endRunsOf(targetID int64, how string, left TargetRow) error {
	if err := tx.endStartsOf(targetID, how); err != nil {
		return err
	}
	return tx.abandonRunsOf(targetID, left)
}

// endStartsOf records not run, as a target leaves (see endRunsOf), its
// STARTs not collected or held back.
func (tx *tx) endStartsOf(targetID int64, how string) error {
	err := tx.endStarts(StartQuery{TargetIDs: []int64{targetID},
		Statuses: []muster.InstructionStatus{muster.InstructionPending}}, "the target "+how+" before it collected it")
	if err != nil {
		return err
	}
	_, err = tx.dropQueued(0, []int64{targetID}, "the target "+how)
	return err
}

// abandonRunsOf records abandoned, as a target leaves (see endRunsOf),
// its runs still recorded running. Each run's end frees what waited on it
// (a max_parallel_targets slot releases a START held back), so the
// STARTs held back for it go first (endStartsOf).
func (tx *tx) abandonRunsOf(targetID int64, left TargetRow) error {
	return tx.abandonRuns(targetID, func(string) (string, error) { return departure(left), nil })
}
