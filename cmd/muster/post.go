package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
)

func newPostCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "post OPERATION [--job J] [--target T]... [--value N]",
		Short: "Post an instruction to targets by hand",
		Long: `Post an instruction to targets' download lists (SQL Server's
sp_post_msx_operation). Changes made through muster apply, job and target
commands post their instructions by themselves; this is for the rest.

Job operations act on a job and go to its targets (or those named):
  insert   re-send the whole job
  update   re-send the job's header (enabled, description)
  delete   delete the job there
  start    run it now (as muster job start)
  stop     cancel its running run (as muster job stop)

Target operations take no job and go to every target (or those named):
  set-poll   set the poll interval, --value 10 to 28800 seconds
  sync-time  measure the target's clock offset from the master's
  re-enlist  send the target's enlistment details again`,
		Example: `  muster post set-poll --value 300
  muster post sync-time --target db1
  muster post insert --job backup --target db2`,
		ValidArgs: []string{"insert", "update", "delete", "start", "stop", "set-poll", "sync-time", "re-enlist"},
		Args:      cobra.ExactArgs(1),
	}
	var cf clientFlags
	var req httpapi.PostRequest
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		req.Operation = muster.Operation(strings.ToUpper(args[0]))
		if !req.Operation.Valid() {
			return fmt.Errorf("%q is not an operation; use one of %s", args[0], strings.Join(cmd.ValidArgs, ", "))
		}
		if req.Operation == muster.OpSetPoll {
			if !cmd.Flags().Changed("value") {
				return errors.New("set-poll needs --value SECONDS (10 to 28800)")
			}
			if err := muster.ValidatePollInterval("--value", req.Value); err != nil {
				return err
			}
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		posted, err := c.Post(cmd.Context(), req)
		if err != nil {
			return err
		}
		for _, in := range posted {
			fmt.Fprintln(cmd.OutOrStdout(), postedLine(in))
		}
		if len(posted) == 0 {
			fmt.Fprintln(cmd.OutOrStdout(), "no target to post to")
		}
		return nil
	}
	cf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&req.Job, "job", "", "the job (job operations only)")
	f.Var(nonEmptyList{&req.Targets, "a target's name", "post to all the targets"}, "target", "post only to this target (repeatable)")
	f.IntVar(&req.Value, "value", 0, "set-poll: the poll interval in seconds")
	return cmd
}

// postedLine says what was posted to one target: for a START, the run it
// starts, and whether the job's max_parallel_targets holds it back (it has
// no sequence number until it is posted).
func postedLine(in muster.Instruction) string {
	what := string(in.Operation)
	if in.Job != "" {
		what += " " + in.Job
	}
	switch {
	case in.Queued:
		return fmt.Sprintf("queued %s for %s by max_parallel_targets: run %s", what, in.Target, in.RunID)
	case in.RunID != "":
		return fmt.Sprintf("posted %s to %s (seq %d): run %s", what, in.Target, in.Seq, in.RunID)
	}
	return fmt.Sprintf("posted %s to %s (seq %d)", what, in.Target, in.Seq)
}
