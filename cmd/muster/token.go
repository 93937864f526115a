package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/httpapi"
)

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke enlistment tokens (admin)",
		Long: `An enlistment token lets one server enlist as a target, once, under the
name it was made for, until it expires (15 minutes unless --ttl says
otherwise, at most 7 days). The master keeps only its hash.

A token that may have leaked (pasted into a ticket, left in a shell history)
enlists whoever holds it under its name, and that server receives the
name's jobs. List the tokens that can still enlist with "muster token list",
and revoke one with "muster token revoke": every master refuses it from then
on. Managing tokens needs the admin role.`,
		Args: cobra.NoArgs,
	}
	var cf clientFlags
	var name string
	ttl := 15 * time.Minute
	create := &cobra.Command{
		Use:   "create --target NAME [--ttl 15m]",
		Short: "Create a single-use enlistment token for a target name",
		Long: `Print a new enlistment token, alone on stdout. It can be used once, by a
target enlisting under NAME, before it expires. The master stores only its
hash. Pass it to "muster enlist --token" on the target.

A token for a name that a target still holds is made all the same, for the
server that will take the name over, with a note on stderr: it enlists only
once that target has defected or been deleted.`,
		Example: `  TOKEN=$(muster token create --target web1)
  ssh web1 muster enlist --master https://master:7070 --token "$TOKEN" --name web1 --data /var/lib/muster-target`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ttl < time.Minute || ttl > catalog.MaxEnlistTokenTTL {
				most, given := days(catalog.MaxEnlistTokenTTL), days(ttl)
				said := given.String()
				if ttl == 0 {
					said = "0s" // days shows no zero, as a default it hides
				}
				return fmt.Errorf("--ttl: a token lives from 1m to %s, not %s", most.String(), said)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			tok, err := c.CreateToken(cmd.Context(), name, ttl)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok.Token)
			if tok.Note != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "note: "+tok.Note)
			}
			return nil
		},
	}
	cf.register(create)
	create.Flags().StringVar(&name, "target", "", "the name the target will enlist under (required)")
	create.Flags().Var((*days)(&ttl), "ttl", "how long the token stays valid, 1m to 7d")
	create.MarkFlagRequired("target")
	cmd.AddCommand(create, newTokenListCmd(), newTokenRevokeCmd())
	return cmd
}

func newTokenListCmd() *cobra.Command {
	var cf clientFlags
	var all bool
	cmd := &cobra.Command{
		Use:   "list [--all]",
		Short: "List the enlistment tokens that can still enlist a target",
		Long: `List the enlistment tokens that can still enlist a target: not used, not
revoked and not expired, oldest first. Each shows its ID (what "muster token
revoke" takes), the target name it enlists, when it expires, and who made it
when. A token's secret is never shown again, nor its hash.

--all also lists the tokens that can no longer enlist: used by the target
they enlisted, revoked (and by whom), or expired. The master keeps those
until a day after they expire.`,
		Example: `  muster token list
  muster token list --all -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return query(cmd, &cf, func(c *httpapi.Client) ([]muster.EnlistToken, error) {
				return c.EnlistTokens(cmd.Context(), all)
			}, func(w io.Writer, toks []muster.EnlistToken) error {
				now := time.Now()
				t := newTable(w, "ID", "TARGET", "STATE", "EXPIRES", "CREATED", "CREATED BY")
				for _, tok := range toks {
					state := tok.State
					if tok.State == muster.TokenRevoked {
						state += " by " + dash(tok.RevokedBy)
					}
					t.row(strconv.FormatInt(tok.ID, 10), tok.Target, state, ago(&tok.ExpiresAt, now), ago(&tok.CreatedAt, now), dash(tok.CreatedBy))
				}
				return t.flush()
			})
		},
	}
	cf.register(cmd)
	cf.registerOutput(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "also list tokens used, revoked or expired")
	return cmd
}

func newTokenRevokeCmd() *cobra.Command {
	var cf clientFlags
	var target string
	cmd := &cobra.Command{
		Use:   "revoke ID | --target NAME",
		Short: "Revoke an enlistment token: no target can enlist with it",
		Long: `Revoke an enlistment token that has not been used, by its ID (from "muster
token list"), or every such token for a target name with --target. Every
master sharing the catalog refuses it from then on: a server enlisting with
it is told the token was revoked, when, and by whom. The revocation is
recorded in the audit log.

A token that was used, was already revoked or has expired is refused with
an error saying which: it can enlist nothing. To take out a server that
already enlisted, delete its target ("muster target delete NAME").`,
		Example: `  muster token list
  muster token revoke 12
  muster token revoke --target web1`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var id int64
			switch {
			case len(args) == 0 && target == "":
				return errors.New("name the token to revoke: its ID (from `muster token list`) or --target NAME")
			case len(args) == 1 && target != "":
				return errors.New("give the token's ID or --target NAME, not both")
			case len(args) == 1:
				n, err := strconv.ParseInt(args[0], 10, 64)
				if err != nil || n <= 0 {
					return fmt.Errorf("ID: %q is not a token id; `muster token list` shows them, or revoke every token for a name with --target %s", args[0], args[0])
				}
				id = n
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			var revoked []muster.EnlistToken
			if id != 0 {
				tok, err := c.RevokeEnlistToken(cmd.Context(), id)
				if err != nil {
					return err
				}
				revoked = append(revoked, tok)
			} else if revoked, err = c.RevokeTargetEnlistTokens(cmd.Context(), target); err != nil {
				return err
			}
			for _, tok := range revoked {
				fmt.Fprintf(cmd.OutOrStdout(), "revoked enlistment token %d for %s (created by %s)\n", tok.ID, tok.Target, dash(tok.CreatedBy))
			}
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&target, "target", "", "revoke every token for this target name that can still enlist it")
	return cmd
}
