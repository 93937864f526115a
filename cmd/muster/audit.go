package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/httpapi"
)

func newAuditCmd() *cobra.Command {
	var cf clientFlags
	var f httpapi.AuditFilter
	var since string
	var pf pageFlags
	cmd := &cobra.Command{
		Use:   "audit [--since D] [--actor NAME] [--job J] [--target T] [--all | --cursor C] [-o json]",
		Short: "Show who changed what, newest first",
		Long: `Show the audit log, newest first: every change made through the API (applies
with each job's diff, starts, stops, deletes, groups, enlistment tokens,
instructions, pauses, resyncs, history purges, operators, alerts, API keys),
and the enlistments, defections, resyncs and location changes targets made,
and the master's own history retention, each with who made it (the API key
and its role, the target, or the master itself), from which address, when,
and what changed.

The log is written in the same transaction as the change, so a change and
its record commit together. It cannot be changed or deleted through the API;
the master deletes entries older than --audit-max-age (365 days by default).
Reading it needs a key without scopes.

It prints the newest --limit entries, and then, on stderr, when older ones
remain, the --cursor that reads on from there. --all reads every entry the
filters select, a page at a time, printing each page as it comes: it gives
every entry recorded before it began exactly once, however many changes are
recorded while it reads.`,
		Example: `  muster audit --since 24h
  muster audit --actor ci --job nightly-backup
  muster audit --target db1 -o json
  muster audit --all --since 2026-01-01T00:00:00Z -o json > audit-2026.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return fmt.Errorf("--since: %w", err)
				}
				f.Since = t
			}
			return listPages(cmd, &cf, &pf, &f.Limit, func(c *httpapi.Client, cursor string) ([]muster.AuditEntry, string, error) {
				f.Cursor = cursor
				return c.AuditPage(cmd.Context(), f)
			}, printAudit)
		},
	}
	cf.register(cmd)
	cf.registerOutput(cmd)
	fl := cmd.Flags()
	fl.StringVar(&since, "since", "", "only changes since this long ago (24h, 7d) or this time (RFC 3339)")
	fl.StringVar(&f.Actor, "actor", "", "only changes by this API key, target or master")
	fl.StringVar(&f.Job, "job", "", "only changes to this job")
	fl.StringVar(&f.Target, "target", "", "only changes concerning this target")
	boundedIntVar(fl, &f.Limit, "limit", 100, 1, catalog.MaxAuditList, "at most this many (the newest)")
	pf.register(cmd, "entry", 1000)
	return cmd
}

// parseSince reads --since: a duration before now, or a time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := parseDays(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration such as 24h or 7d nor a time such as 2026-01-02T15:04:05Z", s)
	}
	return t, nil
}

// printAudit writes each entry as a line, then each of its changes
// indented below it.
func printAudit(w io.Writer, entries []muster.AuditEntry) error {
	if len(entries) == 0 {
		_, err := fmt.Fprintln(w, "no changes recorded")
		return err
	}
	for _, e := range entries {
		who := e.Actor.String()
		if e.Actor.Source != "" {
			who += " from " + e.Actor.Source
		}
		var on []string
		if e.Object != "" {
			on = append(on, e.Object)
		}
		if len(e.Jobs) > 0 {
			on = append(on, "job "+strings.Join(e.Jobs, ", "))
		}
		if len(e.Targets) > 0 {
			on = append(on, "target "+strings.Join(e.Targets, ", "))
		}
		fmt.Fprintf(w, "%s  %s  %s  %s\n", e.At.Local().Format("2006-01-02 15:04:05"), who, e.Action, strings.Join(on, "; "))
		for _, c := range e.Changes {
			fmt.Fprintf(w, "    %s\n", c)
		}
	}
	return nil
}
