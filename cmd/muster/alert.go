package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
)

// eventHelp lists the events, for help texts.
const eventHelp = `  event                severity     raised by   when
  run_failed           3 error      master      a run ended failed, timed_out or abandoned
  step_failed          2 warning    master      a step attempt failed or timed out
  target_offline       3 error      master      a target has not polled for 3 poll intervals
  target_online        1 info       master      an offline target polls again
  no_success           4 critical   master      a scheduled job had no successful run on a
                                                target within the alert's --window
  instruction_failed   3 error      target      a target could not apply an instruction
  spool_full           3 error      target      the spool dropped runs the master never got
  clock_skew           2 warning    target      a target's clock is off the master's
  agent_error          3 error      target      the target daemon logged an error
  cert_renewal_failed  3 error      target      a target could not renew its certificate`

func newAlertCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alert",
		Short: "Manage alerts: which events notify which operators, and what they sent",
		Long: `An alert names an event (or any), optional filters, and the operators to
notify. When a matching event is raised, the master sends each operator a
notification on each of its addresses, retrying for a few minutes while a
receiver fails; "muster alert history" shows what fired and how delivery went.

Events, with their severity (1 info, 2 warning, 3 error, 4 critical):

` + eventHelp,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newAlertListCmd(), newAlertCreateCmd(), newAlertEnableCmd(true), newAlertEnableCmd(false),
		newAlertDeleteCmd(), newAlertHistoryCmd())
	return cmd
}

func newAlertListCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List alerts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return query(cmd, &cf, func(c *httpapi.Client) ([]muster.Alert, error) {
				return c.Alerts(cmd.Context())
			}, func(w io.Writer, alerts []muster.Alert) error {
				t := newTable(w, "NAME", "EVENT", "JOB", "TARGET", "MIN SEVERITY", "WINDOW", "NOTIFY", "ENABLED")
				for _, a := range alerts {
					window := "-"
					if a.Window != 0 {
						window = a.Window.Short()
					}
					t.row(a.Name, string(a.Event), dash(a.Job), dash(a.Target), severityText(a.MinSeverity), window, strings.Join(a.Notify, ","),
						yesNo(a.Enabled))
				}
				return t.flush()
			})
		},
	}
	cf.register(cmd)
	cf.registerOutput(cmd)
	return cmd
}

func newAlertCreateCmd() *cobra.Command {
	var cf clientFlags
	var req httpapi.AlertRequest
	var on, minSeverity string
	var window time.Duration
	cmd := &cobra.Command{
		Use:   "create NAME --on EVENT [--job J] [--target T] [--min-severity N] [--window 26h] --notify OPERATOR",
		Short: "Create an alert: an event, optional filters, the operators to notify",
		Long: `Create an alert. It fires for each event raised that matches all it names:
the event (or any), the job, the target, and a severity at or above
--min-severity (a number, or info, warning, error, critical). --notify names an
operator; repeat it for several.

A no_success alert watches enabled jobs that have a schedule: it fires when one
has had no successful run on a target for --window (default 26h), by the
master's clock, once for each such stretch.

` + eventHelp,
		Example: `  muster alert create backup-failed --on run_failed --job nightly-backup --notify oncall
  muster alert create backup-stale --on no_success --job nightly-backup --window 26h --notify oncall
  muster alert create db1-down --on target_offline --target db1 --notify oncall --notify MSXOperator
  muster alert create critical --on any --min-severity critical --notify oncall`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name, req.Event = args[0], muster.EventName(on)
			if minSeverity != "" {
				s, err := muster.ParseSeverity("--min-severity", minSeverity)
				if err != nil {
					return err
				}
				req.MinSeverity = s
			}
			if window != 0 {
				req.Window = muster.Duration(window)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			a, err := c.CreateAlert(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "alert %s created: %s notifies %s\n", a.Name, alertScope(a), strings.Join(a.Notify, ", "))
			return nil
		},
	}
	cf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&on, "on", "", "the event that fires the alert, or any (required)")
	f.StringVar(&req.Job, "job", "", "only events of this job")
	f.StringVar(&req.Target, "target", "", "only events of this target")
	f.StringVar(&minSeverity, "min-severity", "", "only events at or above this severity: 1-4 or info, warning, error, critical")
	f.Var((*days)(&window), "window", "for no_success: how long a job may go without success, e.g. 26h or 7d (default 26h)")
	f.StringArrayVar(&req.Notify, "notify", nil, "an operator to notify; repeat for several (required)")
	cmd.MarkFlagRequired("on")
	cmd.MarkFlagRequired("notify")
	return cmd
}

// alertScope says what an alert matches: "run_failed of job backup on web1".
func alertScope(a muster.Alert) string {
	s := string(a.Event)
	if a.Event == muster.EventAny {
		s = "any event"
	}
	if a.Window != 0 {
		s += " within " + a.Window.Short()
	}
	if a.Job != "" {
		s += " of job " + a.Job
	}
	if a.Target != "" {
		s += " on " + a.Target
	}
	if a.MinSeverity != 0 {
		s += " at severity " + severityText(a.MinSeverity) + " or above"
	}
	return s
}

func newAlertEnableCmd(enable bool) *cobra.Command {
	var cf clientFlags
	use, short := "disable NAME", "Disable an alert: it notifies nobody until it is enabled again"
	if enable {
		use, short = "enable NAME", "Enable a disabled alert"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + `.

A disabled alert keeps its definition and its history. Events raised while it
is disabled do not fire it, and a no_success alert does not watch its jobs;
once enabled, it fires for the events raised from then on, and a no_success
alert watches its jobs again from the next check.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			a, err := c.SetAlertEnabled(cmd.Context(), args[0], enable)
			if err != nil {
				return err
			}
			state := "disabled"
			if a.Enabled {
				state = "enabled"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "alert %s %s\n", a.Name, state)
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}

func newAlertDeleteCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an alert (its history stays)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			if err := c.DeleteAlert(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "alert %s deleted\n", args[0])
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}

func newAlertHistoryCmd() *cobra.Command {
	var cf clientFlags
	var pf pageFlags
	var f httpapi.AlertHistoryFilter
	var status string
	cmd := &cobra.Command{
		Use:   "history [--alert A] [--operator O] [--status S] [--all | --cursor C]",
		Short: "Show what alerts fired and whether delivery succeeded",
		Long: `Show notifications, newest first: one for each event, alert, operator and
channel. STATUS is pending (attempts remain: "pending (next in 30s)"),
delivered, or failed (the receiver refused it, attempts ran out, or the
operator has no address, shown as channel "none"). ERROR is the last
attempt's.

It shows the newest --limit notifications, and then, on stderr, when older
ones remain, the --cursor that reads on from there; --all shows every one
the filters select, reading them a page at a time.`,
		Example: `  muster alert history
  muster alert history --status failed
  muster alert history --alert backup-failed -o json
  muster alert history --all --status failed -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.Status = muster.DeliveryStatus(status)
			return listPages(cmd, &cf, &pf, &f.Limit, func(c *httpapi.Client, cursor string) ([]muster.Delivery, string, error) {
				f.Cursor = cursor
				return c.AlertHistoryPage(cmd.Context(), f)
			}, func(w io.Writer, list []muster.Delivery) error {
				now := time.Now()
				t := newTable(w, "FIRED", "ALERT", "EVENT", "TARGET", "JOB", "OPERATOR", "CHANNEL", "STATUS", "ATTEMPTS", "ERROR")
				for _, d := range list {
					st := string(d.Status)
					if d.Status == muster.DeliveryPending && d.NextAttemptAt != nil {
						st += " (next " + ago(d.NextAttemptAt, now) + ")"
					}
					t.row(ago(&d.CreatedAt, now), d.Alert, string(d.Event.Name), dash(d.Event.Target), dash(d.Event.Job), d.Operator,
						d.Channel, st, strconv.Itoa(d.Attempts), dash(oneLine(d.LastError)))
				}
				return t.flush()
			})
		},
	}
	cf.register(cmd)
	cf.registerOutput(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.Alert, "alert", "", "only this alert's notifications")
	fl.StringVar(&f.Operator, "operator", "", "only notifications to this operator")
	fl.StringVar(&status, "status", "", "only pending, delivered or failed notifications")
	boundedIntVar(fl, &f.Limit, "limit", 50, 1, httpapi.MaxEventsLimit, "at most this many (the newest)")
	pf.register(cmd, "notification", 1000)
	return cmd
}

// severityText renders a severity for tables: "3 error", or "-" for none.
func severityText(s muster.Severity) string {
	if s == 0 {
		return "-"
	}
	return s.Numbered()
}

// oneLine keeps a message on one table line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
