package main

import (
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
)

func newEventCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "event",
		Short: "List the events the master raised and targets forwarded",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newEventListCmd())
	return cmd
}

func newEventListCmd() *cobra.Command {
	var cf clientFlags
	var pf pageFlags
	var f httpapi.EventFilter
	var minSeverity string
	cmd := &cobra.Command{
		Use:   "list [--event E] [--target T] [--job J] [--min-severity N] [--all | --cursor C]",
		Short: "List events, newest first, whether or not an alert matched them",
		Long: `List events, newest first. SOURCE is master for the events the master raises
itself, and target for those a target forwarded (per its settings file:
events: {forward: all|unhandled|none, min_severity: N}). AT is when it
happened, by the clock of the server that raised it.

It lists the newest --limit events, and then, on stderr, when older ones
remain, the --cursor that reads on from there; --all lists every event the
filters select, reading them a page at a time.

` + eventHelp,
		Example: `  muster event list
  muster event list --target db1 --min-severity error
  muster event list --event run_failed --job nightly-backup -o json
  muster event list --all --target db1 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if minSeverity != "" {
				s, err := muster.ParseSeverity("--min-severity", minSeverity)
				if err != nil {
					return err
				}
				f.MinSeverity = s
			}
			return listPages(cmd, &cf, &pf, &f.Limit, func(c *httpapi.Client, cursor string) ([]muster.Event, string, error) {
				f.Cursor = cursor
				return c.EventsPage(cmd.Context(), f)
			}, func(w io.Writer, events []muster.Event) error {
				now := time.Now()
				t := newTable(w, "AT", "EVENT", "SEVERITY", "SOURCE", "TARGET", "JOB", "MESSAGE")
				for _, e := range events {
					t.row(ago(&e.At, now), string(e.Name), severityText(e.Severity), e.Source, dash(e.Target), dash(e.Job), oneLine(e.Message))
				}
				return t.flush()
			})
		},
	}
	cf.register(cmd)
	cf.registerOutput(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.Event, "event", "", "only this event")
	fl.StringVar(&f.Target, "target", "", "only events of this target")
	fl.StringVar(&f.Job, "job", "", "only events of this job")
	fl.StringVar(&minSeverity, "min-severity", "", "only events at or above this severity: 1-4 or info, warning, error, critical")
	boundedIntVar(fl, &f.Limit, "limit", 50, 1, httpapi.MaxEventsLimit, "at most this many (the newest)")
	pf.register(cmd, "event", 1000)
	return cmd
}
