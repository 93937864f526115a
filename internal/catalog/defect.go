package catalog

import (
	"context"
	"database/sql"
	"errors"

	"github.com/musterhq/muster"
)

// DefectTarget records that a target left: it is marked defected (its name
// is free again), its open instructions are dropped and it no longer runs
// any job. Its history stays.
func (db *DB) DefectTarget(ctx context.Context, targetID int64) error {
	return db.update(ctx, func(tx *tx) error { return tx.defect(targetID) })
}

func (tx *tx) defect(targetID int64) error {
	if err := tx.clearTarget(targetID); err != nil {
		return err
	}
	_, err := tx.Exec(`UPDATE targets SET state = ?, defected_at = ? WHERE id = ?`, TargetDefected, ms(tx.now), targetID)
	return err
}

// DeleteTarget removes a target from the master's side (SQL Server's
// sp_delete_targetserver). Its download list is cleared, it stops running
// every job, and a DEFECT is posted: the target becomes a tombstone whose
// certificate is good for nothing but fetching that DEFECT, which makes it
// defect itself when it comes back; then the tombstone goes. With force, no
// DEFECT is posted and the target is defected at once (for a target that
// will never come back, or was defected with `muster defect --force`).
func (db *DB) DeleteTarget(ctx context.Context, name string, force bool) error {
	return db.update(ctx, func(tx *tx) error {
		var id int64
		var state string
		err := tx.QueryRow(`SELECT id, state FROM targets WHERE name = ? AND state <> ?`, name, TargetDefected).Scan(&id, &state)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return muster.Errorf(muster.ENOTFOUND, "no target named %q is enlisted", name)
		case err != nil:
			return err
		case state == TargetDeleted && !force:
			return muster.Errorf(muster.ECONFLICT, "target %q is already deleted and waiting to collect its DEFECT; use --force to forget it now", name)
		}
		if force {
			return tx.defect(id)
		}
		if err := tx.clearTarget(id); err != nil {
			return err
		}
		if _, err := tx.post(id, muster.OpDefect, "", nil); err != nil {
			return err
		}
		_, err = tx.Exec(`UPDATE targets SET state = ? WHERE id = ?`, TargetDeleted, id)
		return err
	})
}

// clearTarget drops a leaving target's open instructions and removes it
// from every job, group and start queue.
func (tx *tx) clearTarget(targetID int64) error {
	for _, q := range []string{
		`UPDATE instructions SET status = 'deleted' WHERE target_id = ? AND status IN ('pending', 'failed')`,
		`DELETE FROM job_targets WHERE target_id = ?`,
		`DELETE FROM group_members WHERE target_id = ?`,
		`DELETE FROM queued_starts WHERE target_id = ?`,
	} {
		if _, err := tx.Exec(q, targetID); err != nil {
			return err
		}
	}
	return nil
}
