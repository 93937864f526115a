package catalog

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/musterhq/muster"
)

// DefectTarget records that a target left: it is marked defected (its name
// is free again), its open instructions are dropped and it no longer runs
// any job. Its history stays. by is the target itself, by.Name its name;
// a target that left already (deleted with --force, or defected) is
// refused.
func (c *Catalog) DefectTarget(ctx context.Context, targetID int64, by muster.Actor) error {
	return c.update(ctx, func(tx *tx) error {
		// The target may have left since its certificate was looked up
		// (deleted with --force, or a defection of its own that
		// committed first): it does not leave again.
		if err := tx.LockTarget(ctx, targetID); err != nil {
			return err
		}
		t, err := tx.FindTargetByName(ctx, by.Name)
		if noRows(err) || (err == nil && t.ID != targetID) {
			return muster.Errorf(muster.EUNAUTHORIZED, "target %q is no longer enlisted in this master; run `muster defect --force` on it, then enlist it again", by.Name)
		}
		if err != nil {
			return err
		}
		jobs, err := tx.departingJobs(targetID)
		if err != nil {
			return err
		}
		e := muster.AuditEntry{Action: muster.AuditTargetDefect, Targets: []string{by.Name}, Jobs: jobs,
			Changes: append([]string{"defected: its jobs and open instructions dropped; its history stays"}, noLongerRuns(jobs)...)}
		if err := tx.defect(targetID, Departure{How: DepartureDefected, By: by.String()}); err != nil {
			return err
		}
		if err := tx.dropOverridesOf(by.Name, by, &e); err != nil {
			return err
		}
		return tx.audit(by, e)
	})
}

// dropOverridesOf removes the overrides of a target that left from every
// job, as SQL Server's sp_msx_defect and sp_delete_targetserver remove the
// target's rows: a server enlisted later under its name is a new target,
// which must not inherit them. The target no longer runs any job, so no
// other target receives anything new; each job's version moves, and e
// (the departure's audit entry) says which lost an override.
func (tx *tx) dropOverridesOf(target string, by muster.Actor, e *muster.AuditEntry) error {
	jobs, err := tx.loadJobs(JobQuery{})
	if err != nil {
		return err
	}
	for _, name := range sortedKeys(jobs) {
		old := jobs[name]
		i := slices.IndexFunc(old.job.Overrides, func(o muster.Override) bool { return o.Target == target })
		if i < 0 {
			continue
		}
		j := old.job
		j.Overrides = slices.Delete(slices.Clone(j.Overrides), i, i+1)
		ch, err := tx.updateJob(old, j, by.Name)
		if err != nil {
			return err
		}
		e.Jobs = append(e.Jobs, name)
		e.Changes = append(e.Changes, fmt.Sprintf("job %s: its override of target %s dropped (version %d)", name, target, ch.Version))
		for _, in := range ch.Instructions {
			e.Changes = append(e.Changes, "posted "+in+" ("+name+")")
		}
	}
	return nil
}

// departingJobs returns the jobs a leaving target runs, which it runs no
// more once it has left: its departure's audit entry concerns them.
func (tx *tx) departingJobs(targetID int64) ([]string, error) {
	jobs, err := tx.loadJobs(JobQuery{TargetID: targetID})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, name := range sortedKeys(jobs) {
		if slices.Contains(slices.Collect(maps.Values(jobs[name].targets)), targetID) {
			names = append(names, name)
		}
	}
	return names, nil
}

// noLongerRuns says which jobs a target that left no longer runs.
func noLongerRuns(jobs []string) []string {
	if len(jobs) == 0 {
		return nil
	}
	return []string{"no longer runs " + strings.Join(jobs, ", ")}
}

func (tx *tx) defect(targetID int64, d Departure) error {
	how := "was deleted"
	if d.How == DepartureDefected {
		how = "defected"
	}
	if err := tx.endRunsOf(targetID, how, TargetRow{State: TargetDefected, DefectedHow: d.How, DefectedBy: d.By}); err != nil {
		return err
	}
	if err := tx.ClearTarget(tx.ctx, targetID); err != nil {
		return err
	}
	// A poll the target holds is answered now, refused as its next
	// request would be, rather than when its hold ends.
	tx.c.Poke = append(tx.c.Poke, targetID)
	d.At = &tx.now
	return tx.SetTargetState(tx.ctx, targetID, TargetDefected, d)
}

// DeleteTarget removes a target from the master's side (SQL Server's
// sp_delete_targetserver). Its download list is cleared, it stops running
// every job, and a DEFECT is posted: the target becomes a tombstone whose
// certificate is good for nothing but fetching that DEFECT, which makes it
// defect itself when it comes back; then the tombstone goes. With force, no
// DEFECT is posted and the target is defected at once (for a target that
// will never come back, or was defected with `muster defect --force`).
func (c *Catalog) DeleteTarget(ctx context.Context, name string, force bool, by muster.Actor) error {
	return c.update(ctx, func(tx *tx) error {
		t, err := tx.FindTargetByName(ctx, name)
		switch {
		case noRows(err):
			return noTarget(name)
		case err != nil:
			return err
		case t.State == TargetDeleted && !force:
			return muster.Errorf(muster.ECONFLICT, "target %q is already deleted and waiting to collect its DEFECT; use --force to forget it now", name)
		}
		if err := tx.LockTarget(ctx, t.ID); err != nil {
			return err
		}
		// What was read before the row was taken may have changed since
		// (the target defected, or collected its DEFECT): read again.
		if again, err := tx.FindTargetByName(ctx, name); err != nil || again.ID != t.ID || again.State != t.State {
			if err != nil && !noRows(err) {
				return err
			}
			return fmt.Errorf("target %q changed while it was deleted: %w", name, ErrRetry)
		}
		jobs, err := tx.departingJobs(t.ID)
		if err != nil {
			return err
		}
		e := muster.AuditEntry{Action: muster.AuditTargetDelete, Targets: []string{name}, Jobs: jobs}
		if force {
			e.Changes = append([]string{"forgotten at once (--force): no DEFECT posted"}, noLongerRuns(jobs)...)
			if err := tx.defect(t.ID, Departure{How: DepartureForced, By: by.String()}); err != nil {
				return err
			}
			if err := tx.dropOverridesOf(name, by, &e); err != nil {
				return err
			}
			return tx.audit(by, e)
		}
		left := TargetRow{State: TargetDeleted, DefectedHow: DepartureDeleted, DefectedBy: by.String()}
		if err := tx.endRunsOf(t.ID, "was deleted", left); err != nil {
			return err
		}
		if err := tx.ClearTarget(ctx, t.ID); err != nil {
			return err
		}
		seq, err := tx.post(t.ID, muster.OpDefect, "", nil)
		if err != nil {
			return err
		}
		e.Changes = append([]string{fmt.Sprintf("posted DEFECT %s (seq %d); the target is a tombstone until it collects it", name, seq)}, noLongerRuns(jobs)...)
		if err := tx.SetTargetState(ctx, t.ID, TargetDeleted, Departure{How: DepartureDeleted, By: by.String()}); err != nil {
			return err
		}
		if err := tx.dropOverridesOf(name, by, &e); err != nil {
			return err
		}
		return tx.audit(by, e)
	})
}
