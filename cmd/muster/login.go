package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/httpapi"
)

func newLoginLinkCmd() *cobra.Command {
	var cf clientFlags
	var role string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "login-link [--role admin|operator|reader] [--ttl D]",
		Short: "Print a one-time link that signs a browser in to the web console (admin)",
		Long: `Print a link to the master's web console, alone on stdout. Opened in a
browser, it shows a page whose Sign in button signs in and goes to the
fleet page. It signs in once, and expires after --ttl (5m by default, at
most 24h). Opening it spends nothing: a chat's or a mail's preview of the
link does not use it up.

The console session acts as your API key, in --role (your key's own role by
default, never above it): give a colleague who should only look a link with
--role reader. Everything changed from the console is in the audit log
under your key's name. The session ends after 12 hours, when you sign out,
or when your key is revoked.

The master's certificate is signed by its own CA: a browser that does not
trust the CA (ca.pem in the master's data directory) warns before it opens
the page.`,
		Example: `  muster login-link
  muster login-link --role reader --ttl 30m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl != 0 && (ttl < time.Minute || ttl > catalog.MaxLoginLinkTTL) {
				return fmt.Errorf("--ttl: from 1m to %s, not %s", muster.Duration(catalog.MaxLoginLinkTTL).Short(), muster.Duration(ttl).Short())
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			link, err := c.CreateLoginLink(cmd.Context(), httpapi.LoginLinkRequest{Role: role, TTLSeconds: int(ttl / time.Second)})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), strings.TrimRight(c.URL(), "/")+link.Path)
			fmt.Fprintf(cmd.ErrOrStderr(), "signs in once as API key %s (%s) until %s\n", link.Key, link.Role, link.ExpiresAt.Local().Format(time.RFC3339))
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&role, "role", "", "the session's role: admin, operator or reader (default: your key's)")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "how long the link may be used (default 5m, at most 24h)")
	return cmd
}
