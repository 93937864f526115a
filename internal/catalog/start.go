package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
)

// Bounds on a start request.
const (
	MaxIdempotencyKeyLen = 128
	MaxStartExpiry       = 24 * time.Hour
	// IdempotencyWindow is how long a start's key is remembered.
	IdempotencyWindow = 24 * time.Hour
)

// StartRequest asks to run a job now on some or all of its targets.
type StartRequest struct {
	Job     string
	Targets []string // default: every target of the job
	// IdempotencyKey makes a retried request return the first one's result
	// instead of starting the job again.
	IdempotencyKey string
	// ExpiresIn is how long the START stays valid; a target that receives it
	// later records a skipped run. Default 10 minutes.
	ExpiresIn time.Duration
	// Env overrides the job's and steps' environment for these runs.
	Env map[string]string
	// Step is the step the runs begin at (default: the first).
	Step string
	// Rollout, when set, starts the targets in waves instead of all at
	// once (see StartJob).
	Rollout *muster.RolloutSpec
}

// StartJob posts START to the job's targets (all, or those named) in one
// transaction, recorded in the audit log under by, whose name each run
// carries as who requested it. With an idempotency key seen before, it
// returns the earlier result and posts nothing; the same key with a
// different request is a conflict. Each run's id is random, made here: no
// target can guess another's.
//
// With a rollout, the targets (sorted by name) are split into waves; the
// rollout is stored with every run id chosen, and only the first wave's
// STARTs are posted: the others are posted as the waves before them end
// (see advanceRollouts).
func (c *Catalog) StartJob(ctx context.Context, req StartRequest, by muster.Actor) (muster.StartResult, error) {
	if !by.Scope.HasJob(req.Job) {
		return muster.StartResult{}, outOfScope(by, fmt.Sprintf("job %q", req.Job))
	}
	if len(req.IdempotencyKey) > MaxIdempotencyKeyLen {
		return muster.StartResult{}, muster.Errorf(muster.EINVALID, "idempotency_key: at most %d characters", MaxIdempotencyKeyLen)
	}
	if req.ExpiresIn < 0 || req.ExpiresIn > MaxStartExpiry {
		return muster.StartResult{}, muster.Errorf(muster.EINVALID, "expires_in: from 0 (the default, %s) to %s", muster.DefaultStartExpiry, MaxStartExpiry)
	}
	req.Targets = normalizeTargets(req.Targets)
	slices.Sort(req.Targets)
	req.Targets = slices.Compact(req.Targets)
	if err := muster.ValidateStartEnv("env", req.Env); err != nil {
		return muster.StartResult{}, err
	}
	if req.Rollout != nil {
		if err := req.Rollout.Validate("rollout."); err != nil {
			return muster.StartResult{}, err
		}
	}
	// The request as its idempotency key remembers it, with who sent it:
	// another API key sending the same key is a conflict, not handed this
	// one's result. A master before this one remembered it without By: a
	// retry of such a start, across an upgrade, is matched by that form.
	type remembered struct {
		Job       string
		Targets   []string
		ExpiresIn time.Duration
		Env       map[string]string
		Step      string
		Rollout   *muster.RolloutSpec `json:",omitempty"`
		By        string              `json:",omitempty"`
	}
	form := remembered{req.Job, req.Targets, req.ExpiresIn, req.Env, req.Step, req.Rollout, by.Kind + " " + by.Name}
	canonical, err := json.Marshal(form)
	if err != nil {
		return muster.StartResult{}, err
	}
	form.By = ""
	before, err := json.Marshal(form)
	if err != nil {
		return muster.StartResult{}, err
	}
	var res muster.StartResult
	// A write transaction at READ COMMITTED (on PostgreSQL; SQLite's
	// transactions are serial): what it decides on is locked or
	// constrained (the key's uniqueness, the target's row for its sequence
	// number, the job's row under max_parallel_targets).
	err = c.update(ctx, func(tx *tx) error {
		tx.keepCredentials()
		res = muster.StartResult{}
		job, replayed, err := tx.claimStart(req, string(canonical), string(before), &res)
		if err != nil || replayed {
			return err
		}
		if job.job.MaxParallelTargets > 0 || req.Rollout != nil {
			// Counting the job's runs under way decides how many start now,
			// and a rollout starts only when none runs: take the job's row
			// first, so that two starts count, or look, in turn.
			if job, err = tx.lockJobToPost(req.Job); err != nil {
				return err
			}
		}
		if req.Rollout != nil {
			if err := tx.noRunningRollout(req.Job); err != nil {
				return err
			}
		}
		if req.Step != "" && !job.hasStep(req.Step) {
			return muster.Errorf(muster.EINVALID, "step: job %q has no step %q", req.Job, req.Step)
		}
		effective := job.targetNames()
		if len(effective) == 0 {
			return muster.Errorf(muster.EPRECONDITION, "job %q runs on no target; give it targets: or groups: in its definition", req.Job)
		}
		targets := req.Targets
		if len(targets) == 0 {
			targets = effective
		}
		for _, t := range targets {
			if _, ok := job.targets[t]; !ok {
				return muster.Errorf(muster.EINVALID, "targets: job %q does not run on %q; it runs on %s", req.Job, t, strings.Join(effective, ", "))
			}
		}
		res = muster.StartResult{Job: job.job.Name, ExpiresAt: expiry(tx.now, req.ExpiresIn).UTC(), Runs: []muster.StartedRun{}}
		p := agentproto.StartPayload{RequestedBy: by.Name, Env: req.Env, Step: req.Step}
		runIDs := make([]string, len(targets))
		for i := range targets {
			runIDs[i] = muster.NewRunID()
		}
		first := targets
		var lines []string
		if req.Rollout != nil {
			ro, err := tx.createRollout(job, *req.Rollout, targets, runIDs, rolloutRequest{Payload: p, ExpiresIn: req.ExpiresIn}, by)
			if err != nil {
				return err
			}
			res.Rollout = &ro
			first = targets[:ro.WaveSize]
			lines = append(lines, fmt.Sprintf("rollout %d: %d wave(s) of %d target(s), halting when more than %d run(s) fail",
				ro.ID, ro.Waves, ro.WaveSize, ro.MaxFailures))
		}
		if res.Runs, err = tx.startRuns(job, first, runIDs, p, req.ExpiresIn); err != nil {
			return err
		}
		if err := tx.seqsUsed(); err != nil {
			return err
		}
		for _, run := range res.Runs {
			line := fmt.Sprintf("run %s on %s", run.RunID, run.Target)
			if run.Queued {
				line += " (queued by max_parallel_targets)"
			}
			lines = append(lines, line)
		}
		if req.Step != "" {
			lines = append(lines, "beginning at step "+req.Step)
		}
		for _, k := range slices.Sorted(maps.Keys(req.Env)) {
			lines = append(lines, "env "+k+" overridden")
		}
		if err := tx.audit(by, muster.AuditEntry{Action: muster.AuditJobStart, Jobs: []string{job.job.Name}, Targets: targets, Changes: lines}); err != nil {
			return err
		}
		if req.IdempotencyKey != "" {
			body, err := json.Marshal(res)
			if err != nil {
				return err
			}
			return tx.SetStartResponse(ctx, req.IdempotencyKey, string(body))
		}
		return nil
	})
	return res, err
}

// noRunningRollout refuses a rollout of a job that has one running: each
// would start every target, so that each ran the job twice.
func (tx *tx) noRunningRollout(job string) error {
	rows, err := tx.FindRollouts(tx.ctx, RolloutQuery{Job: job, RunningOnly: true, Limit: 1})
	if err != nil || len(rows) == 0 {
		return err
	}
	r := rows[0]
	return muster.Errorf(muster.ECONFLICT, "job %q has rollout %d running, at wave %d/%d: follow it with muster rollout list %s, or stop the job to cancel it first",
		job, r.ID, r.Wave, r.Waves, job)
}

// startRuns posts START of job to targets, the run ids given, each START
// carrying p, and holds back those beyond the job's max_parallel_targets
// (whose row the caller has locked when it sets one).
func (tx *tx) startRuns(job storedJob, targets, runIDs []string, p agentproto.StartPayload, expiresIn time.Duration) ([]muster.StartedRun, error) {
	limit, active := job.job.MaxParallelTargets, 0
	if limit > 0 {
		var err error
		if active, err = tx.ActiveStarts(tx.ctx, job.job.Name, tx.now); err != nil {
			return nil, err
		}
	}
	expiresAt := expiry(tx.now, expiresIn).UTC()
	runs := make([]muster.StartedRun, 0, len(targets))
	var ps []posting
	for i, t := range targets {
		p := p
		p.RunID = runIDs[i]
		if limit > 0 && active >= limit {
			if err := tx.queueStart(job.id, job.targets[t], queuedStart{Payload: p, ExpiresIn: expiresIn}); err != nil {
				return nil, err
			}
			runs = append(runs, muster.StartedRun{Target: t, RunID: p.RunID, Queued: true})
			continue
		}
		active++
		p.ExpiresAt = expiresAt
		ps = append(ps, posting{target: job.targets[t], op: muster.OpStart, job: job.job.Name, payload: p})
		runs = append(runs, muster.StartedRun{Target: t, RunID: p.RunID})
	}
	seqs, err := tx.postAll(ps)
	if err != nil {
		return nil, err
	}
	i := 0
	for r := range runs {
		if !runs[r].Queued {
			runs[r].Seq = seqs[i]
			i++
		}
	}
	return runs, nil
}

// claimStart records a start request's idempotency key (when it has one)
// and reads its job to post, or, when the key was used before, sets res to
// that request's result and reports true. A START to one target (named,
// or the job's only one) takes that target's sequence number with these
// reads (ClaimStart), which postAll then uses.
func (tx *tx) claimStart(req StartRequest, request, before string, res *muster.StartResult) (storedJob, bool, error) {
	c := StartClaim{Key: req.IdempotencyKey, Request: request, At: tx.now, Forgotten: tx.now.Add(-IdempotencyWindow), Job: req.Job}
	if len(req.Targets) <= 1 && req.Rollout == nil {
		c.One = true
		if len(req.Targets) == 1 {
			c.Target = req.Targets[0]
		}
	}
	claimed, err := tx.ClaimStart(tx.ctx, c)
	if err != nil {
		return storedJob{}, false, err
	}
	if !claimed.Claimed {
		return storedJob{}, true, tx.replayStart(req.IdempotencyKey, request, before, res)
	}
	if !claimed.Found {
		return storedJob{}, false, noJob(req.Job)
	}
	if claimed.Seq != 0 {
		tx.seqs = map[int64]int64{claimed.TargetID: claimed.Seq}
	}
	job, err := storedToStart(claimed.Job)
	return job, false, err
}

// PruneStarts deletes the idempotency keys older than IdempotencyWindow,
// and returns how many. A start does not wait for it to reuse a key that
// old (StartClaim.Forgotten): the master's retention duty calls it to keep
// the table small.
func (c *Catalog) PruneStarts(ctx context.Context) (int64, error) {
	var n int64
	err := c.update(ctx, func(tx *tx) error {
		tx.keepCredentials()
		var err error
		n, err = tx.DeleteStarts(ctx, tx.now.Add(-IdempotencyWindow))
		return err
	})
	return n, err
}

// replayStart sets res to the result of the start request that used key
// before, which must have been the same request from the same sender
// (request), or the same request remembered by a master that did not keep
// its sender (before).
func (tx *tx) replayStart(key, request, before string, res *muster.StartResult) error {
	prevReq, prevRes, ok, err := tx.FindStart(tx.ctx, key)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("idempotency key %q: %w", key, ErrRetry) // forgotten meanwhile
	case prevReq != request && prevReq != before:
		var prev, this struct{ By string }
		if json.Unmarshal([]byte(prevReq), &prev) == nil && json.Unmarshal([]byte(request), &this) == nil && prev.By != "" && prev.By != this.By {
			return muster.Errorf(muster.ECONFLICT, "idempotency_key %q was already used by another API key; each request needs a key of its own", key)
		}
		return muster.Errorf(muster.ECONFLICT, "idempotency_key %q was already used for a different start request", key)
	}
	if err := json.Unmarshal([]byte(prevRes), res); err != nil {
		return err
	}
	res.Replayed = true
	return nil
}

// StopJob posts STOP to the job's targets (all, or those named): each
// cancels the job's running run, which is recorded as canceled. The STARTs
// max_parallel_targets holds back on the master for those targets are
// dropped, so that none is posted after the STOP. Stopped on all its
// targets (none named), the job's running rollouts are cancelled too: their
// waves not yet posted never are.
func (c *Catalog) StopJob(ctx context.Context, name string, targets []string, by muster.Actor) (muster.JobChange, error) {
	if !by.Scope.HasJob(name) {
		return muster.JobChange{}, outOfScope(by, fmt.Sprintf("job %q", name))
	}
	var ch muster.JobChange
	err := c.update(ctx, func(tx *tx) error {
		job, err := tx.loadJobToPost(name)
		if err != nil {
			return err
		}
		ch, err = tx.stopJob(job, targets, by)
		return err
	})
	return ch, err
}

// stopJob posts STOP of job to the targets named (all of the job's, if
// none are), drops the STARTs held back for them and, when none are named,
// cancels the job's running rollouts, and records it in the audit log.
func (tx *tx) stopJob(job storedJob, targets []string, by muster.Actor) (muster.JobChange, error) {
	name := job.job.Name
	// A target named twice (in two spellings) is stopped once.
	names := slices.Compact(slices.Sorted(slices.Values(normalizeTargets(targets))))
	// A target taken off the job (out of its targets, or out of its
	// group) goes on with a run of it under way: a STOP must reach that
	// run too, which can hold a rollout's wave.
	running, err := tx.TargetsRunning(tx.ctx, name)
	if err != nil {
		return muster.JobChange{}, err
	}
	if len(names) == 0 {
		all := map[string]int64{}
		maps.Copy(all, job.targets)
		maps.Copy(all, running)
		names = sortedKeys(all)
	}
	ch := muster.JobChange{Job: job.job.Name, Action: muster.ActionStop, Version: job.job.Version}
	ps := make([]posting, len(names))
	tids := make([]int64, len(names))
	for i, t := range names {
		tid, ok := job.targets[t]
		if !ok {
			tid, ok = running[t]
		}
		if !ok {
			return ch, muster.Errorf(muster.EINVALID, "targets: job %q does not run on %q", name, t)
		}
		ps[i], tids[i] = posting{target: tid, op: muster.OpStop, job: job.job.Name}, tid
	}
	if err := tx.record(&ch, ps, names); err != nil {
		return ch, err
	}
	dropped, err := tx.dropQueued(job.id, tids, "the job was stopped")
	if err != nil {
		return ch, err
	}
	var cancelled []string
	if len(normalizeTargets(targets)) == 0 {
		// Stopped everywhere, the job's rollouts end too. Stopped on some
		// targets (a run that hangs), they go on, counting those runs
		// failed.
		if cancelled, err = tx.cancelRollouts(job.job.Name, by); err != nil {
			return ch, err
		}
	}
	if dropped > 0 {
		ch.Notes = append(ch.Notes, fmt.Sprintf("%d START(s) held back by max_parallel_targets dropped", dropped))
	}
	ch.Notes = append(ch.Notes, cancelled...)
	return ch, tx.audit(by, muster.AuditEntry{Action: muster.AuditJobStop, Jobs: []string{ch.Job}, Targets: names,
		Changes: append(jobChangeLines(ch), ch.Notes...)})
}

// queuedStart is a START held back by max_parallel_targets.
type queuedStart struct {
	Payload   agentproto.StartPayload `json:"payload"` // run id set; expiry set when posted
	ExpiresIn time.Duration           `json:"expires_in"`
}

// queueStart holds a START back.
func (tx *tx) queueStart(jobID, targetID int64, q queuedStart) error {
	body, err := json.Marshal(q)
	if err != nil {
		return err
	}
	return tx.InsertQueuedStart(tx.ctx, QueuedStartRow{JobID: jobID, TargetID: targetID, Payload: body, CreatedAt: tx.now})
}

// releaseQueued posts the STARTs a job's max_parallel_targets held back, in
// order, while slots are free. Whoever removes a queue entry posts its
// START, so one is never posted twice, however many masters release at
// once.
func (tx *tx) releaseQueued(job string) error {
	sj, err := tx.lockJobToPost(job)
	if muster.ErrorCode(err) == muster.ENOTFOUND {
		return nil
	}
	if err != nil {
		return err
	}
	free := 1 << 20 // the cap was lifted: release them all
	if limit := sj.job.MaxParallelTargets; limit > 0 {
		active, err := tx.ActiveStarts(tx.ctx, job, tx.now)
		if err != nil {
			return err
		}
		free = limit - active
	}
	if free <= 0 {
		return nil
	}
	queued, err := tx.QueuedStarts(tx.ctx, sj.id, free)
	if err != nil {
		return err
	}
	member := map[int64]bool{}
	for _, id := range sj.targets {
		member[id] = true
	}
	dropped := 0
	for _, e := range queued {
		if !member[e.TargetID] {
			// Its target left the job, or the fleet, as the START was held
			// back (a start on another master queued it while the
			// departure cleared the queue): it would never run there.
			n, err := tx.dropQueued(sj.id, []int64{e.TargetID}, "its target no longer runs the job")
			if err != nil {
				return err
			}
			dropped += n
			continue
		}
		var q queuedStart
		if err := json.Unmarshal(e.Payload, &q); err != nil {
			return fmt.Errorf("queued start %d: %w", e.ID, err)
		}
		mine, err := tx.DeleteQueuedStart(tx.ctx, e.ID)
		if err != nil {
			return err
		}
		if !mine {
			continue
		}
		if why, gone := sj.stepGone(q.Payload.Step); gone {
			// The job was applied again without the step the run was to
			// begin at: its target would refuse the START, and be left
			// blocked by it.
			if err := tx.recordDropped([]QueuedStartRow{e}, why+", where the run was to begin"); err != nil {
				return err
			}
			dropped++
			continue
		}
		q.Payload.ExpiresAt = expiry(tx.now, q.ExpiresIn).UTC()
		if _, err := tx.post(e.TargetID, muster.OpStart, job, q.Payload); err != nil {
			return err
		}
	}
	if dropped > 0 {
		return tx.releaseQueued(job) // the slots those would have taken
	}
	return nil
}

// ReleaseQueuedStarts posts held-back STARTs of every job that has free
// slots. The master calls it periodically, for slots freed by a START
// that failed or expired rather than by a run that ended.
func (c *Catalog) ReleaseQueuedStarts(ctx context.Context) error {
	return c.update(ctx, func(tx *tx) error {
		jobs, err := tx.JobsWithQueuedStarts(ctx)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if err := tx.releaseQueued(j); err != nil {
				return err
			}
		}
		return nil
	})
}
