package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
)

func newOperatorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Manage operators: who alerts notify, by webhook or e-mail",
		Long: `Operators are who alerts notify: a webhook, an e-mail address, or both.
MSXOperator, the master's own operator, exists from the start with no address
until you give it one; it cannot be deleted.

Webhooks receive a JSON POST signed with the operator's secret: the header
Muster-Signature is "v1=" and the hex HMAC-SHA256 of the Muster-Timestamp
header, a dot, and the body; refuse a timestamp more than 5 minutes from your
clock (docs/alerts.md). E-mail goes
through the SMTP server the master was started with (muster master --smtp-addr).`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newOperatorListCmd(), newOperatorCreateCmd(), newOperatorUpdateCmd(), newOperatorDeleteCmd())
	return cmd
}

func newOperatorListCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List operators and their addresses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return query(cmd, &cf, func(c *httpapi.Client) ([]muster.Operator, error) {
				return c.Operators(cmd.Context())
			}, func(w io.Writer, ops []muster.Operator) error {
				t := newTable(w, "NAME", "WEBHOOK", "EMAIL")
				for _, op := range ops {
					t.row(op.Name, dash(op.Webhook), dash(op.Email))
				}
				return t.flush()
			})
		},
	}
	cf.register(cmd)
	cf.registerOutput(cmd)
	return cmd
}

// readSecretFile reads the file of --webhook-secret-file.
func readSecretFile(path string) (string, error) {
	s, err := readToken(path)
	if err != nil {
		return "", fmt.Errorf("--webhook-secret-file: %w", err)
	}
	return s, nil
}

// printOperatorResult says what a create or update did, and shows the
// webhook secret the master made, which is not shown again.
func printOperatorResult(w io.Writer, verb string, op httpapi.OperatorResponse) {
	fmt.Fprintf(w, "operator %s %s\n", op.Name, verb)
	if op.WebhookSecret == "" {
		return
	}
	fmt.Fprintf(w, "webhook secret: %s\n", op.WebhookSecret)
	fmt.Fprintf(w, "  Receivers check each request's Muster-Signature header with it. It is not shown\n")
	fmt.Fprintf(w, "  again; `muster operator update %s --new-secret` makes another.\n", op.Name)
}

func newOperatorCreateCmd() *cobra.Command {
	var cf clientFlags
	var req httpapi.OperatorRequest
	var secretFile string
	cmd := &cobra.Command{
		Use:   "create NAME [--webhook URL] [--email ADDR] [--webhook-secret-file FILE]",
		Short: "Create an operator with a webhook, an e-mail address, or both",
		Long: `Create an operator. With a webhook, the master makes a secret to sign the
notifications with and prints it once; keep it where the receiver can check
signatures. To choose the secret yourself, put it in a file (16 to 256
characters, no spaces) and pass --webhook-secret-file. The master stores the
secret as is, because it needs it to sign.`,
		Example: `  muster operator create oncall --webhook https://hooks.example.com/muster
  muster operator create dba --email dba@example.com`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name = args[0]
			if secretFile != "" {
				s, err := readSecretFile(secretFile)
				if err != nil {
					return err
				}
				req.WebhookSecret = s
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			op, err := c.CreateOperator(cmd.Context(), req)
			if err != nil {
				return err
			}
			printOperatorResult(cmd.OutOrStdout(), "created", op)
			return nil
		},
	}
	cf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&req.Webhook, "webhook", "", "URL notifications are POSTed to (http or https)")
	f.StringVar(&req.Email, "email", "", "address notifications are mailed to")
	f.StringVar(&secretFile, "webhook-secret-file", "", "file holding the secret that signs webhooks (default: the master makes one)")
	return cmd
}

func newOperatorUpdateCmd() *cobra.Command {
	var cf clientFlags
	var webhook, email, secretFile string
	var newSecret bool
	cmd := &cobra.Command{
		Use:   "update NAME [--webhook URL] [--email ADDR] [--webhook-secret-file FILE | --new-secret]",
		Short: "Change an operator's addresses or webhook secret",
		Long: `Change what the flags name and nothing else; an empty value removes an
address (--webhook ''). An operator that gets a webhook where it had none gets
a new secret, printed once, as does --new-secret; removing the webhook removes
the secret.`,
		Example: `  muster operator update MSXOperator --email dba@example.com
  muster operator update oncall --webhook https://hooks.example.com/v2/muster
  muster operator update oncall --new-secret`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var u httpapi.OperatorUpdate
			fl := cmd.Flags()
			if fl.Changed("webhook") {
				u.Webhook = &webhook
			}
			if fl.Changed("email") {
				u.Email = &email
			}
			if secretFile != "" {
				s, err := readSecretFile(secretFile)
				if err != nil {
					return err
				}
				u.WebhookSecret = &s
			}
			u.NewSecret = newSecret
			if u == (httpapi.OperatorUpdate{}) {
				return fmt.Errorf("nothing to change: give --webhook, --email, --webhook-secret-file or --new-secret")
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			op, err := c.UpdateOperator(cmd.Context(), args[0], u)
			if err != nil {
				return err
			}
			printOperatorResult(cmd.OutOrStdout(), "updated", op)
			return nil
		},
	}
	cf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&webhook, "webhook", "", "URL notifications are POSTed to; '' removes it")
	f.StringVar(&email, "email", "", "address notifications are mailed to; '' removes it")
	f.StringVar(&secretFile, "webhook-secret-file", "", "file holding a new secret that signs webhooks")
	f.BoolVar(&newSecret, "new-secret", false, "replace the webhook secret with a new one the master makes")
	cmd.MarkFlagsMutuallyExclusive("webhook-secret-file", "new-secret")
	return cmd
}

func newOperatorDeleteCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an operator that no alert notifies",
		Long: `Delete an operator. An operator that alerts still notify cannot be deleted:
delete those alerts first. Its notifications still pending fail; its history
stays. MSXOperator cannot be deleted.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			if err := c.DeleteOperator(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "operator %s deleted\n", args[0])
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}
