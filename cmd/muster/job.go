package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/httpapi"
)

func newJobCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "List, show, start, enable, disable and delete jobs, and read their history",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newJobListCmd(), newJobShowCmd(), newJobDeleteCmd(), newJobEnableCmd(true), newJobEnableCmd(false),
		newJobStartCmd(), newJobStopCmd(), newJobHistoryCmd())
	return cmd
}

func newJobListCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs with their last outcome on each target",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return query(cmd, &cf, func(c *httpapi.Client) ([]muster.JobStatus, error) {
				return c.Jobs(cmd.Context())
			}, func(w io.Writer, jobs []muster.JobStatus) error {
				t := newTable(w, "NAME", "ENABLED", "VERSION", "TARGETS", "SCHEDULES", "LAST OUTCOMES")
				for _, j := range jobs {
					t.row(j.Name, yesNo(j.Enabled), strconv.FormatInt(j.Version, 10), strconv.Itoa(len(j.Targets)),
						strconv.Itoa(len(j.Schedules)), outcomeSummary(j.Outcomes))
				}
				return t.flush()
			})
		},
	}
	cf.register(cmd)
	cf.registerOutput(cmd)
	return cmd
}

// outcomeSummary counts last outcomes by status: "2 succeeded, 1 never run".
func outcomeSummary(outcomes []muster.JobTarget) string {
	counts := map[string]int{}
	for _, o := range outcomes {
		s := string(o.LastStatus)
		if s == "" {
			s = "never run"
		}
		counts[s]++
	}
	var parts []string
	for s, n := range counts {
		parts = append(parts, fmt.Sprintf("%d %s", n, s))
	}
	sort.Strings(parts)
	return dash(strings.Join(parts, ", "))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func newJobShowCmd() *cobra.Command {
	var cf clientFlags
	var next int
	cmd := &cobra.Command{
		Use:   "show NAME [--next N]",
		Short: "Show a job: definition, targets and last outcomes",
		Long: `Show a job: its definition, its targets and how it last went on each.

With --next N, list instead the next N fire times of its schedules on each
target, computed as the target will: in the job's time zone or the one the
target reports, with the target's jitter.`,
		Example: `  muster job show backup
  muster job show backup --next 10`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if next > 0 {
				return query(cmd, &cf, func(c *httpapi.Client) ([]catalog.TargetFires, error) {
					return c.NextFires(cmd.Context(), args[0], next)
				}, printFires)
			}
			return query(cmd, &cf, func(c *httpapi.Client) (muster.JobStatus, error) {
				return c.Job(cmd.Context(), args[0])
			}, printJob)
		},
	}
	cf.register(cmd)
	cf.registerOutput(cmd)
	cmd.Flags().IntVar(&next, "next", 0, "list the next N fire times per target instead")
	return cmd
}

func printFires(w io.Writer, targets []catalog.TargetFires) error {
	for _, tf := range targets {
		fmt.Fprintf(w, "%s (%s):\n", tf.Target, tf.TimeZone)
		if len(tf.Fires) == 0 {
			fmt.Fprintln(w, "  no upcoming fires")
		}
		for _, f := range tf.Fires {
			fmt.Fprintf(w, "  %s  %s\n", f.At.Format("Mon 2006-01-02 15:04:05 -07:00"), f.Schedule)
		}
	}
	return nil
}

func printJob(w io.Writer, j muster.JobStatus) error {
	fmt.Fprintf(w, "job %s (version %d, %s)\n", j.Name, j.Version, map[bool]string{true: "enabled", false: "disabled"}[j.Enabled])
	if j.Description != "" {
		fmt.Fprintf(w, "  %s\n", j.Description)
	}
	fmt.Fprintln(w, "steps:")
	for i, s := range j.Steps {
		what := s.Shell
		if s.Command != nil {
			what = strings.Join(quoteArgs(s.Command), " ")
		}
		fmt.Fprintf(w, "  %d. %s (%s): %s\n", i+1, s.Name, s.Kind(), what)
	}
	if len(j.Schedules) > 0 {
		fmt.Fprintln(w, "schedules:")
		for _, s := range j.Schedules {
			fmt.Fprintf(w, "  %s: %s\n", s.Name, describeSchedule(s))
		}
	}
	fmt.Fprintln(w, "targets:")
	now := time.Now()
	t := newTable(w, "  TARGET", "LAST STATUS", "STARTED", "DURATION", "MESSAGE")
	for _, o := range j.Outcomes {
		status, dur := "never run", "-"
		if o.LastStatus != "" {
			status, dur = string(o.LastStatus), millis(o.LastDurationMS)
		}
		t.row("  "+o.Target, status, ago(o.LastStartedAt, now), dur, dash(o.LastMessage))
	}
	return t.flush()
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$\\") {
			out[i] = strconv.Quote(a)
		} else {
			out[i] = a
		}
	}
	return out
}

func describeSchedule(s muster.Schedule) string {
	if s.Cron != "" {
		return "cron " + strconv.Quote(s.Cron)
	}
	return s.Kind()
}

func newJobDeleteCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a job; its targets are told to drop it, its history stays",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			ch, err := c.DeleteJob(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted job %s%s\n", ch.Job, postedSuffix(ch))
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}

func postedSuffix(ch catalog.JobChange) string {
	if len(ch.Instructions) == 0 {
		return ""
	}
	return "; posted " + strings.Join(ch.Instructions, ", ")
}

func newJobEnableCmd(enable bool) *cobra.Command {
	var cf clientFlags
	verb := map[bool]string{true: "enable", false: "disable"}[enable]
	cmd := &cobra.Command{
		Use:   verb + " NAME",
		Short: map[bool]string{true: "Enable a job's schedules", false: "Disable a job's schedules (it can still be started by hand)"}[enable],
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			ch, err := c.SetJobEnabled(cmd.Context(), args[0], enable)
			if err != nil {
				return err
			}
			if ch.Action == catalog.ActionUnchanged {
				fmt.Fprintf(cmd.OutOrStdout(), "job %s was already %sd\n", ch.Job, verb)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%sd job %s (version %d)%s\n", verb, ch.Job, ch.Version, postedSuffix(ch))
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}

func newJobStartCmd() *cobra.Command {
	var cf clientFlags
	var body httpapi.StartBody
	var wait bool
	var timeout, expires time.Duration
	var env []string
	var ro rolloutFlags
	cmd := &cobra.Command{
		Use:   "start NAME [--target T]... [--env K=V]... [--step NAME] [--wait [--timeout 10m]]",
		Short: "Run a job now on its targets",
		Long: `Post START to every target of the job, or to those named with --target.
--env sets variables for these runs only (over the job's and steps' env);
--step begins the runs at that step instead of the first.

The request carries an idempotency key and is retried with it if the reply is
lost, so the job never starts twice for one command. A target that receives
the START after it expires (--expires, default 10m) records the run as
skipped; so does a target where the job is already running.

With --wait, wait until every run is recorded on the master with its output,
and exit 0 if all succeeded, 1 if any did not, or 2 if --timeout passed first
(saying which targets are outstanding).

With --group, start only on the job's targets that are in that group. With
--batch, start in waves of that many targets (a number, or a percentage of
them), each wave after the previous one has finished, and stop when more runs
have failed than --max-failures (0 by default), reporting per target what
ran, what failed and what was never started. On a terminal each wave shows a
progress bar. The job's max_parallel_targets, if set, also caps how many run
at once.`,
		Example: `  muster job start backup
  muster job start backup --target db1 --target db2 --wait --timeout 30m
  muster job start deploy --group web --batch 25% --max-failures 1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			body.ExpiresInSeconds = int(expires / time.Second)
			if body.Env, err = parseEnv(env); err != nil {
				return err
			}
			if ro.group != "" || ro.batch != "" {
				return ro.run(cmd.Context(), cmd.OutOrStdout(), c, args[0], body, timeout)
			}
			res, err := c.StartJob(cmd.Context(), args[0], body)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			for _, r := range res.Runs {
				fmt.Fprintf(w, "started %s on %s: run %s\n", res.Job, r.Target, r.RunID)
			}
			if !wait {
				return nil
			}
			return waitForRuns(cmd.Context(), w, c, res, timeout)
		},
	}
	cf.register(cmd)
	f := cmd.Flags()
	f.StringSliceVar(&body.Targets, "target", nil, "start only on this target (repeatable; default: all the job's targets)")
	f.BoolVar(&wait, "wait", false, "wait for the runs to finish and exit with their outcome")
	f.DurationVar(&timeout, "timeout", 10*time.Minute, "with --wait, --group or --batch (which always wait), how long to wait")
	f.DurationVar(&expires, "expires", muster.DefaultStartExpiry, "a target that gets the START later than this records a skipped run")
	f.StringArrayVar(&env, "env", nil, "set a variable for these runs, K=V (repeatable)")
	f.StringVar(&body.Step, "step", "", "begin at this step")
	f.StringVar(&ro.group, "group", "", "start only on the job's targets in this group")
	f.StringVar(&ro.batch, "batch", "", "start in waves of this many targets: a number, or a percentage such as 25%")
	f.IntVar(&ro.maxFailures, "max-failures", 0, "with --batch, stop when more runs than this have failed")
	return cmd
}

// parseEnv reads K=V pairs.
func parseEnv(pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	env := map[string]string{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--env: %q is not K=V", p)
		}
		env[k] = v
	}
	return env, muster.ValidateEnv("--env", env)
}

func newJobStopCmd() *cobra.Command {
	var cf clientFlags
	var targets []string
	cmd := &cobra.Command{
		Use:   "stop NAME [--target T]...",
		Short: "Stop a job's running runs",
		Long: `Post STOP to every target of the job, or to those named. Each target kills
the whole process tree of the job's running run (or cancels its SQL
statement) and records the run as canceled.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			ch, err := c.StopJob(cmd.Context(), args[0], targets)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "posted %s\n", strings.Join(ch.Instructions, ", "))
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().StringSliceVar(&targets, "target", nil, "stop only on this target (repeatable)")
	return cmd
}

// waitForRuns follows the runs of a start until all are recorded finished,
// prints each outcome, and returns the exit the runs call for: nil if all
// succeeded, 1 if any did not, 2 if the timeout passed first.
func waitForRuns(ctx context.Context, w io.Writer, c *httpapi.Client, res catalog.StartResult, timeout time.Duration) error {
	runs, err := awaitRuns(ctx, c, res, time.Now().Add(timeout), nil)
	if err != nil {
		return err
	}
	failed, outstanding := report(w, res, runs)
	if len(outstanding) > 0 {
		return &exitError{code: 2, err: fmt.Errorf("timed out after %s; still waiting for %s", timeout, strings.Join(outstanding, ", "))}
	}
	if failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d runs did not succeed", failed, len(res.Runs))}
	}
	return nil
}

// awaitRuns waits until every run of a start is recorded finished, or the
// deadline, and returns the runs by id. progress, if set, hears how many
// are finished whenever that may have changed.
func awaitRuns(ctx context.Context, c *httpapi.Client, res catalog.StartResult, deadline time.Time, progress func(int)) (map[string]muster.Run, error) {
	ids := make([]string, len(res.Runs))
	for i, r := range res.Runs {
		ids[i] = r.RunID
	}
	byID := map[string]muster.Run{}
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return byID, nil
		}
		runs, err := c.Runs(ctx, ids, min(left, httpapi.MaxRunWait-5*time.Second))
		if err != nil && muster.ErrorCode(err) != muster.EUNAVAILABLE {
			return nil, err
		}
		for _, r := range runs {
			byID[r.RunID] = r
		}
		if progress != nil {
			progress(countDone(runs))
		}
		if err == nil && len(runs) == len(ids) && countDone(runs) == len(runs) {
			return byID, nil
		}
		if err != nil {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Second): // the master is restarting: try again
			}
		}
	}
}

// report prints each finished run of a start, and returns how many did not
// succeed and which targets are still outstanding.
func report(w io.Writer, res catalog.StartResult, byID map[string]muster.Run) (failed int, outstanding []string) {
	for _, s := range res.Runs {
		r, ok := byID[s.RunID]
		switch {
		case !ok:
			outstanding = append(outstanding, fmt.Sprintf("%s (run %s: not yet recorded)", s.Target, s.RunID))
		case !r.Status.Finished():
			outstanding = append(outstanding, fmt.Sprintf("%s (run %s: %s)", s.Target, s.RunID, r.Status))
		default:
			msg := ""
			if r.Message != "" {
				msg = ": " + r.Message
			}
			fmt.Fprintf(w, "%s on %s: %s in %s%s\n", res.Job, s.Target, r.Status, millis(r.DurationMS), msg)
			if r.Status != muster.RunSucceeded {
				failed++
			}
		}
	}
	return failed, outstanding
}

func countDone(runs []muster.Run) int {
	n := 0
	for _, r := range runs {
		if r.Status.Finished() {
			n++
		}
	}
	return n
}

func newJobHistoryCmd() *cobra.Command {
	var cf clientFlags
	var target string
	var limit int
	var steps bool
	cmd := &cobra.Command{
		Use:   "history NAME [--target T] [--limit N]",
		Short: "Show a job's runs, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return query(cmd, &cf, func(c *httpapi.Client) ([]muster.Run, error) {
				return c.History(cmd.Context(), args[0], target, limit)
			}, func(w io.Writer, runs []muster.Run) error {
				if steps {
					printRunsWithSteps(w, runs)
					return nil
				}
				t := newTable(w, "STARTED", "TARGET", "STATUS", "DURATION", "TRIGGER", "RUN ID", "MESSAGE")
				for _, r := range runs {
					t.row(r.StartedAt.Local().Format("2006-01-02 15:04:05"), r.Target, runStatus(r), millis(r.DurationMS),
						r.Trigger, r.RunID, dash(r.Message))
				}
				return t.flush()
			})
		},
	}
	cf.register(cmd)
	cf.registerOutput(cmd)
	f := cmd.Flags()
	f.StringVar(&target, "target", "", "only runs on this target")
	f.IntVar(&limit, "limit", 20, "at most this many runs")
	f.BoolVar(&steps, "steps", false, "show each step attempt with its output")
	return cmd
}

// runStatus renders a run's status, noting a running run whose target is
// suspected offline.
func runStatus(r muster.Run) string {
	if r.TargetOffline {
		return string(r.Status) + " (target suspected offline)"
	}
	return string(r.Status)
}

func printRunsWithSteps(w io.Writer, runs []muster.Run) {
	for _, r := range runs {
		fmt.Fprintf(w, "run %s on %s: %s in %s (%s, started %s)\n", r.RunID, r.Target, runStatus(r), millis(r.DurationMS),
			r.Trigger, r.StartedAt.Local().Format("2006-01-02 15:04:05"))
		if r.Message != "" {
			fmt.Fprintf(w, "  %s\n", r.Message)
		}
		for _, s := range r.Steps {
			fmt.Fprintf(w, "  step %s (attempt %d): %s, %s, %s\n", s.Name, s.Attempt, s.Status, attemptOutcome(s), millis(s.DurationMS))
			if s.Output != "" {
				for _, line := range strings.Split(strings.TrimRight(s.Output, "\n"), "\n") {
					fmt.Fprintf(w, "    | %s\n", line)
				}
			}
		}
	}
}

// attemptOutcome says how an attempt ended: its exit code, or, for what
// has none (a SQL statement, a process killed by a signal), its outcome in
// words ("42 rows affected", "timed out after 30s").
func attemptOutcome(s muster.StepAttempt) string {
	switch {
	case s.ExitCode != nil:
		return "exit " + strconv.Itoa(*s.ExitCode)
	case s.Message != "":
		return s.Message
	}
	return "exit -"
}
