package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/schedule"
)

// MaxJobsPerApply bounds one apply request.
const MaxJobsPerApply = 10000

// ApplyOptions shape an apply.
type ApplyOptions struct {
	Prune  bool // delete jobs not listed (within the actor's scope)
	DryRun bool // compute the changes, commit nothing
}

// storedJob is a job row with where it runs.
type storedJob struct {
	id       int64
	row      JobRow
	job      muster.Job          // with Version, its own Targets and Groups
	targets  map[string]int64    // effective targets: named ones and group members
	explicit map[string]bool     // the effective targets the job names itself
	via      map[string][]string // the job's groups each effective target is in
}

// definitionFor is what target receives of the job.
func (sj storedJob) definitionFor(target string) muster.Job {
	return sj.job.DefinitionFor(target, sj.via[target])
}

// targetNames returns the job's effective targets, sorted.
func (sj storedJob) targetNames() []string { return sortedKeys(sj.targets) }

// hasStep reports whether the job has a step named name.
func (sj storedJob) hasStep(name string) bool {
	return slices.ContainsFunc(sj.job.Steps, func(s muster.Step) bool { return s.Name == name })
}

// stepGone reports whether a START beginning at step (none: the first)
// would be refused, the job having been applied again without that step,
// and says so.
func (sj storedJob) stepGone(step string) (string, bool) {
	if step == "" || sj.hasStep(step) {
		return "", false
	}
	return fmt.Sprintf("job %q (version %d) has no step %q", sj.job.Name, sj.job.Version, step), true
}

// ApplyJobs validates every job, then creates, updates (and with Prune,
// deletes) jobs and posts the instructions each affected target needs, in
// one transaction, recording each change in the audit log under by. An
// unchanged job posts nothing. With DryRun the same transaction runs and is
// rolled back, so the preview is exactly what an apply would do.
//
// An actor with a scope may apply only jobs in it, may aim them only at
// the groups it names and at their members (what a job already names may
// stay), and prunes only jobs in it.
func (c *Catalog) ApplyJobs(ctx context.Context, jobs []muster.Job, opt ApplyOptions, by muster.Actor) (muster.ApplyResult, error) {
	if opt.Prune && len(jobs) == 0 {
		return muster.ApplyResult{}, muster.Errorf(muster.EINVALID, "prune: the request lists no jobs, so pruning would delete every job; delete jobs one by one with `muster job delete` instead")
	}
	if len(jobs) > MaxJobsPerApply {
		return muster.ApplyResult{}, muster.Errorf(muster.EINVALID, "jobs: at most %d jobs in one apply", MaxJobsPerApply)
	}
	seen := map[string]int{}
	for i := range jobs {
		j := &jobs[i]
		j.Normalize()
		if err := ValidateJob(j); err != nil {
			return muster.ApplyResult{}, err
		}
		if prev, ok := seen[j.Name]; ok {
			return muster.ApplyResult{}, muster.Errorf(muster.EINVALID, "jobs[%d]: job %q is already defined at jobs[%d]", i, j.Name, prev)
		}
		seen[j.Name] = i
		if !by.Scope.HasJob(j.Name) {
			return muster.ApplyResult{}, outOfScope(by, fmt.Sprintf("jobs[%d]: job %q", i, j.Name))
		}
	}
	var res muster.ApplyResult
	apply := func(tx *tx) error {
		res = muster.ApplyResult{DryRun: opt.DryRun, Changes: []muster.JobChange{}}
		// Applies change many jobs at once; they take every job's row so
		// that two never interleave, and first share every group's, so
		// that no group's members or name change under them.
		if err := tx.ShareGroups(ctx); err != nil {
			return err
		}
		if err := tx.LockJobs(ctx, nil); err != nil {
			return err
		}
		existing, err := tx.loadJobs(JobQuery{})
		if err != nil {
			return err
		}
		for _, j := range jobs {
			var leftOut, warnings []string
			if j.Targets, leftOut, warnings, err = tx.presentTargets(fmt.Sprintf("job %q: targets", j.Name), j.Targets); err != nil {
				return err
			}
			if _, err := tx.groupIDs(fmt.Sprintf("job %q: groups", j.Name), j.Groups); err != nil {
				return err
			}
			old, ok := existing[j.Name]
			var dropped []string
			if j.Overrides, dropped, err = tx.presentOverrides(j); err != nil {
				return err
			}
			warnings = append(warnings, dropped...)
			stray, err := tx.strayOverrides(j)
			if err != nil {
				return err
			}
			warnings = append(warnings, stray...)
			if err := tx.placementInScope(by, old.job, j); err != nil {
				return err
			}
			var c muster.JobChange
			if ok {
				c, err = tx.updateJob(old, j, by.Name)
			} else {
				c, err = tx.createJob(j, by.Name)
			}
			if err != nil {
				return err
			}
			c.LeftOut, c.Warnings = leftOut, warnings
			res.Changes = append(res.Changes, c)
			res.Posted += len(c.Instructions)
			var created []string
			if c.Action == muster.ActionCreate {
				// The record of a new job is its whole definition.
				created = diffJobs(nil, &j)
			}
			if err := tx.auditJobChange(by, c, created); err != nil {
				return err
			}
		}
		if opt.Prune {
			for _, name := range sortedKeys(existing) {
				if _, listed := seen[name]; listed || !by.Scope.HasJob(name) {
					continue
				}
				c, err := tx.deleteJob(existing[name])
				if err != nil {
					return err
				}
				res.Changes = append(res.Changes, c)
				res.Posted += len(c.Instructions)
				if err := tx.auditJobChange(by, c, []string{"pruned: not in the applied jobs"}); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if opt.DryRun {
		err := c.dryRun(ctx, apply)
		for i := range res.Changes {
			res.Changes[i].Posted = nil // rolled back: those numbers were never posted
		}
		return res, err
	}
	return res, c.update(ctx, apply)
}

// presentTargets returns the targets a job names that are enlisted, and a
// warning for each that left the fleet (defected, or deleted): those are
// left out, so that a job file naming a server that left still applies. A
// name no target ever held is an error that names field.
func (tx *tx) presentTargets(field string, names []string) (present, leftOut, warnings []string, err error) {
	ids, gone, err := tx.liveTargetIDs(names)
	if err != nil {
		return nil, nil, nil, err
	}
	var unknown []string
	for _, n := range names {
		_, live := ids[n]
		_, left := gone[n]
		switch {
		case live:
			present = append(present, n)
		case left:
			leftOut = append(leftOut, n)
			warnings = append(warnings, fmt.Sprintf("%s: %q is left out: no target of that name is enlisted now%s", field, n, goneNote(gone, n)))
		default:
			unknown = append(unknown, fmt.Sprintf("%q", n))
		}
	}
	if len(unknown) > 0 {
		return nil, nil, nil, muster.Errorf(muster.EINVALID, "%s: no enlisted target named %s; `muster target list` shows the enlisted ones", field, strings.Join(unknown, ", "))
	}
	return present, leftOut, warnings, nil
}

// presentOverrides returns a job's overrides without those of targets that
// left the fleet, and a warning for each of those. An override of a target
// never enlisted is an error that names it.
func (tx *tx) presentOverrides(j muster.Job) ([]muster.Override, []string, error) {
	var kept []muster.Override
	var warnings []string
	for i, o := range j.Overrides {
		if o.Target == "" {
			kept = append(kept, o)
			continue
		}
		present, _, w, err := tx.presentTargets(fmt.Sprintf("job %q: overrides[%d].target", j.Name, i), []string{o.Target})
		if err != nil {
			return nil, nil, err
		}
		if len(present) > 0 {
			kept = append(kept, o)
		}
		warnings = append(warnings, w...)
	}
	return kept, warnings, nil
}

// strayOverrides warns of each override of a target the job does not run
// on (it names it neither in targets nor through a group): it changes
// nothing until the target joins one of the job's groups, and is most
// likely a slip of the name.
func (tx *tx) strayOverrides(j muster.Job) ([]string, error) {
	var members map[string]bool
	var warnings []string
	for i, o := range j.Overrides {
		if o.Target == "" || slices.Contains(j.Targets, o.Target) {
			continue
		}
		if members == nil {
			var err error
			if members, err = scopeTargets(tx.ctx, tx, muster.Scope{Groups: j.Groups}); err != nil {
				return nil, err
			}
		}
		if !members[o.Target] {
			warnings = append(warnings, fmt.Sprintf("job %q: overrides[%d].target: %q is not a target of the job (not in its targets, nor a member of its groups); the override changes nothing unless it joins one of its groups",
				j.Name, i, o.Target))
		}
	}
	return warnings, nil
}

// ValidateJob checks a job's structure, its time zone and its schedules. A
// schedule is compiled in the job's zone, or UTC when the job has none (the
// target's zone is not known here; a schedule that can fire in one zone can
// fire in every other).
func ValidateJob(j *muster.Job) error {
	if err := j.Validate(); err != nil {
		return err
	}
	loc := time.UTC
	if j.TimeZone != "" {
		var err error
		if loc, err = schedule.LoadZone(j.TimeZone); err != nil {
			return muster.Errorf(muster.EINVALID, "job %q: time_zone: %q is not an IANA time zone such as Europe/Paris", j.Name, j.TimeZone)
		}
	}
	if err := schedule.ValidateAll(j.Schedules, loc); err != nil {
		return muster.Errorf(muster.EINVALID, "job %q: %s", j.Name, muster.ErrorMessage(err))
	}
	for i, o := range j.Overrides {
		if o.Schedules == nil {
			continue
		}
		if err := schedule.ValidateAll(*o.Schedules, loc); err != nil {
			return muster.Errorf(muster.EINVALID, "job %q: overrides[%d].%s", j.Name, i, muster.ErrorMessage(err))
		}
	}
	return nil
}

// jobRow is the stored form of a job.
func jobRow(j muster.Job) (JobRow, error) {
	def, err := definitionJSON(j)
	enabled, scheduled := j.Enabled, len(j.Schedules) > 0
	for _, o := range j.Overrides {
		enabled = enabled || (o.Enabled != nil && *o.Enabled)
		scheduled = scheduled || (o.Schedules != nil && len(*o.Schedules) > 0)
	}
	return JobRow{Name: j.Name, Version: j.Version, Definition: def, Enabled: enabled, Scheduled: scheduled, Category: j.Category}, err
}

func (tx *tx) createJob(j muster.Job, actor string) (muster.JobChange, error) {
	j.Version = 1
	row, err := jobRow(j)
	if err != nil {
		return muster.JobChange{}, err
	}
	row.CreatedAt, row.UpdatedAt, row.CreatedBy, row.UpdatedBy = tx.now, tx.now, actor, actor
	id, err := tx.InsertJob(tx.ctx, row)
	if errors.Is(err, ErrDuplicate) {
		// Created by another master since this transaction read the jobs:
		// run again, and update it.
		return muster.JobChange{}, fmt.Errorf("job %q: %w", j.Name, ErrRetry)
	}
	if err != nil {
		return muster.JobChange{}, err
	}
	c := muster.JobChange{Job: j.Name, Action: muster.ActionCreate, Version: j.Version}
	sj := storedJob{id: id, targets: map[string]int64{}, explicit: map[string]bool{}, via: map[string][]string{}}
	return c, tx.placeJob(sj, j, true, &c)
}

// updateJob applies a new definition of a job. Its version moves only when
// the definition changes; each target is sent what changed for it: an
// INSERT of the whole job, an UPDATE of its header, or nothing.
func (tx *tx) updateJob(old storedJob, j muster.Job, actor string) (muster.JobChange, error) {
	j.Version = old.job.Version
	row, err := jobRow(j)
	if err != nil {
		return muster.JobChange{}, err
	}
	c := muster.JobChange{Job: j.Name, Action: muster.ActionUnchanged, Version: j.Version, Diff: diffJobs(&old.job, &j)}
	defChanged := !bytes.Equal(old.row.Definition, row.Definition)
	if defChanged {
		j.Version++
		row.ID, row.Version, row.UpdatedAt, row.UpdatedBy = old.id, j.Version, tx.now, actor
		c.Version = j.Version
		updated, err := tx.UpdateJob(tx.ctx, row, old.job.Version)
		if err != nil {
			return muster.JobChange{}, err
		}
		if !updated {
			return muster.JobChange{}, fmt.Errorf("job %q changed meanwhile: %w", j.Name, ErrRetry)
		}
	}
	if err := tx.placeJob(old, j, defChanged, &c); err != nil {
		return muster.JobChange{}, err
	}
	if defChanged || len(c.Diff) > 0 || len(c.Instructions) > 0 {
		c.Action = muster.ActionUpdate
	}
	return c, nil
}

// placeJob records the groups a job names, then reconciles where it runs.
func (tx *tx) placeJob(old storedJob, j muster.Job, defChanged bool, c *muster.JobChange) error {
	groups, err := tx.groupIDs("groups", j.Groups)
	if err != nil {
		return err
	}
	if !slices.Equal(old.job.Groups, j.Groups) || old.row.ID == 0 {
		ids := make([]int64, len(j.Groups))
		for i, g := range j.Groups {
			ids[i] = groups[g]
		}
		if err := tx.SetJobGroups(tx.ctx, old.id, ids); err != nil {
			return err
		}
	}
	return tx.reconcile(old, j, defChanged, c)
}

// reconcile makes a job's effective targets (the targets it names, and the
// members of its groups) what they should be, posting what each target
// needs: a DELETE where it no longer runs, an INSERT where it now does, and
// where it stays, an INSERT or an UPDATE if what that target receives
// changed (or nothing). old is the job as it was; j as it is now;
// defChanged says whether its stored definition changed (if not, no target
// it stays on receives anything new).
func (tx *tx) reconcile(old storedJob, j muster.Job, defChanged bool, c *muster.JobChange) error {
	want, explicit, via, err := tx.effectiveTargets(old.id, j.Targets)
	if err != nil {
		return err
	}
	// With overrides, what a target receives depends on its groups too,
	// which change without the definition changing.
	perTarget := len(old.job.Overrides) > 0 || len(j.Overrides) > 0
	names := sortedKeys(want)
	for n := range old.targets {
		if _, ok := want[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var ps []posting
	var where []string
	for _, name := range names {
		tid, wanted := want[name]
		oldTID, had := old.targets[name]
		var p posting
		switch {
		case had && !wanted:
			p = posting{target: oldTID, op: muster.OpDelete, job: j.Name}
			if err := tx.DeleteJobTarget(tx.ctx, old.id, oldTID); err != nil {
				return err
			}
			// STARTs held back for it would reach a target without the job.
			if _, err := tx.dropQueued(old.id, []int64{oldTID}, "the job no longer runs on the target"); err != nil {
				return err
			}
		case wanted && !had:
			if err := tx.InsertJobTarget(tx.ctx, old.id, tid, explicit[name]); err != nil {
				return err
			}
			p = posting{target: tid, op: muster.OpInsert, job: j.Name, payload: insertPayload(j, name, via[name])}
		default:
			if explicit[name] != old.explicit[name] {
				if err := tx.SetJobTargetExplicit(tx.ctx, old.id, tid, explicit[name]); err != nil {
					return err
				}
			}
			if !defChanged && !perTarget {
				continue
			}
			before, after := old.definitionFor(name), j.DefinitionFor(name, via[name])
			if bytes.Equal(versionless(before), versionless(after)) {
				continue
			}
			// Only a change to the header (enabled, description) can go as
			// an UPDATE; anything else re-sends the whole job.
			if bytes.Equal(bodyJSON(before), bodyJSON(after)) {
				p = posting{target: tid, op: muster.OpUpdate, job: j.Name, payload: updatePayload(after)}
			} else {
				p = posting{target: tid, op: muster.OpInsert, job: j.Name, payload: insertPayload(j, name, via[name])}
			}
		}
		ps = append(ps, p)
		where = append(where, name)
	}
	return tx.record(c, ps, where)
}

// record posts a change's instructions and notes them on the change.
func (tx *tx) record(c *muster.JobChange, ps []posting, targets []string) error {
	seqs, err := tx.postAll(ps)
	if err != nil {
		return err
	}
	for i, p := range ps {
		c.Instructions = append(c.Instructions, string(p.op)+" "+targets[i])
		c.Posted = append(c.Posted, muster.Instruction{Seq: seqs[i], Target: targets[i], Operation: p.op, Job: p.job,
			PostedAt: tx.now.UTC(), Status: muster.InstructionPending})
	}
	return nil
}

// versionless is a definition's JSON without its version, to tell whether
// what a target receives changed.
func versionless(j muster.Job) []byte {
	j.Version = 0
	b, _ := json.Marshal(j)
	return b
}

// effectiveTargets returns the active targets a job runs on, by name: those
// it names and the members of its groups (as recorded), which of them it
// names itself, and the job's groups each is in.
func (tx *tx) effectiveTargets(jobID int64, named []string) (map[string]int64, map[string]bool, map[string][]string, error) {
	ids, err := tx.targetIDs("targets", named)
	if err != nil {
		return nil, nil, nil, err
	}
	explicit := map[string]bool{}
	for n := range ids {
		explicit[n] = true
	}
	members, err := tx.GroupTargets(tx.ctx, jobID)
	via := make(map[string][]string, len(members))
	for n, m := range members {
		ids[n], via[n] = m.ID, m.Groups
	}
	return ids, explicit, via, err
}

// deleteJob posts DELETE to each of the job's targets, which supersedes its
// pending instructions there, then removes the job. Its history stays.
func (tx *tx) deleteJob(old storedJob) (muster.JobChange, error) {
	c := muster.JobChange{Job: old.job.Name, Action: muster.ActionDelete, Version: old.job.Version}
	names := old.targetNames()
	ps := make([]posting, len(names))
	for i, name := range names {
		ps[i] = posting{target: old.targets[name], op: muster.OpDelete, job: old.job.Name}
	}
	if err := tx.record(&c, ps, names); err != nil {
		return c, err
	}
	if _, err := tx.dropQueued(old.id, nil, "the job was deleted"); err != nil {
		return c, err
	}
	return c, tx.DeleteJob(tx.ctx, old.id)
}

// DeleteJob deletes a job and posts DELETE to its targets.
func (c *Catalog) DeleteJob(ctx context.Context, name string, by muster.Actor) (muster.JobChange, error) {
	if !by.Scope.HasJob(name) {
		return muster.JobChange{}, outOfScope(by, fmt.Sprintf("job %q", name))
	}
	var ch muster.JobChange
	err := c.update(ctx, func(tx *tx) error {
		old, err := tx.lockJob(name)
		if err != nil {
			return err
		}
		if ch, err = tx.deleteJob(old); err != nil {
			return err
		}
		return tx.auditJobChange(by, ch, nil)
	})
	return ch, err
}

// SetJobEnabled enables or disables a job and posts UPDATE to its targets.
// Setting the state it already has changes nothing. Disabling a job
// disables it on every target: the overrides that enable it somewhere lose
// their enabled (and an override left changing nothing goes), as they would
// otherwise beat the job's own. Enabling it leaves the overrides that
// disable it somewhere as they are.
func (c *Catalog) SetJobEnabled(ctx context.Context, name string, enabled bool, by muster.Actor) (muster.JobChange, error) {
	if !by.Scope.HasJob(name) {
		return muster.JobChange{}, outOfScope(by, fmt.Sprintf("job %q", name))
	}
	var ch muster.JobChange
	err := c.update(ctx, func(tx *tx) error {
		old, err := tx.lockJob(name)
		if err != nil {
			return err
		}
		j := old.job
		j.Enabled = enabled
		if !enabled {
			j.Overrides = withoutEnabling(j.Overrides)
		}
		if ch, err = tx.updateJob(old, j, by.Name); err != nil || ch.Action == muster.ActionUnchanged {
			return err
		}
		action := muster.AuditJobDisable
		if enabled {
			action = muster.AuditJobEnable
		}
		return tx.audit(by, muster.AuditEntry{Action: action, Jobs: []string{name}, Targets: postedTargets(ch), Changes: jobChangeLines(ch)})
	})
	return ch, err
}

// withoutEnabling returns overrides without enabled: true, and without
// the overrides that set nothing else.
func withoutEnabling(overrides []muster.Override) []muster.Override {
	var out []muster.Override
	for _, o := range overrides {
		if o.Enabled != nil && *o.Enabled {
			o.Enabled = nil
			if o.ChangesNothing() {
				continue
			}
		}
		out = append(out, o)
	}
	return out
}

// auditJobChange records a change an apply or a delete made to a job;
// an unchanged job is not recorded.
func (tx *tx) auditJobChange(by muster.Actor, c muster.JobChange, note []string) error {
	var action string
	switch c.Action {
	case muster.ActionCreate:
		action = muster.AuditJobCreate
	case muster.ActionUpdate:
		action = muster.AuditJobUpdate
	case muster.ActionDelete:
		action = muster.AuditJobDelete
	default:
		return nil
	}
	return tx.audit(by, muster.AuditEntry{Action: action, Jobs: []string{c.Job}, Targets: postedTargets(c),
		Changes: append(note, jobChangeLines(c)...)})
}

// FindJobs returns every job with its targets and their last outcomes,
// ordered by name.
func (c *Catalog) FindJobs(ctx context.Context) ([]muster.JobStatus, error) {
	return c.findJobs(ctx, JobQuery{})
}

// FindJob returns one job by name.
func (c *Catalog) FindJob(ctx context.Context, name string) (muster.JobStatus, error) {
	jobs, err := c.findJobs(ctx, JobQuery{Name: name})
	if err != nil {
		return muster.JobStatus{}, err
	}
	if len(jobs) == 0 {
		return muster.JobStatus{}, noJob(name)
	}
	return jobs[0], nil
}

func noJob(name string) error {
	return muster.Errorf(muster.ENOTFOUND, "no job named %q", name)
}

func (c *Catalog) findJobs(ctx context.Context, q JobQuery) ([]muster.JobStatus, error) {
	rows, err := c.store.FindJobs(ctx, q)
	if err != nil {
		return nil, err
	}
	jobs := make([]muster.JobStatus, 0, len(rows))
	for _, r := range rows {
		sj, err := stored(r)
		if err != nil {
			return nil, err
		}
		js := muster.JobStatus{Job: sj.job, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, CreatedBy: r.CreatedBy,
			UpdatedBy: r.UpdatedBy, Outcomes: []muster.JobTarget{}}
		if js.Targets == nil {
			js.Targets = []string{}
		}
		for _, t := range r.Targets {
			o := muster.JobTarget{Target: t.Target, Via: []string{}, LastRunID: t.LastRunID, LastStatus: t.LastStatus,
				LastMessage: t.LastMessage, LastStartedAt: t.LastStartedAt, LastDurationMS: t.LastDurationMS}
			if t.Explicit {
				o.Via = append(o.Via, "targets")
			}
			for _, g := range t.Via {
				o.Via = append(o.Via, "group:"+g)
			}
			js.Outcomes = append(js.Outcomes, o)
		}
		jobs = append(jobs, js)
	}
	return jobs, nil
}

// stored decodes a job row.
func stored(r JobRow) (storedJob, error) {
	sj := storedJob{id: r.ID, row: r}
	if err := json.Unmarshal(r.Definition, &sj.job); err != nil {
		return sj, fmt.Errorf("job %q: stored definition: %w", r.Name, err)
	}
	sj.job.Version = r.Version
	sj.job.Groups = r.Groups
	if len(sj.job.Groups) == 0 {
		sj.job.Groups = nil
	}
	sj.placeTargets(r.Targets)
	return sj, nil
}

// startDefinition is what a start reads of a job's stored definition.
type startDefinition struct {
	MaxParallelTargets int `json:"max_parallel_targets"`
	Steps              []struct {
		Name string `json:"name"`
	} `json:"steps"`
}

// storedToStart decodes a job row read to post a START (JobQuery.Posting)
// as stored does, but decodes of its definition only what a start uses:
// the job's max_parallel_targets and its steps' names. Its job holds
// nothing else of the definition.
func storedToStart(r JobRow) (storedJob, error) {
	var def startDefinition
	if err := json.Unmarshal(r.Definition, &def); err != nil {
		return storedJob{}, fmt.Errorf("job %q: stored definition: %w", r.Name, err)
	}
	sj := storedJob{id: r.ID, row: r}
	sj.job = muster.Job{Name: r.Name, Version: r.Version, MaxParallelTargets: def.MaxParallelTargets, Steps: make([]muster.Step, len(def.Steps))}
	for i, s := range def.Steps {
		sj.job.Steps[i].Name = s.Name
	}
	sj.placeTargets(r.Targets)
	return sj, nil
}

// placeTargets records the job's effective targets, those it names
// itself, and the groups each is in.
func (sj *storedJob) placeTargets(targets []JobTargetRow) {
	sj.targets, sj.explicit, sj.via = make(map[string]int64, len(targets)), map[string]bool{}, map[string][]string{}
	for _, t := range targets {
		sj.targets[t.Target] = t.TargetID
		if len(t.Via) > 0 {
			sj.via[t.Target] = t.Via
		}
		if t.Explicit {
			sj.job.Targets = append(sj.job.Targets, t.Target)
			sj.explicit[t.Target] = true
		}
	}
}

// loadJobs reads jobs with their targets, keyed by name.
func (tx *tx) loadJobs(q JobQuery) (map[string]storedJob, error) {
	rows, err := tx.FindJobs(tx.ctx, q)
	if err != nil {
		return nil, err
	}
	jobs := make(map[string]storedJob, len(rows))
	for _, r := range rows {
		if jobs[r.Name], err = stored(r); err != nil {
			return nil, err
		}
	}
	return jobs, nil
}

// loadJob reads one job by name.
func (tx *tx) loadJob(name string) (storedJob, error) {
	return tx.loadOne(JobQuery{Name: name})
}

// loadJobToPost reads one job by name with only what posting START or
// STOP to its targets needs (JobQuery.Posting): its definition and its
// targets' ids and names. Its job has neither Targets nor Groups.
func (tx *tx) loadJobToPost(name string) (storedJob, error) {
	return tx.loadOne(JobQuery{Name: name, Posting: true})
}

// loadOne reads the job q names.
func (tx *tx) loadOne(q JobQuery) (storedJob, error) {
	jobs, err := tx.loadJobs(q)
	if err != nil {
		return storedJob{}, err
	}
	j, ok := jobs[q.Name]
	if !ok {
		return storedJob{}, noJob(q.Name)
	}
	return j, nil
}

// lockJob takes a job's row, then reads it.
func (tx *tx) lockJob(name string) (storedJob, error) {
	if err := tx.LockJobs(tx.ctx, []string{name}); err != nil {
		return storedJob{}, err
	}
	return tx.loadJob(name)
}

// lockJobToPost takes a job's row, then reads it as loadJobToPost does.
func (tx *tx) lockJobToPost(name string) (storedJob, error) {
	if err := tx.LockJobs(tx.ctx, []string{name}); err != nil {
		return storedJob{}, err
	}
	return tx.loadJobToPost(name)
}

// jobForTarget returns the named job and whether it runs on the target.
func (tx *tx) jobForTarget(name string, targetID int64) (storedJob, bool, error) {
	sj, err := tx.loadJob(name)
	if muster.ErrorCode(err) == muster.ENOTFOUND {
		return storedJob{}, false, nil
	}
	if err != nil {
		return storedJob{}, false, err
	}
	return sj, slices.Contains(slices.Collect(maps.Values(sj.targets)), targetID), nil
}

// definitionJSON is the stored form of a job: everything but its version
// (a column), targets (rows of job_targets) and groups (job_groups).
func definitionJSON(j muster.Job) ([]byte, error) {
	j.Targets, j.Groups, j.Version = nil, nil, 0
	return json.Marshal(j)
}

// bodyJSON is a definition without its header fields, to tell an
// UPDATE-only change from one that needs an INSERT.
func bodyJSON(j muster.Job) []byte {
	j.Enabled, j.Description = false, ""
	return versionless(j)
}

// insertPayload is the INSERT a target receives: the job as it runs there
// (a member of the job's groups in groups), in the protocol's own form,
// which every protocol a master accepts decodes.
func insertPayload(j muster.Job, target string, groups []string) agentproto.Job {
	return agentproto.JobFromDomain(j.DefinitionFor(target, groups))
}

func updatePayload(j muster.Job) agentproto.UpdatePayload {
	return agentproto.UpdatePayload{Version: j.Version, Enabled: j.Enabled, Description: j.Description}
}
