package catalog

import (
	"context"
	"fmt"
)

// endRunsOfDeparted ends what targets that left the fleet under a release
// that did not end it at their departure left open: their runs recorded
// running, abandoned, and their STARTs held back, or posted and not
// collected, recorded skipped, as endRunsOf does now. A START posted not
// collected is there when a release posted it to a target as it left
// (a start racing the departure on another master). Left so, they would
// stay running for ever, and hold up a max_parallel_targets slot or a
// rollout's wave. A catalog without any reads one indexed statement.
func (c *Catalog) endRunsOfDeparted(ctx context.Context) error {
	return c.update(ctx, func(tx *tx) error {
		tx.keepCredentials()
		gone, err := tx.DepartedWithRuns(ctx)
		if err != nil {
			return err
		}
		// Every one's STARTs first, then the runs: a run abandoned frees
		// a max_parallel_targets slot, which releases the START held back
		// next, and that must not be one of another target that left.
		for _, t := range gone {
			how := "defected"
			if t.State == TargetDeleted {
				how = "was deleted"
			}
			if err := tx.endStartsOf(t.ID, how); err != nil {
				return fmt.Errorf("target %s, which left: %w", t.Name, err)
			}
		}
		for _, t := range gone {
			if t.State == TargetDeleted && t.DefectedHow == "" {
				t.DefectedHow = DepartureDeleted // left before the catalog recorded how
			}
			if err := tx.abandonRunsOf(t.ID, t); err != nil {
				return fmt.Errorf("target %s, which left: %w", t.Name, err)
			}
		}
		return nil
	})
}
