package catalog

import (
	"context"

	"github.com/musterhq/muster"
)

// DefectTarget records that a target left: it is marked defected (its name
// is free again), its open instructions are dropped and it no longer runs
// any job. Its history stays.
func (c *Catalog) DefectTarget(ctx context.Context, targetID int64) error {
	return c.update(ctx, func(tx *tx) error { return tx.defect(targetID) })
}

func (tx *tx) defect(targetID int64) error {
	if err := tx.ClearTarget(tx.ctx, targetID); err != nil {
		return err
	}
	return tx.SetTargetState(tx.ctx, targetID, TargetDefected, &tx.now)
}

// DeleteTarget removes a target from the master's side (SQL Server's
// sp_delete_targetserver). Its download list is cleared, it stops running
// every job, and a DEFECT is posted: the target becomes a tombstone whose
// certificate is good for nothing but fetching that DEFECT, which makes it
// defect itself when it comes back; then the tombstone goes. With force, no
// DEFECT is posted and the target is defected at once (for a target that
// will never come back, or was defected with `muster defect --force`).
func (c *Catalog) DeleteTarget(ctx context.Context, name string, force bool) error {
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
		if force {
			return tx.defect(t.ID)
		}
		if err := tx.ClearTarget(ctx, t.ID); err != nil {
			return err
		}
		if _, err := tx.post(t.ID, muster.OpDefect, "", nil); err != nil {
			return err
		}
		return tx.SetTargetState(ctx, t.ID, TargetDeleted, nil)
	})
}
