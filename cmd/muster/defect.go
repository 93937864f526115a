package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster/internal/agent"
)

func newDefectCmd() *cobra.Command {
	var dataDir string
	var force bool
	cmd := &cobra.Command{
		Use:   "defect --data DIR [--force]",
		Short: "Make this target leave its master",
		Long: `Make the target in DIR leave its master. If its daemon is running it is asked
to defect and then stops; otherwise the defect is done here.

A defect cancels and records running runs, sends the spool and any owed acks,
tells the master (which marks the target defected and keeps its history),
then deletes the master's jobs, the spool and the enlistment from DIR. The
target can then enlist again, in this master or another, with a new token.

If the master cannot be reached the defect stops and nothing changes, unless
--force is given: then the local part is done anyway, runs the master never
received are lost, and the master must be told with
"muster target delete NAME --force".`,
		Example: `  muster defect --data /var/lib/muster-target
  muster defect --data /var/lib/muster-target --force   # the master is gone for good`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := agent.DefaultConfig()
			cfg.DataDir = dataDir
			log, err := newLogger(cmd.ErrOrStderr(), "warn")
			if err != nil {
				return err
			}
			cfg.Logger = log
			ctx, stop := signalContext()
			defer stop()
			res, err := agent.Defect(ctx, cfg, force)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "defected from master %s; %d job(s) deleted", res.Master, res.JobsDeleted)
			if res.RunsCanceled > 0 {
				fmt.Fprintf(out, ", %d running run(s) canceled", res.RunsCanceled)
			}
			fmt.Fprintln(out)
			if res.RunsLost > 0 {
				fmt.Fprintf(out, "%d run(s) the master never received were discarded\n", res.RunsLost)
			}
			if !res.MasterTold {
				name := res.Target
				if name == "" {
					name = "NAME" // a daemon of an older release does not say
				}
				fmt.Fprintf(out, "the master was not told: run `muster target delete %s --force` on it\n", name)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data", "", "the target's data directory (required)")
	cmd.Flags().BoolVar(&force, "force", false, "defect locally even if the master cannot be reached")
	cmd.MarkFlagRequired("data")
	return cmd
}

func newTargetDeleteCmd() *cobra.Command {
	var cf clientFlags
	var force, all bool
	cmd := &cobra.Command{
		Use:   "delete NAME [--force] | --all [--force]",
		Short: "Remove a target from the master",
		Long: `Remove a target from the master's side. Its download list is cleared, it
stops running every job, and a DEFECT is posted to it: until it collects that
DEFECT it is kept as a tombstone (flag "deleted"), whose certificate is good
for nothing else. When it next polls, it defects itself and the tombstone
goes. Its history is kept.

With --force the target is forgotten at once and no DEFECT is posted: for a
target that is gone for good, or that defected with "muster defect --force".
The usual way to remove a live target is "muster defect" on the target.

With --all every target is deleted (each is posted its DEFECT): the
multiserver setup is dismantled.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) == 1) || len(args) > 1 {
				return errors.New("name one target, or give --all")
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			if all {
				done, err := c.DeleteAllTargets(cmd.Context(), force)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted %d target(s): %s\n", len(done), dash(strings.Join(done, ", ")))
				return nil
			}
			if err := c.DeleteTarget(cmd.Context(), args[0], force); err != nil {
				return err
			}
			if force {
				fmt.Fprintf(cmd.OutOrStdout(), "deleted target %s\n", args[0])
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "deleted target %s; it defects itself when it next polls\n", args[0])
			}
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVar(&force, "force", false, "forget the target now, without waiting for it to defect")
	cmd.Flags().BoolVar(&all, "all", false, "delete every target (dismantle)")
	return cmd
}
