package main

import (
	"errors"
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
	"github.com/musterhq/muster/internal/jobfile"
)

func newJobCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "List, show, start, enable, disable and delete jobs, and read their history",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newJobListCmd(), newJobShowCmd(), newJobDeleteCmd(), newJobEnableCmd(true), newJobEnableCmd(false),
		newJobStartCmd(), newJobStopCmd(), newJobHistoryCmd(), newJobLogsCmd())
	return cmd
}

func newJobListCmd() *cobra.Command {
	var cf clientFlags
	var category string
	cmd := &cobra.Command{
		Use:   "list [--category C]",
		Short: "List jobs with their last outcome on each target",
		Long: `List jobs with their category, how many targets each runs on (named in its
targets, or members of its groups) and its last outcome on each. With
--category, only the jobs of that category (in any case).`,
		Example: `  muster job list
  muster job list --category "Database Maintenance" -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return query(cmd, &cf, func(c *httpapi.Client) ([]muster.JobStatus, error) {
				return c.JobsInCategory(cmd.Context(), category)
			}, func(w io.Writer, jobs []muster.JobStatus) error {
				// TARGETS counts where the job runs: the targets it names
				// and its groups' members, each once (one outcome each).
				t := newTable(w, "NAME", "CATEGORY", "ENABLED", "VERSION", "TARGETS", "SCHEDULES", "LAST OUTCOMES")
				for _, j := range jobs {
					t.row(j.Name, dash(j.Category), yesNo(j.Enabled), strconv.FormatInt(j.Version, 10), strconv.Itoa(len(j.Outcomes)),
						strconv.Itoa(len(j.Schedules)), outcomeSummary(j.Outcomes))
				}
				return t.flush()
			})
		},
	}
	cf.register(cmd)
	cf.registerOutput(cmd)
	cmd.Flags().StringVar(&category, "category", "", "only the jobs of this category")
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
		Short: "Show a job: what it does, when, where, and how it last went",
		Long: `Show a job as it behaves: each step with what follows its success and its
failure, its retries, timeout, proxy (run_as) and connection; each schedule
in words; the job's time zone, timeout and misfire policy; and each target it
runs on, why (named in targets, or through which group), and how it last went
there.

With -o yaml, the job's definition as a job file holding that one job, which
muster apply -f takes back as it is (muster export writes several). With -o
json, everything the master holds about the job, outcomes included.

With --next N, list instead the next N fire times of its schedules on each
target, computed as the target will: in the job's time zone or the one the
target reports, with the target's jitter; none where the job is disabled.`,
		Example: `  muster job show backup
  muster job show backup -o yaml > backup.yaml
  muster job show backup --next 10`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if next == 0 && cf.output == outputYAML {
				c, err := cf.client()
				if err != nil {
					return err
				}
				js, err := c.Job(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return jobfile.Write(cmd.OutOrStdout(), []muster.Job{js.Job})
			}
			if next > 0 {
				return query(cmd, &cf, func(c *httpapi.Client) ([]muster.TargetFires, error) {
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
	boundedIntVar(cmd.Flags(), &next, "next", 0, 1, catalog.MaxPreview, "list the next N fire times per target instead (at most 1000)")
	return cmd
}

func printFires(w io.Writer, targets []muster.TargetFires) error {
	for _, tf := range targets {
		fmt.Fprintf(w, "%s (%s):\n", tf.Target, tf.TimeZone)
		switch {
		case tf.Disabled:
			fmt.Fprintln(w, "  none: the job is disabled there, its schedules do not fire")
		case len(tf.Fires) == 0:
			fmt.Fprintln(w, "  no upcoming fires")
		}
		for _, f := range tf.Fires {
			fmt.Fprintf(w, "  %s  %s\n", f.At.Format("Mon 2006-01-02 15:04:05 -07:00"), f.Schedule)
		}
	}
	return nil
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

func postedSuffix(ch muster.JobChange) string {
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
		Long: map[bool]string{
			true: `Enable a job's schedules. Targets whose override sets enabled: false stay
disabled.`,
			false: `Disable a job's schedules on every target; it can still be started by hand.
The job's overrides lose their enabled: true (an override that set nothing
else goes), as it would beat the job's own; apply the job file again to
bring them back.`}[enable],
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			ch, err := c.SetJobEnabled(cmd.Context(), args[0], enable)
			if err != nil {
				return err
			}
			if ch.Action == muster.ActionUnchanged {
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
--env sets variables for these runs only (over the job's and steps' env),
32 KiB as the request carries them (in JSON) at most; --step begins the
runs at that step instead of the first.

The request carries an idempotency key and is retried with it if the reply is
lost, so the job never starts twice for one command. A target that receives
the START after it expires (--expires, default 10m) records the run as
skipped; so does a target where the job is already running.

A target whose INSERT of the job failed does not hold the job (or holds an
older version of it): start says so instead of "started", and exits 1.

With --wait, wait until every run is recorded on the master with its output,
and exit 0 if all succeeded, 1 if any did not or a target refused its START
(with the target's reason, as soon as it does), or 2 if --timeout passed first
(saying which targets are outstanding, and which have not polled). While a
target is not collecting its START, --wait says how long it has not polled.
A restart of the master does not end the wait: it says the master does not
answer, and goes on when it does. Interrupted (Ctrl-C, or SIGTERM), --wait
stops waiting, not the runs: it says how to stop them, and exits 130 (143 for
SIGTERM).

With --group, start only on the job's targets that are in that group (a
target named with --target too must be one of them). With --batch, start in
waves of that many targets (a number, or a percentage of them), each wave
after the previous one has finished, and halt when more runs have failed
than --max-failures (0 by default). The master drives the
rollout: it goes on if this command is interrupted (which then exits 130),
and across a restart of the master. The command follows it, reporting per
target what ran, what failed and what was never started, and exits 1 if the
rollout halted or any run did not succeed. On a terminal each wave shows a
progress bar. muster rollout list shows a job's rollouts. The job's
max_parallel_targets, if set, also caps how many run at once.`,
		Example: `  muster job start backup
  muster job start backup --target db1 --target db2 --wait --timeout 30m
  muster job start deploy --group web --batch 25% --max-failures 1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// The master takes whole seconds, and 0 for its default.
			if expires < time.Second || expires > catalog.MaxStartExpiry {
				return fmt.Errorf("--expires: from 1s to %s, not %s", muster.Duration(catalog.MaxStartExpiry).Short(), muster.Duration(expires).Short())
			}
			if err := checkTimeout(timeout); err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			body.ExpiresInSeconds = int(expires / time.Second)
			if body.Env, err = parseEnv(env); err != nil {
				return err
			}
			if cmd.Flags().Changed("max-failures") && ro.batch == "" {
				// Without waves every target starts at once: nothing is
				// left to halt.
				return fmt.Errorf("--max-failures: applies to a start in waves; give --batch too")
			}
			if ro.group != "" || ro.batch != "" {
				ctx, in := interruptible(cmd.Context())
				err := ro.run(ctx, cmd.OutOrStdout(), c, args[0], body, timeout)
				return in.end(err, fmt.Sprintf("stopped following; the master goes on with the rollout: `muster rollout list %s --waves` shows how it goes, `muster job stop %s` cancels it", args[0], args[0]))
			}
			res, err := c.StartJob(cmd.Context(), args[0], body)
			if err != nil {
				return err
			}
			// What targets report (a run's message, a refusal) is
			// escaped on a terminal.
			w := forTerminal(cmd.OutOrStdout(), false)
			if wait {
				// The signals are taken before the first line is printed,
				// which a script may wait for before it interrupts.
				ctx, in := interruptible(cmd.Context())
				_, err := printStarted(ctx, w, c, res)
				if err == nil {
					err = waitForRuns(ctx, w, forTerminal(cmd.ErrOrStderr(), false), c, res, timeout)
				}
				stop := "muster job stop " + args[0]
				for _, t := range body.Targets {
					stop += " --target " + t
				}
				return in.end(err, fmt.Sprintf("stopped waiting; the runs go on on their targets: `%s` stops them, `muster job history %s` shows how they end", stop, args[0]))
			}
			unheld, err := printStarted(cmd.Context(), w, c, res)
			if err != nil {
				return err
			}
			if len(unheld) > 0 {
				return fmt.Errorf("not started on %s, which does not hold the job", strings.Join(unheld, ", "))
			}
			return nil
		},
	}
	cf.register(cmd)
	f := cmd.Flags()
	const allTargets = "start the job on all its targets"
	f.Var(nonEmptyList{&body.Targets, "a target's name", allTargets}, "target", "start only on this target (repeatable; default: all the job's targets)")
	f.BoolVar(&wait, "wait", false, "wait for the runs to finish and exit with their outcome")
	timeout, expires = 10*time.Minute, muster.DefaultStartExpiry
	f.Var((*duration)(&timeout), "timeout", "with --wait, --group or --batch (which always wait), how long to wait")
	f.Var((*duration)(&expires), "expires", "a target that gets the START later than this records a skipped run (1s to 24h)")
	f.StringArrayVar(&env, "env", nil, "set a variable for these runs, K=V (repeatable)")
	f.Var(nonEmpty{&body.Step, "a step's name", "begin at the first step"}, "step", "begin at this step")
	f.Var(nonEmpty{&ro.group, "a group's name", allTargets}, "group", "start only on the job's targets in this group")
	f.Var(nonEmpty{&ro.batch, "a number of targets or a percentage such as 25%", "start them all at once"}, "batch",
		"start in waves of this many targets: a number, or a percentage such as 25%")
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
	return env, muster.ValidateStartEnv("--env", env)
}

func newJobStopCmd() *cobra.Command {
	var cf clientFlags
	var targets []string
	cmd := &cobra.Command{
		Use:   "stop NAME [--target T]...",
		Short: "Stop a job's running runs",
		Long: `Post STOP to every target of the job, or to those named. Each target kills
the whole process tree of the job's running run (or cancels its SQL
statement) and records the run as canceled. A target the job was taken off
while a run of it went on there is stopped too, and may be named. The STARTs
max_parallel_targets holds back on the master for those targets are
dropped. Without --target, the job's running rollouts (muster job start
--batch) are cancelled too: their waves not yet posted never are; with it,
they go on, counting the stopped runs failed. What was dropped or cancelled
is said.`,
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
			for _, note := range ch.Notes {
				fmt.Fprintln(cmd.OutOrStdout(), note)
			}
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().Var(nonEmptyList{&targets, "a target's name", "stop the job on all its targets"}, "target", "stop only on this target (repeatable)")
	return cmd
}

func newJobHistoryCmd() *cobra.Command {
	var cf clientFlags
	var target string
	var limit int
	var steps, follow, raw bool
	var pf pageFlags
	cmd := &cobra.Command{
		Use:   "history NAME [--target T] [--limit N] [--all | --cursor C] [--follow]",
		Short: "Show a job's runs, newest first; with --follow, follow new runs as they go",
		Long: `Show a job's runs, newest first (with --steps, each step attempt with its
output): the newest --limit, and then, on stderr, when older runs remain, the
--cursor that reads on from there. --all shows every run the master holds of
the job, reading them a page at a time.

With --follow, go on after the listing: print each run of the job as it
starts, its output as the target uploads it (about once a second while a
step runs, each line prefixed with the target), and its outcome, until
interrupted: then it exits 130 (143 for SIGTERM), and the runs go on. Each
run is followed to its end, however many runs start at once or after it.

On a terminal, control characters in the output are printed as escapes
such as \x1b (--raw prints them as they are), as muster job logs does.`,
		Example: `  muster job history backup --steps
  muster job history backup --follow
  muster job history backup --all --target db1 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if follow && (pf.all || pf.cursor != "") {
				return errors.New("--follow: shows the newest runs, then new ones; give it without --all and --cursor")
			}
			if follow {
				if cf.output != "" && cf.output != outputTable {
					return fmt.Errorf("--follow prints text as runs go on; it takes no -o %s", cf.output)
				}
				c, err := cf.client()
				if err != nil {
					return err
				}
				// The signals are taken before the listing is printed,
				// which a script may wait for before it interrupts.
				ctx, in := interruptible(cmd.Context())
				err = query(cmd, &cf, func(c *httpapi.Client) ([]muster.Run, error) {
					return c.History(ctx, args[0], target, limit)
				}, printHistory(steps, raw))
				if err == nil {
					err = followHistory(ctx, forTerminal(cmd.OutOrStdout(), raw), forTerminal(cmd.ErrOrStderr(), false), c, args[0], target)
				}
				stopCmd := "muster job stop " + args[0]
				if target != "" {
					stopCmd += " --target " + target
				}
				return in.end(err, fmt.Sprintf("stopped following the history of %s; its runs go on: `%s` stops them", args[0], stopCmd))
			}
			return listPages(cmd, &cf, &pf, &limit, func(c *httpapi.Client, cursor string) ([]muster.Run, string, error) {
				return c.HistoryPage(cmd.Context(), args[0], target, limit, cursor)
			}, printHistory(steps, raw))
		},
	}
	cf.register(cmd)
	cf.registerOutput(cmd)
	f := cmd.Flags()
	f.StringVar(&target, "target", "", "only runs on this target")
	boundedIntVar(f, &limit, "limit", 20, 1, httpapi.MaxHistoryLimit, "at most this many runs")
	f.BoolVar(&steps, "steps", false, "show each step attempt with its output")
	f.BoolVarP(&follow, "follow", "f", false, "then follow the job's new runs and their output until interrupted")
	f.BoolVar(&raw, "raw", false, "print control characters in output as they are, even on a terminal")
	pf.register(cmd, "run", 100) // a run carries its output: fewer a page
	return cmd
}

// printHistory prints runs as a table, or with steps each attempt and its
// output.
func printHistory(steps, raw bool) func(io.Writer, []muster.Run) error {
	return func(w io.Writer, runs []muster.Run) error {
		if steps {
			printRunsWithSteps(forTerminal(w, raw), runs)
			return nil
		}
		t := newTable(w, "STARTED", "TARGET", "STATUS", "DURATION", "TRIGGER", "RUN ID", "MESSAGE")
		for _, r := range runs {
			t.row(r.StartedAt.Local().Format("2006-01-02 15:04:05"), r.Target, runStatus(r), muster.Took(r.DurationMS, r.Status.Finished()),
				r.Trigger, r.RunID, dash(r.Message))
		}
		return t.flush()
	}
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
		status := runStatus(r)
		if r.Status.Finished() {
			status += " in " + muster.Took(r.DurationMS, true)
		}
		fmt.Fprintf(w, "run %s on %s: %s (%s, started %s)\n", r.RunID, r.Target, status,
			r.Trigger, r.StartedAt.Local().Format("2006-01-02 15:04:05"))
		if r.Message != "" {
			fmt.Fprintf(w, "  %s\n", r.Message)
		}
		for _, s := range r.Steps {
			fmt.Fprintf(w, "  step %s (attempt %d): %s, %s, %s\n", s.Name, s.Attempt, s.Status, attemptOutcome(s), muster.Took(s.DurationMS, s.Status != muster.AttemptRunning))
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
