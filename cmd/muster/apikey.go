package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
)

func newAPIKeyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apikey",
		Short: "Manage the API keys operators and tools use (admin)",
		Long: `API keys are how operators, scripts and CI reach the master's API. Each key has
a role:

  reader    reads everything it can see
  operator  also applies, starts, stops, enables and deletes jobs, posts
            instructions, and pauses targets
  admin     also manages keys, groups, targets, enlistment tokens, operators,
            alerts and history

A key can be scoped to some jobs and to the targets of some groups: it then
sees and acts on nothing else (see docs/security.md). The master made the
first admin key, named admin, when it first started, and wrote it to
admin.token in its data directory. Keys are stored hashed: a key's secret is
shown once, when it is created. Managing keys needs the admin role.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newAPIKeyCreateCmd(), newAPIKeyListCmd(), newAPIKeyRevokeCmd())
	return cmd
}

func newAPIKeyCreateCmd() *cobra.Command {
	var cf clientFlags
	var req httpapi.KeyRequest
	var ttl days
	cmd := &cobra.Command{
		Use:   "create NAME --role admin|operator|reader [--ttl D] [--scope group:G|job:J ...]",
		Short: "Create an API key and print it, alone on stdout",
		Long: `Create an API key and print its secret, alone on stdout, so that
KEY=$(muster apikey create ...) captures it. It is not shown again: the
master keeps only its hash. Give it to its user as MUSTER_TOKEN.

--scope limits the key, and may be repeated: job:NAME for a job, job:PREFIX*
for every job whose name starts with PREFIX, group:NAME for the targets in a
group. A scoped key sees only those jobs and targets (and their runs,
instructions and events), applies, starts and changes only those jobs, and
aims them only at its groups. An admin key has no scope.

--ttl makes the key expire (90d, 36h); without it, the key lives until it
is revoked. An expired or revoked key is refused, saying which.`,
		Example: `  KEY=$(muster apikey create ci --role operator --ttl 90d)
  muster apikey create web-team --role operator --scope group:web --scope 'job:web-*'
  muster apikey create dashboard --role reader`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name, req.TTLSeconds = args[0], int64(time.Duration(ttl)/time.Second)
			if ttl > 0 && time.Duration(ttl) < time.Minute {
				return fmt.Errorf("--ttl: at least 1m, not %s", time.Duration(ttl))
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			k, err := c.CreateAPIKey(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), k.Key)
			fmt.Fprintf(cmd.ErrOrStderr(), "created API key %s (%s); its secret, above, is not shown again\n", k.Name, keyReach(k.APIKey))
			return nil
		},
	}
	cf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&req.Role, "role", "", "admin, operator or reader (required)")
	f.Var(&ttl, "ttl", "how long the key lives, e.g. 90d or 36h (default: until revoked)")
	f.StringArrayVar(&req.Scopes, "scope", nil, "limit the key to job:NAME, job:PREFIX* or group:NAME (repeatable)")
	cmd.MarkFlagRequired("role")
	return cmd
}

// keyReach says what a key may do: its role and scopes.
func keyReach(k muster.APIKey) string {
	if len(k.Scopes) == 0 {
		return k.Role + ", every job and target"
	}
	return k.Role + ", only " + strings.Join(k.Scopes, ", ")
}

func newAPIKeyListCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List API keys, with their role, scope, state and last use",
		Long: `List every API key: its role, its scopes, whether it is active, expired or
revoked, when it expires, and when it was last used (to the minute).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return query(cmd, &cf, func(c *httpapi.Client) ([]muster.APIKey, error) {
				return c.APIKeys(cmd.Context())
			}, func(w io.Writer, keys []muster.APIKey) error {
				now := time.Now()
				t := newTable(w, "NAME", "ROLE", "SCOPES", "STATE", "EXPIRES", "LAST USED", "CREATED BY")
				for _, k := range keys {
					expires := "never"
					if k.ExpiresAt != nil {
						expires = ago(k.ExpiresAt, now)
					}
					state := k.State
					if k.RevokedAt != nil {
						state += " by " + dash(k.RevokedBy)
					}
					t.row(k.Name, k.Role, dash(strings.Join(k.Scopes, ",")), state, expires, ago(k.LastUsedAt, now), dash(k.CreatedBy))
				}
				return t.flush()
			})
		},
	}
	cf.register(cmd)
	cf.registerOutput(cmd)
	return cmd
}

func newAPIKeyRevokeCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke an API key: it is refused from now on",
		Long: `Revoke an API key. Requests with it are refused (401) from now on, saying it
was revoked. The key stays in the list as revoked, until a new key takes its
name. The last admin key that has not expired cannot be revoked: create
another admin key first.`,
		Example: `  muster apikey revoke ci`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			k, err := c.RevokeAPIKey(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked API key %s (%s)\n", k.Name, k.Role)
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}
