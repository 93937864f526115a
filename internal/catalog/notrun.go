package catalog

import (
	"encoding/json"
	"fmt"

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

// endStarts records, for each START q selects (pending or refused) whose
// run is not recorded, a finished run, skipped, since its target never ran
// it, saying why (the target's error, for a refused one): a run is never
// left "starting" for ever. Whoever follows the runs is woken.
func (tx *tx) endStarts(q StartQuery, why string) error {
	starts, err := tx.StartsWithoutRun(tx.ctx, q)
	if err != nil || len(starts) == 0 {
		return err
	}
	byTarget := map[int64][]RunRow{}
	var order []int64
	for _, s := range starts {
		var p agentproto.StartPayload
		if err := json.Unmarshal(s.Payload, &p); err != nil {
			return fmt.Errorf("START seq %d: stored payload: %w", s.Seq, err)
		}
		trigger := muster.TriggerOperator
		if p.RequestedBy != "" {
			trigger += ":" + p.RequestedBy
		}
		reason := why
		if s.Status == muster.InstructionFailed {
			reason = "the target refused it: " + s.Error
		}
		msg := truncate(fmt.Sprintf("the START (seq %d) was not run: %s", s.Seq, reason), MaxMessageLen)
		now := tx.now
		r := muster.Run{Job: s.Job, RunID: s.RunID, Status: muster.RunSkipped, Trigger: trigger, Message: msg,
			StartedAt: s.PostedAt, FinishedAt: &now, Steps: []muster.StepAttempt{}}
		if _, ok := byTarget[s.TargetID]; !ok {
			order = append(order, s.TargetID)
		}
		byTarget[s.TargetID] = append(byTarget[s.TargetID], RunRow{Run: r, Revision: NotRunRevision})
	}
	for _, id := range order {
		ups, err := tx.UpsertRuns(tx.ctx, id, byTarget[id], tx.now)
		if err != nil {
			return err
		}
		for k, u := range ups {
			if u.Changed {
				tx.c.Runs = append(tx.c.Runs, byTarget[id][k].RunID)
			}
		}
	}
	return nil
}

// endRunsOf ends, as a target leaves (how: "defected", or "was deleted"),
// what it will never report: its STARTs not collected are recorded not
// run, and its runs still recorded running abandoned. A target that has
// left uploads nothing more.
func (tx *tx) endRunsOf(targetID int64, how string) error {
	err := tx.endStarts(StartQuery{TargetIDs: []int64{targetID},
		Statuses: []muster.InstructionStatus{muster.InstructionPending}}, "the target "+how+" before it collected it")
	if err != nil {
		return err
	}
	ids, err := tx.AbandonRuns(tx.ctx, targetID, "the target "+how+" before it reported the run's end", tx.now)
	tx.c.Runs = append(tx.c.Runs, ids...)
	return err
}
