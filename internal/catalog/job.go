package catalog

import (
	"bytes"
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
	"github.com/musterhq/muster/internal/schedule"
)

// MaxJobsPerApply bounds one apply request.
const MaxJobsPerApply = 10000

// ApplyRequest creates or updates jobs by name, all or nothing.
type ApplyRequest struct {
	Jobs   []muster.Job `json:"jobs"`
	Prune  bool         `json:"prune"`   // delete jobs not listed
	DryRun bool         `json:"dry_run"` // compute the changes, commit nothing
}

// Job change actions.
const (
	ActionCreate    = "create"
	ActionUpdate    = "update"
	ActionDelete    = "delete"
	ActionUnchanged = "unchanged"
)

// JobChange is what an apply did, or would do, to one job.
type JobChange struct {
	Job          string   `json:"job"`
	Action       string   `json:"action"`
	Version      int64    `json:"version"`
	Diff         []string `json:"diff,omitempty"`
	Instructions []string `json:"instructions,omitempty"` // e.g. "INSERT web1"
}

// ApplyResult lists the changes of an apply, in request order, then pruned
// jobs.
type ApplyResult struct {
	DryRun  bool        `json:"dry_run"`
	Changes []JobChange `json:"changes"`
	Posted  int         `json:"posted"`
}

// storedJob is a job row with where it runs.
type storedJob struct {
	id       int64
	job      muster.Job       // with Version, its own Targets and Groups
	targets  map[string]int64 // effective targets: named ones and group members
	explicit map[string]bool  // the effective targets the job names itself
}

// targetNames returns the job's effective targets, sorted.
func (sj storedJob) targetNames() []string {
	names := make([]string, 0, len(sj.targets))
	for n := range sj.targets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ApplyJobs validates every job, then creates, updates (and with Prune,
// deletes) jobs and posts the instructions each affected target needs, in
// one transaction. An unchanged job posts nothing. With DryRun the same
// transaction runs and is rolled back, so the preview is exactly what an
// apply would do.
func (db *DB) ApplyJobs(ctx context.Context, req ApplyRequest) (ApplyResult, error) {
	if req.Prune && len(req.Jobs) == 0 {
		return ApplyResult{}, muster.Errorf(muster.EINVALID, "prune: the request lists no jobs, so pruning would delete every job; delete jobs one by one with `muster job delete` instead")
	}
	if len(req.Jobs) > MaxJobsPerApply {
		return ApplyResult{}, muster.Errorf(muster.EINVALID, "jobs: at most %d jobs in one apply", MaxJobsPerApply)
	}
	seen := map[string]int{}
	for i := range req.Jobs {
		j := &req.Jobs[i]
		j.Normalize()
		if err := ValidateJob(j); err != nil {
			return ApplyResult{}, err
		}
		if prev, ok := seen[j.Name]; ok {
			return ApplyResult{}, muster.Errorf(muster.EINVALID, "jobs[%d]: job %q is already defined at jobs[%d]", i, j.Name, prev)
		}
		seen[j.Name] = i
	}
	res := ApplyResult{DryRun: req.DryRun, Changes: []JobChange{}}
	apply := func(tx *tx) error {
		res.Changes, res.Posted = res.Changes[:0], 0
		existing, err := tx.loadJobs()
		if err != nil {
			return err
		}
		for _, j := range req.Jobs {
			if _, err := tx.targetIDs(fmt.Sprintf("job %q: targets", j.Name), j.Targets); err != nil {
				return err
			}
			if _, err := tx.groupIDs(fmt.Sprintf("job %q: groups", j.Name), j.Groups); err != nil {
				return err
			}
			var c JobChange
			if old, ok := existing[j.Name]; ok {
				c, err = tx.updateJob(old, j)
			} else {
				c, err = tx.createJob(j)
			}
			if err != nil {
				return err
			}
			res.Changes = append(res.Changes, c)
			res.Posted += len(c.Instructions)
		}
		if req.Prune {
			var names []string
			for name := range existing {
				if _, listed := seen[name]; !listed {
					names = append(names, name)
				}
			}
			slices.Sort(names)
			for _, name := range names {
				c, err := tx.deleteJob(existing[name])
				if err != nil {
					return err
				}
				res.Changes = append(res.Changes, c)
				res.Posted += len(c.Instructions)
			}
		}
		return nil
	}
	if req.DryRun {
		return res, db.dryRun(ctx, apply)
	}
	return res, db.update(ctx, apply)
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
		if loc, err = time.LoadLocation(j.TimeZone); err != nil {
			return muster.Errorf(muster.EINVALID, "job %q: time_zone: %q is not an IANA time zone such as Europe/Paris", j.Name, j.TimeZone)
		}
	}
	if err := schedule.ValidateAll(j.Schedules, loc); err != nil {
		return muster.Errorf(muster.EINVALID, "job %q: %s", j.Name, muster.ErrorMessage(err))
	}
	return nil
}

func (tx *tx) createJob(j muster.Job) (JobChange, error) {
	j.Version = 1
	def, err := definitionJSON(j)
	if err != nil {
		return JobChange{}, err
	}
	res, err := tx.Exec(`INSERT INTO jobs (name, version, definition, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
		j.Name, j.Version, def, ms(tx.now), ms(tx.now))
	if err != nil {
		return JobChange{}, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return JobChange{}, err
	}
	c := JobChange{Job: j.Name, Action: ActionCreate, Version: j.Version}
	sj := storedJob{id: id, job: j, targets: map[string]int64{}, explicit: map[string]bool{}}
	return c, tx.placeJob(sj, j, true, &c)
}

// updateJob applies a new definition of a job. Its version moves only when
// the definition changes; each target is sent what changed for it: an
// INSERT of the whole job, an UPDATE of its header, or nothing.
func (tx *tx) updateJob(old storedJob, j muster.Job) (JobChange, error) {
	j.Version = old.job.Version
	oldDef, err := definitionJSON(old.job)
	if err != nil {
		return JobChange{}, err
	}
	newDef, err := definitionJSON(j)
	if err != nil {
		return JobChange{}, err
	}
	c := JobChange{Job: j.Name, Action: ActionUnchanged, Version: j.Version, Diff: diffJobs(&old.job, &j)}
	defChanged := !bytes.Equal(oldDef, newDef)
	if defChanged {
		j.Version++
		c.Version = j.Version
		if _, err := tx.Exec(`UPDATE jobs SET version = ?, definition = ?, updated_at = ? WHERE id = ?`,
			j.Version, newDef, ms(tx.now), old.id); err != nil {
			return JobChange{}, err
		}
	}
	if err := tx.placeJob(old, j, defChanged, &c); err != nil {
		return JobChange{}, err
	}
	if len(c.Diff) > 0 || len(c.Instructions) > 0 {
		c.Action = ActionUpdate
	}
	return c, nil
}

// placeJob records the groups a job names, then reconciles where it runs.
func (tx *tx) placeJob(old storedJob, j muster.Job, defChanged bool, c *JobChange) error {
	groups, err := tx.groupIDs("groups", j.Groups)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(`DELETE FROM job_groups WHERE job_id = ?`, old.id); err != nil {
		return err
	}
	for _, g := range j.Groups {
		if _, err := tx.Exec(`INSERT INTO job_groups (job_id, group_id) VALUES (?, ?)`, old.id, groups[g]); err != nil {
			return err
		}
	}
	return tx.reconcile(old, j, defChanged, c)
}

// reconcile makes job_targets match a job's effective targets (the targets
// it names, and the members of its groups), posting what each target
// needs: a DELETE where it no longer runs, an INSERT where it now does, and
// where it stays, an INSERT or an UPDATE if what that target receives
// changed (or nothing). old is the job as it was; j as it is now;
// defChanged says whether its stored definition changed (if not, no target
// it stays on receives anything new).
func (tx *tx) reconcile(old storedJob, j muster.Job, defChanged bool, c *JobChange) error {
	want, explicit, err := tx.effectiveTargets(old.id, j.Targets)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(want)+len(old.targets))
	for n := range old.targets {
		names = append(names, n)
	}
	for n := range want {
		if _, had := old.targets[n]; !had {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	post := func(op muster.Operation, name string, tid int64, payload any) error {
		if _, err := tx.post(tid, op, j.Name, payload); err != nil {
			return err
		}
		c.Instructions = append(c.Instructions, string(op)+" "+name)
		return nil
	}
	for _, name := range names {
		tid, wanted := want[name]
		oldTID, had := old.targets[name]
		switch {
		case had && !wanted:
			if err := post(muster.OpDelete, name, oldTID, nil); err != nil {
				return err
			}
			if _, err := tx.Exec(`DELETE FROM job_targets WHERE job_id = ? AND target_id = ?`, old.id, oldTID); err != nil {
				return err
			}
			// STARTs held back for it would reach a target without the job.
			if _, err := tx.Exec(`DELETE FROM queued_starts WHERE job_id = ? AND target_id = ?`, old.id, oldTID); err != nil {
				return err
			}
		case wanted && !had:
			if _, err := tx.Exec(`INSERT INTO job_targets (job_id, target_id, explicit) VALUES (?, ?, ?)`, old.id, tid, explicit[name]); err != nil {
				return err
			}
			if err := post(muster.OpInsert, name, tid, agentproto.JobFromDomain(j.DefinitionFor(name))); err != nil {
				return err
			}
		default:
			if explicit[name] != old.explicit[name] {
				if _, err := tx.Exec(`UPDATE job_targets SET explicit = ? WHERE job_id = ? AND target_id = ?`, explicit[name], old.id, tid); err != nil {
					return err
				}
			}
			if !defChanged {
				continue
			}
			before, after := old.job.DefinitionFor(name), j.DefinitionFor(name)
			if bytes.Equal(versionless(before), versionless(after)) {
				continue
			}
			// Only a change to the header (enabled, description) can go as
			// an UPDATE; anything else re-sends the whole job.
			if bytes.Equal(bodyJSON(before), bodyJSON(after)) {
				err = post(muster.OpUpdate, name, tid, updatePayload(after))
			} else {
				err = post(muster.OpInsert, name, tid, agentproto.JobFromDomain(after))
			}
			if err != nil {
				return err
			}
		}
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
// it names and the members of its groups (as recorded in job_groups), and
// which of them it names itself.
func (tx *tx) effectiveTargets(jobID int64, named []string) (map[string]int64, map[string]bool, error) {
	ids, err := tx.targetIDs("targets", named)
	if err != nil {
		return nil, nil, err
	}
	explicit := map[string]bool{}
	for n := range ids {
		explicit[n] = true
	}
	err = tx.nameIDs(ids, `SELECT t.name, t.id FROM job_groups jg JOIN group_members gm ON gm.group_id = jg.group_id
		JOIN targets t ON t.id = gm.target_id WHERE jg.job_id = ? AND t.state = 'active'`, jobID)
	return ids, explicit, err
}

// deleteJob posts DELETE to each of the job's targets, which supersedes its
// pending instructions there, then removes the job. Its history stays.
func (tx *tx) deleteJob(old storedJob) (JobChange, error) {
	c := JobChange{Job: old.job.Name, Action: ActionDelete, Version: old.job.Version}
	for _, name := range old.targetNames() {
		if _, err := tx.post(old.targets[name], muster.OpDelete, old.job.Name, nil); err != nil {
			return JobChange{}, err
		}
		c.Instructions = append(c.Instructions, string(muster.OpDelete)+" "+name)
	}
	_, err := tx.Exec(`DELETE FROM jobs WHERE id = ?`, old.id)
	return c, err
}

// DeleteJob deletes a job and posts DELETE to its targets.
func (db *DB) DeleteJob(ctx context.Context, name string) (JobChange, error) {
	var c JobChange
	err := db.update(ctx, func(tx *tx) error {
		old, err := tx.loadJob(name)
		if err != nil {
			return err
		}
		c, err = tx.deleteJob(old)
		return err
	})
	return c, err
}

// SetJobEnabled enables or disables a job and posts UPDATE to its targets.
// Setting the state it already has changes nothing.
func (db *DB) SetJobEnabled(ctx context.Context, name string, enabled bool) (JobChange, error) {
	var c JobChange
	err := db.update(ctx, func(tx *tx) error {
		old, err := tx.loadJob(name)
		if err != nil {
			return err
		}
		j := old.job
		j.Enabled = enabled
		c, err = tx.updateJob(old, j)
		return err
	})
	return c, err
}

// FindJobs returns every job with its targets and their last outcomes,
// ordered by name.
func (db *DB) FindJobs(ctx context.Context) ([]muster.JobStatus, error) {
	return db.findJobs(ctx, "")
}

// FindJob returns one job by name.
func (db *DB) FindJob(ctx context.Context, name string) (muster.JobStatus, error) {
	jobs, err := db.findJobs(ctx, name)
	if err != nil {
		return muster.JobStatus{}, err
	}
	if len(jobs) == 0 {
		return muster.JobStatus{}, muster.Errorf(muster.ENOTFOUND, "no job named %q", name)
	}
	return jobs[0], nil
}

func (db *DB) findJobs(ctx context.Context, name string) ([]muster.JobStatus, error) {
	q := `SELECT id, name, version, definition, created_at, updated_at FROM jobs`
	var args []any
	if name != "" {
		q += ` WHERE name = ?`
		args = append(args, name)
	}
	rows, err := db.read.QueryContext(ctx, q+` ORDER BY name`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	jobs := []muster.JobStatus{}
	index := map[int64]int{}
	for rows.Next() {
		var id, created, updated int64
		var js muster.JobStatus
		var def string
		if err := rows.Scan(&id, &js.Name, &js.Version, &def, &created, &updated); err != nil {
			return nil, err
		}
		version := js.Version
		if err := json.Unmarshal([]byte(def), &js.Job); err != nil {
			return nil, fmt.Errorf("job %q: stored definition: %w", js.Name, err)
		}
		js.Version, js.CreatedAt, js.UpdatedAt = version, fromMS(created), fromMS(updated)
		js.Targets, js.Groups, js.Outcomes = []string{}, []string{}, []muster.JobTarget{}
		index[id] = len(jobs)
		jobs = append(jobs, js)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	// Each effective target, with why the job runs there: named by the job
	// ("targets"), and through which of its groups.
	q = `SELECT jt.job_id, t.name, jt.explicit, jt.last_run_id, jt.last_status, jt.last_message, jt.last_started_at, jt.last_duration_ms,
			(SELECT GROUP_CONCAT(g.name, ',') FROM job_groups jg JOIN groups g ON g.id = jg.group_id
				JOIN group_members gm ON gm.group_id = g.id WHERE jg.job_id = jt.job_id AND gm.target_id = jt.target_id)
		FROM job_targets jt JOIN targets t ON t.id = jt.target_id`
	if name != "" {
		q += ` JOIN jobs j ON j.id = jt.job_id WHERE j.name = ?`
	}
	rows, err = db.read.QueryContext(ctx, q+` ORDER BY t.name`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var jobID int64
		var o muster.JobTarget
		var explicit bool
		var started sql.NullInt64
		var via sql.NullString
		if err := rows.Scan(&jobID, &o.Target, &explicit, &o.LastRunID, &o.LastStatus, &o.LastMessage, &started, &o.LastDurationMS, &via); err != nil {
			return nil, err
		}
		o.LastStartedAt = fromNullMS(started)
		o.Via = []string{}
		if explicit {
			o.Via = append(o.Via, "targets")
		}
		if via.Valid {
			gs := strings.Split(via.String, ",")
			slices.Sort(gs)
			for _, g := range gs {
				o.Via = append(o.Via, "group:"+g)
			}
		}
		if i, ok := index[jobID]; ok {
			if explicit {
				jobs[i].Targets = append(jobs[i].Targets, o.Target)
			}
			jobs[i].Outcomes = append(jobs[i].Outcomes, o)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return jobs, db.fillGroups(ctx, jobs, index)
}

// fillGroups sets the groups each job names.
func (db *DB) fillGroups(ctx context.Context, jobs []muster.JobStatus, index map[int64]int) error {
	rows, err := db.read.QueryContext(ctx, `SELECT jg.job_id, g.name FROM job_groups jg JOIN groups g ON g.id = jg.group_id ORDER BY g.name`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var g string
		if err := rows.Scan(&id, &g); err != nil {
			return err
		}
		if i, ok := index[id]; ok {
			jobs[i].Groups = append(jobs[i].Groups, g)
		}
	}
	return rows.Err()
}

// loadJobs reads every job with its targets, keyed by name.
func (tx *tx) loadJobs() (map[string]storedJob, error) {
	return tx.queryJobs(``)
}

// loadJob reads one job by name.
func (tx *tx) loadJob(name string) (storedJob, error) {
	jobs, err := tx.queryJobs(` WHERE j.name = ?`, name)
	if err != nil {
		return storedJob{}, err
	}
	j, ok := jobs[name]
	if !ok {
		return storedJob{}, muster.Errorf(muster.ENOTFOUND, "no job named %q", name)
	}
	return j, nil
}

func (tx *tx) queryJobs(where string, args ...any) (map[string]storedJob, error) {
	rows, err := tx.Query(`SELECT j.id, j.name, j.version, j.definition, t.name, t.id, jt.explicit
		FROM jobs j LEFT JOIN job_targets jt ON jt.job_id = j.id LEFT JOIN targets t ON t.id = jt.target_id`+where+`
		ORDER BY j.name, t.name`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	jobs := map[string]storedJob{}
	byID := map[int64]string{}
	for rows.Next() {
		var id, version int64
		var name, def string
		var target sql.NullString
		var targetID sql.NullInt64
		var explicit sql.NullBool
		if err := rows.Scan(&id, &name, &version, &def, &target, &targetID, &explicit); err != nil {
			return nil, err
		}
		sj, ok := jobs[name]
		if !ok {
			sj = storedJob{id: id, targets: map[string]int64{}, explicit: map[string]bool{}}
			if err := json.Unmarshal([]byte(def), &sj.job); err != nil {
				return nil, fmt.Errorf("job %q: stored definition: %w", name, err)
			}
			sj.job.Version = version
			byID[id] = name
		}
		if target.Valid {
			sj.targets[target.String] = targetID.Int64
			if explicit.Bool {
				sj.job.Targets = append(sj.job.Targets, target.String)
				sj.explicit[target.String] = true
			}
		}
		jobs[name] = sj
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	groups, err := tx.Query(`SELECT jg.job_id, g.name FROM job_groups jg JOIN groups g ON g.id = jg.group_id ORDER BY g.name`)
	if err != nil {
		return nil, err
	}
	defer groups.Close()
	for groups.Next() {
		var id int64
		var g string
		if err := groups.Scan(&id, &g); err != nil {
			return nil, err
		}
		if name, ok := byID[id]; ok {
			sj := jobs[name]
			sj.job.Groups = append(sj.job.Groups, g)
			jobs[name] = sj
		}
	}
	return jobs, groups.Err()
}

// jobForTarget returns the named job and whether it runs on the target.
func (tx *tx) jobForTarget(name string, targetID int64) (muster.Job, bool, error) {
	sj, err := tx.loadJob(name)
	if errors.Is(err, sql.ErrNoRows) || muster.ErrorCode(err) == muster.ENOTFOUND {
		return muster.Job{}, false, nil
	}
	if err != nil {
		return muster.Job{}, false, err
	}
	for _, id := range sj.targets {
		if id == targetID {
			return sj.job, true, nil
		}
	}
	return sj.job, false, nil
}

// jobsOfTarget returns every job that runs on the target, by name.
func (tx *tx) jobsOfTarget(targetID int64) ([]muster.Job, error) {
	all, err := tx.queryJobs(` WHERE j.id IN (SELECT job_id FROM job_targets WHERE target_id = ?)`, targetID)
	if err != nil {
		return nil, err
	}
	out := make([]muster.Job, 0, len(all))
	for _, sj := range all {
		out = append(out, sj.job)
	}
	slices.SortFunc(out, func(a, b muster.Job) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
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

func updatePayload(j muster.Job) agentproto.UpdatePayload {
	return agentproto.UpdatePayload{Version: j.Version, Enabled: j.Enabled, Description: j.Description}
}
