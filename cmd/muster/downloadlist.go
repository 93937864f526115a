package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
)

func newDownloadListCmd() *cobra.Command {
	var cf clientFlags
	var pf pageFlags
	var f httpapi.DownloadListFilter
	cmd := &cobra.Command{
		Use:   "downloadlist [--target T] [--job J] [--pending] [--errors] [--all | --cursor C]",
		Short: "Show the instructions posted to targets (the download list)",
		Long: `Show the instructions posted to targets, by target and sequence number.

STATUS is pending (not yet acknowledged), downloaded (applied), failed (the
target could not apply it; the target is blocked until it is superseded,
retried or deleted), superseded (a newer INSERT or DELETE of the same job, a
retry or a resync replaced it) or deleted (by an operator, or with its target
when the target was deleted or defected).

Sequence numbers are per target: where a SEQ alone is ambiguous, name the
target with --target.

It shows the newest --limit instructions, and then, on stderr, when older
ones remain, the --cursor that reads on from there: the instructions posted
before those. --all shows every one the filters select, reading them a page
at a time (with -o json or yaml, each page by target and sequence number).`,
		Example: `  muster downloadlist --errors
  muster downloadlist retry 42 --target web1
  muster downloadlist delete 42 --target web1
  muster downloadlist --all --job nightly-backup -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listPages(cmd, &cf, &pf, &f.Limit, func(c *httpapi.Client, cursor string) ([]muster.Instruction, string, error) {
				f.Cursor = cursor
				return c.DownloadListPage(cmd.Context(), f)
			}, func(w io.Writer, list []muster.Instruction) error {
				// --all's pages, each by target, as one table.
				list = slices.Clone(list)
				slices.SortStableFunc(list, func(a, b muster.Instruction) int {
					return cmp.Or(strings.Compare(a.Target, b.Target), cmp.Compare(a.Seq, b.Seq))
				})
				now := time.Now()
				t := newTable(w, "TARGET", "SEQ", "OPERATION", "JOB", "POSTED", "DOWNLOADED", "STATUS", "ERROR")
				for _, in := range list {
					downloaded := "-"
					if in.DownloadedAt != nil {
						downloaded = ago(in.DownloadedAt, now)
					}
					t.row(in.Target, strconv.FormatInt(in.Seq, 10), string(in.Operation), dash(in.Job), ago(&in.PostedAt, now),
						downloaded, string(in.Status), dash(in.Error))
				}
				return t.flush()
			})
		},
	}
	cf.register(cmd)
	cf.registerOutput(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.Target, "target", "", "only this target's instructions")
	fl.StringVar(&f.Job, "job", "", "only this job's instructions")
	fl.StringVar(&f.Operation, "operation", "", "only this operation (INSERT, UPDATE, DELETE, START, …)")
	fl.BoolVar(&f.Pending, "pending", false, "only instructions not yet acknowledged")
	fl.BoolVar(&f.Errors, "errors", false, "only failed instructions")
	boundedIntVar(fl, &f.Limit, "limit", 1000, 1, httpapi.MaxDownloadListLimit, "at most this many (the newest)")
	pf.register(cmd, "instruction", 10000)
	cmd.AddCommand(newDownloadListActionCmd("retry"), newDownloadListActionCmd("delete"))
	return cmd
}

func newDownloadListActionCmd(action string) *cobra.Command {
	var cf clientFlags
	var target string
	short := map[string]string{
		"retry":  "Repost a failed instruction as a new one, clearing the block",
		"delete": "Delete a pending or failed instruction, clearing the block",
	}[action]
	cmd := &cobra.Command{
		Use:   action + " SEQ [--target T]",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || seq < 1 {
				return fmt.Errorf("SEQ: %q is not a sequence number", args[0])
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			if action == "delete" {
				if err := c.DeleteInstruction(cmd.Context(), target, seq); err != nil {
					return withSupersededHint(err, target)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted instruction %d\n", seq)
				return nil
			}
			in, err := c.RetryInstruction(cmd.Context(), target, seq)
			if err != nil {
				return withSupersededHint(err, target)
			}
			fmt.Fprintln(cmd.OutOrStdout(), retriedLine(seq, in))
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&target, "target", "", "the target the instruction was posted to")
	return cmd
}

// retriedLine says what the retry of instruction seq posted, in: for a
// START, the run it starts, posted now or held back by the job's
// max_parallel_targets.
func retriedLine(seq int64, in muster.Instruction) string {
	switch {
	case in.Queued:
		return fmt.Sprintf("reposted instruction %d as %s %s on %s, queued by max_parallel_targets: run %s", seq, in.Operation, in.Job, in.Target, in.RunID)
	case in.RunID != "":
		return fmt.Sprintf("reposted instruction %d as %s %s %d on %s: run %s", seq, in.Operation, in.Job, in.Seq, in.Target, in.RunID)
	}
	return fmt.Sprintf("reposted instruction %d as %s %s %d on %s", seq, in.Operation, in.Job, in.Seq, in.Target)
}

// withSupersededHint adds, to the refusal to change an instruction that is
// no longer pending or failed, where to find the one that stands now: a
// retry, or a newer INSERT or DELETE of the job, supersedes a failed
// instruction with one under a new number.
func withSupersededHint(err error, target string) error {
	if muster.ErrorCode(err) != muster.EPRECONDITION {
		return err
	}
	where := "muster downloadlist --errors"
	if target != "" {
		where += " --target " + target
	}
	return fmt.Errorf("%w; a retry, or a newer INSERT or DELETE of the job, reposts or replaces a failed instruction under a new number: %s shows the one that stands failed now", err, where)
}
