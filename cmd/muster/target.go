package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agent"
	"github.com/musterhq/muster/internal/httpapi"
)

func newTargetCmd() *cobra.Command {
	var dataDir, configFile, logLevel, metricsListen, traceFile string
	cmd := &cobra.Command{
		Use:   "target --data DIR [--config FILE]",
		Short: "Run an enlisted target, or list, show and manage targets",
		Long: `With --data, run the target daemon of an enlisted data directory: it polls its
master, applies the jobs it is sent, runs them, and reports every run back.
Runs are kept in a local spool until the master has them, so nothing is lost
while the master is unreachable.

FILE holds this server's own settings, which the master never sees:

  time_zone: Europe/Paris      # the zone schedules run in (default: the system's)
  output_limit: 1MiB           # output kept per step attempt (head and tail)
  run_output_limit: 16MiB      # output kept per run, all its attempts together
  spool_limit: 10000           # runs kept while the master is unreachable
  run_retention: 24h           # how long runs the master has are kept here
  max_concurrent_runs: 0       # runs at once (0: no cap); the rest queue
  connections:                 # databases SQL steps run against
    warehouse: {driver: postgres, dsn: "postgres://muster@127.0.0.1/app"}
  proxies:                     # OS users steps may run as (run_as)
    backup: {user: backup}
  allow_downloaded_jobs_to_match_proxy_name: false

With --metrics-listen ADDR, the target serves its own Prometheus metrics at
http://ADDR/metrics: runs started and finished, its spool, failed polls, the
last poll its master answered, and whether its disk is full (docs/metrics.md).

With --trace FILE, the target appends to FILE a line of JSON for each run a
START launches: when the master wrote the poll reply that brought it, when the
target read it, committed the run, and when exec of the first step returned
(Unix nanoseconds). muster bench dispatch reads it to time each hop.

With a subcommand, manage the targets enlisted in a master: list, show,
pause, resume, resync, poll, set or delete them.`,
		Example: `  muster target --data /var/lib/muster-target --config /etc/muster/target.yaml
  muster target --data /var/lib/muster-target --metrics-listen 127.0.0.1:9101
  muster target list
  muster target show web1 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataDir == "" {
				return cmd.Help()
			}
			log, err := newLogger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			settings, err := agent.LoadSettings(configFile)
			if err != nil {
				return err
			}
			if warning := settings.Exposure(configFile); warning != "" {
				log.Warn(warning)
			}
			cfg := agent.DefaultConfig()
			cfg.DataDir, cfg.Settings, cfg.Logger = dataDir, settings, log
			cfg.MetricsListen = metricsListen
			if traceFile != "" {
				f, err := os.OpenFile(traceFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
				if err != nil {
					return fmt.Errorf("--trace: %w", err)
				}
				defer f.Close()
				cfg.Trace = f
			}
			cfg.Subreaper = true
			cfg.ReleaseStartupCode = true
			m, err := agent.New(cfg)
			if err != nil {
				return err
			}
			ctx, stop := daemonContext(log, m.Hurry)
			defer stop()
			if err := m.Open(ctx); err != nil {
				return err
			}
			defer m.Close()
			if err := m.Run(ctx); errors.Is(err, agent.ErrDefected) {
				fmt.Fprintln(cmd.OutOrStdout(), "this target defected from its master; enlist it again to use it")
				return nil
			} else {
				return err
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data", "", "the target's data directory (made by muster enlist)")
	f.StringVar(&configFile, "config", "", "the target's settings file (YAML)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&traceFile, "trace", "", "append the times of each START's hops on this target to this file, a JSON line a run (for muster bench dispatch)")
	f.StringVar(&metricsListen, "metrics-listen", "", "serve this target's own Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9101; plain HTTP, so keep it on loopback or a management network); off by default")
	cmd.AddCommand(newTargetListCmd(), newTargetShowCmd(), newTargetSetCmd(), newTargetDeleteCmd(), newTargetResyncCmd(),
		newTargetPauseCmd(true), newTargetPauseCmd(false), newTargetPollCmd())
	return cmd
}

func newTargetListCmd() *cobra.Command {
	var cf clientFlags
	var status string
	cmd := &cobra.Command{
		Use:   "list [--status STATUS]",
		Short: "List enlisted targets with their status",
		Long: `List enlisted targets. STATUS is derived when read: suspected_offline after
three poll intervals without a poll (master clock), blocked while an
instruction the target failed to apply is neither superseded nor cleared.
Flags follow it in brackets: paused, disk_full (the target's data directory
is full: its runs' outcomes wait in its memory, and its schedules' fires are
recorded skipped, until space is freed) and deleted.

With --status defected, list instead the targets that left the fleet: those
that defected (muster defect on the target), and those deleted on the master
(muster target delete), with when, how and by whom. Their history stays.`,
		Example: `  muster target list
  muster target list --status blocked
  muster target list --status defected`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return query(cmd, &cf, func(c *httpapi.Client) ([]muster.Target, error) {
				return c.Targets(cmd.Context(), status)
			}, func(w io.Writer, targets []muster.Target) error {
				if status == muster.StatusDefected {
					t := newTable(w, "NAME", "DEFECTED", "HOW", "ENLISTED", "LOCATION")
					for _, tg := range targets {
						t.row(tg.Name, timeOrDash(tg.DefectedAt), dash(tg.Departure), tg.EnlistedAt.Local().Format(time.RFC3339), dash(tg.Location))
					}
					return t.flush()
				}
				now := time.Now()
				t := newTable(w, "NAME", "STATUS", "LAST POLL", "UNREAD", "POLL", "LOCAL TIME", "VERSION", "LOCATION")
				for _, tg := range targets {
					t.row(tg.Name, statusText(tg), ago(tg.LastPoll, now), strconv.Itoa(tg.UnreadInstructions),
						strconv.Itoa(tg.PollInterval)+"s", localTime(tg), dash(tg.Version), dash(tg.Location))
				}
				return t.flush()
			})
		},
	}
	cf.register(cmd)
	cf.registerOutput(cmd)
	cmd.Flags().StringVar(&status, "status", "", "only targets with this status or flag: normal, suspected_offline, blocked, paused, disk_full, deleted, or defected (targets that left)")
	return cmd
}

func newTargetShowCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show one target",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return query(cmd, &cf, func(c *httpapi.Client) (muster.Target, error) {
				return c.Target(cmd.Context(), args[0])
			}, printTarget)
		},
	}
	cf.register(cmd)
	cf.registerOutput(cmd)
	return cmd
}

func newTargetSetCmd() *cobra.Command {
	var cf clientFlags
	var location, description string
	cmd := &cobra.Command{
		Use:   "set NAME [--location TEXT] [--description TEXT]",
		Short: "Change where a target is, or what it is for",
		Long: `Change an enlisted target's location (set when it enlisted, with muster
enlist --location) or its description. A flag left out leaves that field as
it is; an empty value clears it. The change is recorded in the audit log.

The location is at most 200 characters, the description at most 1000, each on
one line. A target that is enlisted again (RE-ENLIST) reports the location it
was enlisted with, if it has one.`,
		Example: `  muster target set web1 --location "dc2, rack 14"
  muster target set web1 --description "front end, Europe" -o json
  muster target set web1 --description ""`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var u httpapi.TargetUpdate
			if cmd.Flags().Changed("location") {
				u.Location = &location
			}
			if cmd.Flags().Changed("description") {
				u.Description = &description
			}
			if u.Location == nil && u.Description == nil {
				return errors.New("give --location, --description or both")
			}
			return query(cmd, &cf, func(c *httpapi.Client) (muster.Target, error) {
				return c.UpdateTarget(cmd.Context(), args[0], u)
			}, printTarget)
		},
	}
	cf.register(cmd)
	cf.registerOutput(cmd)
	cmd.Flags().StringVar(&location, "location", "", "where the target is, e.g. \"dc2, rack 14\"")
	cmd.Flags().StringVar(&description, "description", "", "what the target is for")
	return cmd
}

func printTarget(w io.Writer, tg muster.Target) error {
	now := time.Now()
	t := newTable(w, "FIELD", "VALUE")
	t.row("name", tg.Name)
	t.row("status", statusText(tg))
	if tg.Status == muster.StatusDefected {
		// A target that left: what it was, and when and why it left; the
		// rest described it while it was enlisted.
		t.row("defected", timeOrDash(tg.DefectedAt)+": "+dash(tg.Departure))
	} else if tg.Departure != "" {
		t.row("deleted", tg.Departure)
	}
	for _, kv := range [][2]string{
		{"location", dash(tg.Location)},
		{"description", dash(tg.Description)},
		{"enlisted", tg.EnlistedAt.Local().Format(time.RFC3339) + " by " + dash(tg.EnlistedBy)},
		{"last poll", ago(tg.LastPoll, now)},
		{"unread instructions", strconv.Itoa(tg.UnreadInstructions)},
		{"blocking instructions", strconv.Itoa(tg.BlockingInstructions)},
		{"poll interval", strconv.Itoa(tg.PollInterval) + "s"},
		{"local time", localTime(tg)},
		{"time zone", fmt.Sprintf("%s (UTC%+03d:%02d)", dash(tg.TimeZone), tg.UTCOffsetMinutes/60, abs(tg.UTCOffsetMinutes%60))},
		{"clock skew", millis(tg.ClockSkewMS)},
		{"clock offset", clockOffset(tg)},
		{"spool", fmt.Sprintf("%d run(s) waiting, %d dropped", tg.SpoolDepth, tg.SpoolDropped)},
		{"version", fmt.Sprintf("%s (protocol %d)", dash(tg.Version), tg.Protocol)},
	} {
		t.row(kv[0], kv[1])
	}
	return t.flush()
}

// clockOffset is the offset from the master's clock a target measured at
// its last SYNC-TIME (muster post sync-time), or says there was none.
func clockOffset(tg muster.Target) string {
	if tg.ClockOffsetMS == nil {
		return "- (no SYNC-TIME yet)"
	}
	return millis(*tg.ClockOffsetMS) + " (by SYNC-TIME)"
}

// statusText is a target's status, with every flag it has besides:
// "normal (+paused, +disk_full)".
func statusText(tg muster.Target) string {
	var more []string
	for _, f := range tg.Flags {
		if f != tg.Status {
			more = append(more, f)
		}
	}
	if len(more) == 0 {
		return tg.Status
	}
	return tg.Status + " (+" + strings.Join(more, ", +") + ")"
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format(time.RFC3339)
}

func localTime(tg muster.Target) string {
	if tg.LocalTime == nil {
		return "-"
	}
	return tg.LocalTime.Format("2006-01-02 15:04:05 -07:00")
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func newTargetResyncCmd() *cobra.Command {
	var cf clientFlags
	var all bool
	cmd := &cobra.Command{
		Use:   "resync NAME... | --all",
		Short: "Re-send targets every job they should run",
		Long: `Drop the targets' pending and failed instructions and post DELETE of every job,
then an INSERT of each job they should run (SQL Server's
sp_resync_targetserver). Use it when a target's jobs may have drifted, for
example after its local store was restored.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return errors.New("name targets, or give --all")
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			done, err := c.Resync(cmd.Context(), httpapi.ResyncBody{Targets: args, All: all})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "resynced %s\n", dash(strings.Join(done, ", ")))
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "resync every target")
	return cmd
}

func newTargetPauseCmd(pause bool) *cobra.Command {
	var cf clientFlags
	var group string
	verb := map[bool]string{true: "pause", false: "resume"}[pause]
	long := map[bool]string{
		true: `Pause targets (or every member of a group): a paused target fires no
schedules and records STARTs as skipped runs, until it is resumed. Use it for
maintenance windows, or to drain a server before a reboot. The target learns
of it at once if it is polling, and keeps the state across restarts.`,
		false: `Resume paused targets (or every member of a group). Fires that fell in the
pause are not run late.`,
	}[pause]
	cmd := &cobra.Command{
		Use:   verb + " NAME... | --group G",
		Short: map[bool]string{true: "Pause targets: no schedules, STARTs skipped", false: "Resume paused targets"}[pause],
		Long:  long,
		RunE: func(cmd *cobra.Command, args []string) error {
			if group == "" && len(args) == 0 {
				return errors.New("name targets, or give --group")
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			done, err := c.Pause(cmd.Context(), httpapi.PauseBody{Targets: args, Group: group}, pause)
			if err != nil {
				return err
			}
			if len(done) == 0 {
				// Only a group can come back empty: named targets are
				// each enlisted, or refused.
				fmt.Fprintf(cmd.OutOrStdout(), "no target to %s: group %s has no enlisted members\n", verb, group)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%sd %s\n", verb, strings.Join(done, ", "))
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&group, "group", "", "every member of this group")
	return cmd
}

func newTargetPollCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "poll NAME",
		Short: "Make a target poll now (force poll)",
		Long: `Make a target answer its held poll and poll again now, refreshing its
heartbeat: last poll, local time, clock skew, spool. (Instructions reach a
polling target within milliseconds anyway; this refreshes its status.)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			res, err := c.ForcePoll(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if !res.Connected {
				tg, err := c.Target(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return fmt.Errorf("%s has no poll open (last poll %s); it polls again when it reconnects", res.Target, ago(tg.LastPoll, time.Now()))
			}
			// Wait briefly for the new heartbeat, then show it.
			var tg muster.Target
			for i := 0; i < 20; i++ {
				if tg, err = c.Target(cmd.Context(), args[0]); err != nil {
					return err
				}
				if tg.LastPoll != nil && time.Since(*tg.LastPoll) < time.Second {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s polled: %s, last poll %s, local time %s\n", tg.Name, statusText(tg), ago(tg.LastPoll, time.Now()), localTime(tg))
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}
