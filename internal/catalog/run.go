package catalog

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/musterhq/muster"
)

// Limits on an uploaded run.
const (
	MaxRunsPerUpload = 1000
	MaxRunIDLen      = 64
	MaxAttempts      = muster.MaxRunAttempts // a run never makes more attempts
	MaxOutputBytes   = 4 << 20               // per attempt, as uploaded
	MaxMessageLen    = 4096
	// MaxOutputNote is what a target may add to an attempt's output
	// beyond MaxOutputBytes: the line saying how much it dropped.
	MaxOutputNote = 1 << 10
	// MaxRunOutputBytes bounds the output of all of a run's attempts in
	// one upload.
	MaxRunOutputBytes = 64 << 20
	// FutureTolerance is how far past the master's clock, beyond the
	// target's clock skew (TargetIdentity.ClockSkewMS: its last poll's, or
	// its upload's when larger), a time a target reports may lie.
	FutureTolerance = 5 * time.Minute
)

// RunUpload is a run a target uploads, at a revision. Output holds the
// output the master does not have yet, as chunks appended to the attempts'
// outputs; the attempts' own Output fields, when set (by a target of
// protocol 1), hold whole outputs that replace what is held.
type RunUpload struct {
	Revision int64
	Run      muster.Run
	Output   []OutputChunk
}

// OutputChunk is a piece of the output of one attempt of a run: Data
// follows the first Offset bytes of the output of Run.Steps[Attempt].
type OutputChunk struct {
	Attempt int
	Offset  int64
	Data    string
}

// RunResult is the answer for one reported run: stored (or already held),
// or refused with why.
type RunResult struct {
	RunID string
	OK    bool
	Error string
	// Ended is set when this upload recorded the run finished for the
	// first time: Job, Status and Duration are then its outcome. A run is
	// counted ended once, whatever revisions repeat its outcome.
	Ended    bool
	Job      string
	Status   muster.RunStatus
	Duration time.Duration
	// Dispatch, when set, is how long the run's first step took to start
	// after its START was posted (the master's clock, the target's skew
	// taken off), measured by the upload that first brings the step.
	Dispatch *time.Duration
}

// UpsertRuns records runs uploaded by a target, each at its revision: a
// report not newer than the revision held changes nothing, so late or
// repeated uploads never overwrite newer data. The target's identity comes
// from its certificate, never from the report. The answer is per run: one
// bad run is refused on its own and does not hold up the others.
func (c *Catalog) UpsertRuns(ctx context.Context, target TargetIdentity, reports []RunUpload) ([]RunResult, error) {
	results := make([]RunResult, len(reports))
	// Uploads share their transaction with those (and the
	// acknowledgements) that come meanwhile: see updateShared.
	err := c.updateShared(ctx, uploadSize(reports), func(tx *tx) error {
		tx.keepCredentials()
		// A target's clock may run ahead of the master's by its measured
		// skew; a time further ahead is a lie, which would pin the job's
		// last outcome.
		latest := tx.now.Add(FutureTolerance + max(time.Duration(target.ClockSkewMS)*time.Millisecond, 0))
		sent := map[string]bool{} // jobs this target was ever sent
		var rows []RunRow
		var outputs [][]OutputChunk
		for i, rep := range reports {
			r := rep.Run
			results[i] = RunResult{RunID: r.RunID}
			if msg := checkRun(rep, latest); msg != "" {
				results[i].Error = msg
				continue
			}
			ok, known := sent[r.Job]
			if !known {
				var err error
				if ok, err = tx.WasSent(ctx, target.ID, r.Job); err != nil {
					return err
				}
				sent[r.Job] = ok
			}
			if !ok {
				results[i].Error = fmt.Sprintf("run %s: job %q was never sent to target %s", r.RunID, r.Job, target.Name)
				continue
			}
			results[i].OK = true
			rows = append(rows, RunRow{Run: storableRun(r), Revision: rep.Revision})
			outputs = append(outputs, rep.Output)
		}
		upserts, err := tx.UpsertRuns(ctx, target.ID, rows, tx.now)
		if err != nil {
			return err
		}
		if err := tx.noteOutcomes(target, rows, upserts, results); err != nil {
			return err
		}
		// The last outcome of each job is its finished run the master
		// recorded last; only that one of a batch is written.
		latestOf := map[string]lastRun{}
		// Jobs with a run newly recorded succeeded: their last success on
		// the target, which no_success watches, moves to when the master
		// learns of it (windows are judged by the master's clock).
		var succeeded []string
		out := outputAppender{tx: tx, targetID: target.ID, ends: map[outputPlace]int64{}}
		for k, u := range upserts {
			// Output counts whatever the revision it comes with: a chunk
			// held is not stored again.
			if err := out.add(rows[k].RunID, u, outputs[k]); err != nil {
				return err
			}
			if !u.Changed {
				continue // an older or repeated revision
			}
			r := rows[k]
			tx.c.Runs = append(tx.c.Runs, r.RunID)
			if err := tx.runEvents(target, r.Run); err != nil {
				return err
			}
			if r.Status == muster.RunSucceeded && !slices.Contains(succeeded, r.Job) {
				succeeded = append(succeeded, r.Job)
			}
			if prev, ok := latestOf[r.Job]; r.Status.Finished() && (!ok || u.Row >= prev.row) {
				latestOf[r.Job] = lastRun{r, u.Row}
			}
		}
		if err := tx.InsertOutputs(ctx, out.rows); err != nil {
			return err
		}
		for _, job := range succeeded {
			if err := tx.SetLastSuccess(ctx, target.ID, job, tx.now); err != nil {
				return err
			}
		}
		return tx.settle(target.ID, latestOf)
	})
	return results, err
}

// lastRun is the finished run of a job the master recorded last, with its
// row.
type lastRun struct {
	run RunRow
	row int64
}

// settle records, for each job, its finished run recorded last as the
// job's last outcome on the target, and lets what waited on a run end go
// on: a max_parallel_targets slot frees, a rollout's wave may end.
func (tx *tx) settle(targetID int64, latestOf map[string]lastRun) error {
	if len(latestOf) == 0 {
		return nil
	}
	queued, rolling, err := tx.JobsAwaitingRuns(tx.ctx)
	if err != nil {
		return err
	}
	for _, job := range sortedKeys(latestOf) {
		l := latestOf[job]
		if err := tx.SetLastOutcome(tx.ctx, targetID, l.run, l.row); err != nil {
			return err
		}
		if slices.Contains(queued, job) {
			if err := tx.releaseQueued(job); err != nil {
				return err
			}
		}
		if slices.Contains(rolling, job) {
			if err := tx.advanceRollouts(job); err != nil {
				return err
			}
		}
	}
	return nil
}

// abandonRuns records abandoned the runs a target that left the fleet
// last reported running, which it can report no more: left running, they
// would stay so for ever, and hold up what waits on them (a
// max_parallel_targets slot, a rollout's wave). how says, for the
// target's name, how it left.
func (tx *tx) abandonRuns(targetID int64, how func(name string) (string, error)) error {
	rows, err := tx.RunningRuns(tx.ctx, targetID)
	if err != nil || len(rows) == 0 {
		return err
	}
	left, err := how(rows[0].Target)
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("the target left the fleet before it reported the run's end (%s); what became of the run is unknown", left)
	for i := range rows {
		r := &rows[i]
		end := tx.now
		if end.Before(r.StartedAt) {
			end = r.StartedAt
		}
		r.Status, r.Message, r.FinishedAt, r.DurationMS = muster.RunAbandoned, msg, &end, end.Sub(r.StartedAt).Milliseconds()
		for j := range r.Steps {
			if a := &r.Steps[j]; a.Status == muster.AttemptRunning {
				// It ran, as far as the master knows, until the target left.
				a.Status, a.Message = muster.AttemptCanceled, "the target left the fleet"
				a.DurationMS = max(end.Sub(a.StartedAt), 0).Milliseconds()
			}
		}
		r.Revision++
	}
	upserts, err := tx.UpsertRuns(tx.ctx, targetID, rows, tx.now)
	if err != nil {
		return err
	}
	target := TargetIdentity{ID: targetID, Name: rows[0].Target}
	latestOf := map[string]lastRun{}
	for k, u := range upserts {
		if !u.Changed {
			continue
		}
		r := rows[k]
		tx.c.Runs = append(tx.c.Runs, r.RunID)
		tx.noteEnd(r, u)
		if err := tx.runEvents(target, r.Run); err != nil {
			return err
		}
		if prev, ok := latestOf[r.Job]; !ok || u.Row >= prev.row {
			latestOf[r.Job] = lastRun{r, u.Row}
		}
	}
	return tx.settle(targetID, latestOf)
}

// uploadSize is about how many bytes an upload writes: its output, its
// messages and a little for each run and attempt.
func uploadSize(reports []RunUpload) int {
	n := 0
	for _, rep := range reports {
		n += 256 + len(rep.Run.Message)
		for _, s := range rep.Run.Steps {
			n += 128 + len(s.Output) + len(s.Message)
		}
		for _, o := range rep.Output {
			n += len(o.Data)
		}
	}
	return n
}

// noteOutcomes fills in, for the metrics, the results of the runs stored
// (rows, upserts) that ended with this upload, having been held running or
// not at all, and the dispatch time of those that came from a START whose
// first step this upload brings.
func (tx *tx) noteOutcomes(target TargetIdentity, rows []RunRow, upserts []RunUpsert, results []RunResult) error {
	byID := make(map[string]*RunResult, len(rows))
	for i := range results {
		if results[i].OK {
			byID[results[i].RunID] = &results[i]
		}
	}
	var fresh []string // START's runs whose first step this upload brings
	var freshRows []RunRow
	for k, u := range upserts {
		r := rows[k]
		if !u.Changed {
			continue
		}
		var was RunHeld
		if u.Held != nil {
			was = *u.Held
		}
		res := byID[r.RunID]
		if tx.noteEnd(r, u) {
			res.Ended, res.Job, res.Status = true, r.Job, r.Status
			res.Duration = time.Duration(r.DurationMS) * time.Millisecond
		}
		if !was.Started && fromStart(r.Run) && len(r.Steps) > 0 && !r.Steps[0].StartedAt.IsZero() {
			fresh, freshRows = append(fresh, r.RunID), append(freshRows, r)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	posted, err := tx.StartsPosted(tx.ctx, target.ID, fresh)
	if err != nil {
		return err
	}
	skew := time.Duration(target.ClockSkewMS) * time.Millisecond
	for _, r := range freshRows {
		at, ok := posted[r.RunID]
		if !ok {
			continue
		}
		d := max(r.Steps[0].StartedAt.Add(-skew).Sub(at), 0)
		byID[r.RunID].Dispatch = &d
	}
	return nil
}

// noteEnd notes, for the OnCommit hook (and the master's metrics), the
// end of run r stored as u says, when this is the first time the catalog
// records it finished. It reports whether it noted one.
func (tx *tx) noteEnd(r RunRow, u RunUpsert) bool {
	if !u.Changed || !r.Status.Finished() || (u.Held != nil && u.Held.Status.Finished()) {
		return false
	}
	tx.c.Ended = append(tx.c.Ended, RunEnd{Job: r.Job, Status: r.Status, Duration: time.Duration(r.DurationMS) * time.Millisecond})
	return true
}

// fromStart reports whether a run came from a START (an operator's), not
// from a schedule.
func fromStart(r muster.Run) bool {
	return r.Trigger == muster.TriggerOperator || strings.HasPrefix(r.Trigger, muster.TriggerOperator+":")
}

// outputAppender collects the chunks of output of one upload's runs that
// the catalog does not hold yet, each appended to its attempt's output from
// where that output ends; a chunk (or the part of one) already held is not
// stored again. The chunks are then stored together.
type outputAppender struct {
	tx       *tx
	targetID int64
	ends     map[outputPlace]int64 // where each attempt's output ends, with the chunks collected
	rows     []OutputRow
}

// outputPlace is an attempt of a run, by row.
type outputPlace struct {
	run     int64
	attempt int
}

// add collects the chunks of one run, stored as u says.
func (a *outputAppender) add(runID string, u RunUpsert, chunks []OutputChunk) error {
	if len(chunks) == 0 {
		return nil
	}
	run := u.Row
	if !u.Changed {
		var err error
		if run, err = a.tx.RunKey(a.tx.ctx, a.targetID, runID); err != nil {
			return err
		}
	}
	// A run this upload inserted holds no output yet: only a run held
	// before has an end to read.
	fresh := u.Changed && u.Held == nil
	for _, c := range chunks {
		at := outputPlace{run, c.Attempt}
		end, ok := a.ends[at]
		if !ok && !fresh {
			var err error
			if end, err = a.tx.OutputEnd(a.tx.ctx, run, c.Attempt); err != nil {
				return err
			}
		}
		if held := end - c.Offset; held > 0 {
			if held >= int64(len(c.Data)) {
				a.ends[at] = end
				continue
			}
			c.Offset, c.Data = end, c.Data[held:]
		}
		a.ends[at] = c.Offset + int64(len(c.Data))
		a.rows = append(a.rows, OutputRow{Run: run, Attempt: c.Attempt, Offset: c.Offset, Data: []byte(c.Data)})
	}
	return nil
}

// storableRun returns r with its texts storable. The steps are copied
// before a change: they are the caller's.
func storableRun(r muster.Run) muster.Run {
	r.Trigger, r.Message = storable(r.Trigger), storable(r.Message)
	cloned := false
	for i, s := range r.Steps {
		name, msg := storable(s.Name), storable(s.Message)
		if name == s.Name && msg == s.Message {
			continue
		}
		if !cloned {
			r.Steps, cloned = slices.Clone(r.Steps), true
		}
		r.Steps[i].Name, r.Steps[i].Message = name, msg
	}
	return r
}

// checkRun returns why a report cannot be stored, or "". Times may not lie
// past latest.
func checkRun(rep RunUpload, latest time.Time) string {
	r := rep.Run
	switch {
	case r.RunID == "" || len(r.RunID) > MaxRunIDLen:
		return fmt.Sprintf("run_id: 1 to %d characters", MaxRunIDLen)
	case strings.ContainsFunc(r.RunID, unicode.IsControl):
		return fmt.Sprintf("run_id: %q has control characters", r.RunID)
	case r.Job == "" || len(r.Job) > muster.MaxNameLen:
		return fmt.Sprintf("run %s: job: a job name is required", r.RunID)
	case strings.ContainsFunc(r.Job, unicode.IsControl):
		return fmt.Sprintf("run %s: job: %q has control characters", r.RunID, r.Job)
	case rep.Revision < 1:
		return fmt.Sprintf("run %s: revision: must be 1 or more", r.RunID)
	case !r.Status.Valid():
		return fmt.Sprintf("run %s: status: %q is not a run status", r.RunID, r.Status)
	case r.StartedAt.IsZero():
		return fmt.Sprintf("run %s: started_at: required", r.RunID)
	case r.StartedAt.After(latest):
		return fmt.Sprintf("run %s: started_at: %s is later than the master's clock allows (%s, with the target's clock skew)", r.RunID, r.StartedAt.UTC().Format(time.RFC3339), latest.UTC().Format(time.RFC3339))
	case r.FinishedAt != nil && r.FinishedAt.After(latest):
		return fmt.Sprintf("run %s: finished_at: %s is later than the master's clock allows (%s, with the target's clock skew)", r.RunID, r.FinishedAt.UTC().Format(time.RFC3339), latest.UTC().Format(time.RFC3339))
	case len(r.Steps) > MaxAttempts:
		return fmt.Sprintf("run %s: steps: at most %d attempts", r.RunID, MaxAttempts)
	case len(r.Message) > MaxMessageLen:
		return fmt.Sprintf("run %s: message: at most %d bytes", r.RunID, MaxMessageLen)
	case r.DurationMS < 0:
		return fmt.Sprintf("run %s: duration_ms: must not be negative", r.RunID)
	}
	for i, s := range r.Steps {
		switch {
		case !s.Status.Valid():
			return fmt.Sprintf("run %s: steps[%d]: status: %q is not a step attempt status", r.RunID, i, s.Status)
		case len(s.Output) > MaxOutputBytes+MaxOutputNote:
			return fmt.Sprintf("run %s: steps[%d]: output: at most %d bytes", r.RunID, i, MaxOutputBytes)
		case s.StartedAt.After(latest):
			return fmt.Sprintf("run %s: steps[%d]: started_at: later than the master's clock allows", r.RunID, i)
		case s.DurationMS < 0:
			return fmt.Sprintf("run %s: steps[%d]: duration_ms: must not be negative", r.RunID, i)
		}
	}
	var total int64
	for i, c := range rep.Output {
		end := c.Offset + int64(len(c.Data))
		switch {
		case c.Attempt < 0 || c.Attempt >= len(r.Steps):
			return fmt.Sprintf("run %s: output[%d]: attempt: %d is not an attempt of the run (0 to %d)", r.RunID, i, c.Attempt, len(r.Steps)-1)
		case c.Offset < 0:
			return fmt.Sprintf("run %s: output[%d]: offset: must not be negative", r.RunID, i)
		case end > MaxOutputBytes+MaxOutputNote:
			return fmt.Sprintf("run %s: output[%d]: an attempt's output is at most %d bytes", r.RunID, i, MaxOutputBytes)
		}
		total += int64(len(c.Data))
	}
	if total > MaxRunOutputBytes {
		return fmt.Sprintf("run %s: output: at most %d bytes in one upload", r.RunID, MaxRunOutputBytes)
	}
	return ""
}

// RunFilter selects runs.
type RunFilter struct {
	Job    string
	Target string
	// Runs names runs by target and run id; a run id with no target names
	// the runs of that id on every target, each with its target.
	Runs  []muster.RunRef
	Limit int
	// Scope keeps only the runs of its jobs.
	Scope muster.Scope
	// Cursor reads on after the page that named it as its next. Empty for
	// the newest.
	Cursor string
	// Before, when not nil, keeps the runs that sort after it, newest
	// first: those that started before it, or at the same time and were
	// recorded before it. The catalog sets it from Cursor for its store.
	Before *RunKey
}

// RunKey is where a run sorts in a history, newest first: when it
// started, then the row the master recorded it in.
type RunKey struct {
	StartedAt time.Time
	Row       int64
}

// historyList names a history of runs in its cursors.
const historyList = "history"

// FindRuns returns runs, newest first. A run last reported running whose
// target is now suspected offline says so.
func (c *Catalog) FindRuns(ctx context.Context, f RunFilter) ([]muster.Run, error) {
	rows, err := c.store.FindRuns(ctx, f)
	if err != nil {
		return nil, err
	}
	return c.runs(ctx, rows)
}

// FindRunsPage returns a page of runs, newest first (by the time they
// started, runs that started together in the order the master recorded
// them), and the cursor of the next page: empty when no run the filter
// selects sorts after the page's last.
func (c *Catalog) FindRunsPage(ctx context.Context, f RunFilter) ([]muster.Run, string, error) {
	key, err := decodeCursor(historyList, f.Cursor, 2, 1)
	if err != nil {
		return nil, "", err
	}
	if key != nil {
		f.Before = &RunKey{StartedAt: time.UnixMilli(key[0]).UTC(), Row: key[1]}
	}
	limit := cmp.Or(f.Limit, 100)
	f.Limit = limit + 1 // one more tells whether there is a next page
	rows, err := c.store.FindRuns(ctx, f)
	if err != nil {
		return nil, "", err
	}
	rows, next := pageOf(rows, limit, historyList, func(r RunRow) []int64 { return []int64{r.StartedAt.UnixMilli(), r.Key} })
	runs, err := c.runs(ctx, rows)
	return runs, next, err
}

// runs returns the runs of rows. A run last reported running whose target
// is now suspected offline says so.
func (c *Catalog) runs(ctx context.Context, rows []RunRow) ([]muster.Run, error) {
	now := c.opts.Now()
	runs := make([]muster.Run, len(rows))
	keys := make([]int64, len(rows))
	for i, r := range rows {
		keys[i] = r.Key
		if r.Status == muster.RunRunning {
			state := muster.TargetState{PollInterval: r.PollInterval}
			if r.LastPoll != nil {
				state.LastPoll = *r.LastPoll
			}
			if hb, ok := c.beats.lookup(r.TargetID); ok {
				state.LastPoll, state.PollInterval = hb.At, hb.PollInterval
			}
			status, _ := muster.DeriveStatus(now, state)
			r.TargetOffline = status == muster.StatusSuspectedOffline
		}
		runs[i] = r.Run
	}
	return runs, c.outputs(ctx, keys, runs)
}

// outputs adds to runs (keys[i] is runs[i]'s row) the output held in
// chunks. A gap between chunks (a chunk lost on the way) is said, not
// closed up.
func (c *Catalog) outputs(ctx context.Context, keys []int64, runs []muster.Run) error {
	if len(keys) == 0 {
		return nil
	}
	chunks, err := c.store.RunOutputs(ctx, keys)
	if err != nil || len(chunks) == 0 {
		return err
	}
	index := make(map[int64]int, len(keys))
	for i, k := range keys {
		index[k] = i
	}
	held := map[[2]int64]int64{} // (run, attempt) → bytes of chunks so far
	for _, o := range chunks {
		i, ok := index[o.Run]
		if !ok || o.Attempt < 0 || o.Attempt >= len(runs[i].Steps) {
			continue
		}
		step := &runs[i].Steps[o.Attempt]
		k := [2]int64{o.Run, int64(o.Attempt)}
		if gap := o.Offset - held[k]; gap > 0 {
			step.Output += fmt.Sprintf("\n[muster: %d bytes of output never reached the master]\n", gap)
		}
		step.Output += string(o.Data)
		held[k] = o.Offset + int64(len(o.Data))
	}
	return nil
}

// PurgeRequest says which finished runs to delete: those that started
// before now minus OlderThan (when set), and those beyond the newest
// KeepPerJob of each job (when set; given both, a run either selects), for
// one job or every job. Running runs are kept.
type PurgeRequest struct {
	Job        string
	OlderThan  time.Duration
	KeepPerJob int
}

// PurgeRuns deletes history (SQL Server's sp_purge_jobhistory, plus its
// per-job row limit). A purge an operator asks for is recorded in the
// audit log; the master's own retention, when it deleted something.
func (c *Catalog) PurgeRuns(ctx context.Context, req PurgeRequest, by muster.Actor) (muster.PurgeResult, error) {
	if req.Job != "" && !by.Scope.HasJob(req.Job) {
		return muster.PurgeResult{}, outOfScope(by, fmt.Sprintf("job %q", req.Job))
	}
	if req.OlderThan < 0 || req.KeepPerJob < 0 {
		return muster.PurgeResult{}, muster.Errorf(muster.EINVALID, "older_than and keep_per_job must not be negative")
	}
	if req.OlderThan == 0 && req.KeepPerJob == 0 {
		return muster.PurgeResult{}, muster.Errorf(muster.EINVALID, "give older_than or keep_per_job (or both): a purge needs a limit")
	}
	var res muster.PurgeResult
	err := c.update(ctx, func(tx *tx) error {
		var before *time.Time
		if req.OlderThan > 0 {
			t := tx.now.Add(-req.OlderThan)
			before = &t
		}
		perJob, err := tx.PurgeRuns(ctx, req.Job, before, req.KeepPerJob)
		if err != nil {
			return err
		}
		res.Deleted = 0
		for _, n := range perJob {
			res.Deleted += n
		}
		// Rollouts are history too: those ended before the age limit go,
		// with the record of each of their targets.
		var rollouts int64
		if before != nil {
			if rollouts, err = tx.PruneRollouts(ctx, req.Job, *before); err != nil {
				return err
			}
		}
		if by.Kind == muster.ActorMaster && res.Deleted == 0 && rollouts == 0 {
			return nil
		}
		// Each limit deletes what it selects: with both, a run either
		// selects goes.
		var limits []string
		if req.OlderThan > 0 {
			limits = append(limits, "older than "+muster.Duration(req.OlderThan).Short())
		}
		if req.KeepPerJob > 0 {
			limits = append(limits, fmt.Sprintf("beyond the newest %d per job", req.KeepPerJob))
		}
		line := fmt.Sprintf("deleted %d finished run(s) %s", res.Deleted, limits[0])
		if len(limits) == 2 {
			line = fmt.Sprintf("deleted %d finished run(s): %s, or %s", res.Deleted, limits[0], limits[1])
		}
		lines := []string{line}
		// The entry concerns each job it deleted runs of, saying how many.
		jobs := nonEmpty(req.Job)
		for _, name := range sortedKeys(perJob) {
			if req.Job == "" {
				jobs = append(jobs, name)
				lines = append(lines, fmt.Sprintf("%s: %d run(s)", name, perJob[name]))
			}
		}
		if rollouts > 0 {
			lines = append(lines, fmt.Sprintf("deleted %d rollout(s) ended more than %s ago", rollouts, muster.Duration(req.OlderThan).Short()))
		}
		return tx.audit(by, muster.AuditEntry{Action: muster.AuditHistoryPurge, Jobs: jobs, Changes: lines})
	})
	return res, err
}
