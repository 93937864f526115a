package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster/internal/agent"
)

func newEnlistCmd() *cobra.Command {
	var o agent.EnlistOptions
	var tokenFile string
	cmd := &cobra.Command{
		Use:   "enlist --master URL[,URL...] --token TOKEN --name NAME --data DIR [--location TEXT]",
		Short: "Enlist this server as a target of a master",
		Long: `Enlist this server in a master, using a single-use token from
"muster token create --target NAME" on the master.

The token carries the fingerprint of the master's CA: the master is verified
against it before anything is sent. This server then makes its own key, which
never leaves DIR, and receives a short-lived client certificate. A target
holds one master; defect first to move it to another.

Masters that share one catalog and one CA form a group: give them all,
separated by commas. Each one that can be reached is checked against the
token's CA before the target enlists with the first that answers. The target
talks to one master at a time, and moves to the next when it stops
answering; masters added to the group later are learnt from the masters.

A master that is busy (too many enlistments at once) says when to ask
again; the enlistment is sent again then, with the same token, up to ten
times, each retry told on stderr.

The token is read from --token or --token-file only, never from the
environment, so an operator's MUSTER_TOKEN is not sent by mistake.`,
		Example: `  muster enlist --master https://master.example.com:7070 --token mst1.… --name web1 --data /var/lib/muster-target
  muster enlist --master https://m1.example.com:7070,https://m2.example.com:7070 --token-file web1.token --name web1 --data /var/lib/muster-target
  muster target --data /var/lib/muster-target`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tokenFile != "" {
				if o.Token != "" {
					return errors.New("give --token or --token-file, not both")
				}
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return fmt.Errorf("--token-file: %w", err)
				}
				o.Token = strings.TrimSpace(string(b))
			}
			if o.Token == "" {
				return errors.New("--token or --token-file: an enlistment token is required; create one on the master with `muster token create --target NAME`")
			}
			// A master that refuses for now, and the retry, are told on
			// stderr.
			o.Log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			ctx, stop := signalContext()
			defer stop()
			e, err := agent.Enlist(ctx, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "enlisted %s in master %s (%s)\n", e.Name, e.Master, e.MasterURL)
			if len(e.Masters) > 1 {
				fmt.Fprintf(cmd.OutOrStdout(), "masters of the group: %s\n", strings.Join(e.Masters, ", "))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "start it with: muster target --data %s\n", o.DataDir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.MasterURL, "master", "", "the master's URL, e.g. https://master.example.com:7070, or the URLs of a group's masters separated by commas (required)")
	f.StringVar(&o.Token, "token", "", "the enlistment token")
	f.StringVar(&tokenFile, "token-file", "", "read the enlistment token from this file")
	f.StringVar(&o.Name, "name", "", "this target's name, as the token was created for (required)")
	f.StringVar(&o.DataDir, "data", "", "the target's data directory (required)")
	f.StringVar(&o.Location, "location", "", "where this server is, shown in target lists")
	cmd.MarkFlagRequired("master")
	cmd.MarkFlagRequired("name")
	cmd.MarkFlagRequired("data")
	return cmd
}
