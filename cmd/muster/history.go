package main

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster/internal/httpapi"
)

func newHistoryCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "history",
		Short: "Manage run history on the master",
		Args:  cobra.NoArgs,
	}
	var cf clientFlags
	var body httpapi.PurgeBody
	var olderThan time.Duration
	purge := &cobra.Command{
		Use:   "purge [--job J] [--older-than D] [--keep N]",
		Short: "Delete old runs",
		Long: `Delete finished runs from the master: those older than --older-than
(counted in whole seconds, rounded up), and those beyond the newest --keep of
each job (given both, a run either selects is deleted); for one job (--job) or
all. Running runs are kept. The master also applies --history-max-runs and
--history-max-age by itself every ten minutes.`,
		Example: `  muster history purge --older-than 720h
  muster history purge --job backup --keep 100`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if olderThan == 0 && body.KeepPerJob == 0 {
				return errors.New("give --older-than or --keep (or both)")
			}
			switch {
			case olderThan > httpapi.MaxPurgeAge*time.Second:
				return fmt.Errorf("--older-than: at most 100 years (36500d), not %s", (*days)(&olderThan))
			case olderThan > 0 && olderThan < time.Second:
				return fmt.Errorf("--older-than: at least 1s, not %s", (*days)(&olderThan))
			}
			body.OlderThanSeconds = purgeAge(olderThan)
			c, err := cf.client()
			if err != nil {
				return err
			}
			res, err := c.PurgeHistory(cmd.Context(), body)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %d run(s)\n", res.Deleted)
			return nil
		},
	}
	cf.register(purge)
	f := purge.Flags()
	f.StringVar(&body.Job, "job", "", "only this job's runs")
	f.Var((*days)(&olderThan), "older-than", "delete runs that started longer ago than this, e.g. 30d or 720h")
	boundedIntVar(f, &body.KeepPerJob, "keep", 0, 0, math.MaxInt, "keep only the newest N runs of each job")
	cmd.AddCommand(purge)
	return cmd
}

// purgeAge is --older-than in the whole seconds the API takes, rounded
// up: a purge deletes no run younger than it was told.
func purgeAge(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}
