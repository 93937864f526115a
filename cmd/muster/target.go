package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/target"
)

func newTargetCmd() *cobra.Command {
	var dataDir, configFile, logLevel string
	cmd := &cobra.Command{
		Use:   "target --data DIR [--config FILE]",
		Short: "Run an enlisted target, or list and show targets",
		Long: `With --data, run the target daemon of an enlisted data directory: it polls its
master, applies the jobs it is sent, runs them, and reports every run back.
Runs are kept in a local spool until the master has them, so nothing is lost
while the master is unreachable.

FILE holds this server's own settings, which the master never sees:

  time_zone: Europe/Paris      # the zone schedules run in (default: the system's)
  output_limit: 1MiB           # output kept per step attempt (head and tail)
  spool_limit: 10000           # runs kept while the master is unreachable
  run_retention: 24h           # how long runs the master has are kept here
  max_concurrent_runs: 0       # runs at once (0: no cap); the rest queue
  connections:                 # databases SQL steps run against
    warehouse: {driver: postgres, dsn: "postgres://muster@127.0.0.1/app"}
  proxies:                     # OS users steps may run as (run_as)
    backup: {user: backup}
  allow_downloaded_jobs_to_match_proxy_name: false

With a subcommand, list or show the targets enlisted in a master.`,
		Example: `  muster target --data /var/lib/muster-target --config /etc/muster/target.yaml
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
			settings, err := target.LoadSettings(configFile)
			if err != nil {
				return err
			}
			cfg := target.DefaultConfig()
			cfg.DataDir, cfg.Settings, cfg.Logger = dataDir, settings, log
			cfg.Subreaper = true
			m, err := target.New(cfg)
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			if err := m.Open(ctx); err != nil {
				return err
			}
			defer m.Close()
			if err := m.Run(ctx); errors.Is(err, target.ErrDefected) {
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
	cmd.AddCommand(newTargetListCmd(), newTargetShowCmd(), newTargetDeleteCmd())
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
instruction the target failed to apply is neither superseded nor cleared.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return query(cmd, &cf, func(c *httpapi.Client) ([]muster.Target, error) {
				return c.Targets(cmd.Context(), status)
			}, func(w io.Writer, targets []muster.Target) error {
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
	cmd.Flags().StringVar(&status, "status", "", "only targets with this status flag: normal, suspected_offline or blocked")
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

func printTarget(w io.Writer, tg muster.Target) error {
	now := time.Now()
	t := newTable(w, "FIELD", "VALUE")
	for _, kv := range [][2]string{
		{"name", tg.Name},
		{"status", statusText(tg)},
		{"location", dash(tg.Location)},
		{"enlisted", tg.EnlistedAt.Local().Format(time.RFC3339) + " by " + dash(tg.EnlistedBy)},
		{"last poll", ago(tg.LastPoll, now)},
		{"unread instructions", strconv.Itoa(tg.UnreadInstructions)},
		{"blocking instructions", strconv.Itoa(tg.BlockingInstructions)},
		{"poll interval", strconv.Itoa(tg.PollInterval) + "s"},
		{"local time", localTime(tg)},
		{"time zone", fmt.Sprintf("%s (UTC%+03d:%02d)", dash(tg.TimeZone), tg.UTCOffsetMinutes/60, abs(tg.UTCOffsetMinutes%60))},
		{"clock skew", millis(tg.ClockSkewMS)},
		{"spool", fmt.Sprintf("%d run(s) waiting, %d dropped", tg.SpoolDepth, tg.SpoolDropped)},
		{"version", fmt.Sprintf("%s (protocol %d)", dash(tg.Version), tg.Protocol)},
	} {
		t.row(kv[0], kv[1])
	}
	return t.flush()
}

func statusText(tg muster.Target) string {
	if len(tg.Flags) > 1 {
		return tg.Status + " (+" + tg.Flags[1] + ")"
	}
	return tg.Status
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
