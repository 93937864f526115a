package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster/internal/catalog"
)

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create enlistment tokens",
		Args:  cobra.NoArgs,
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
	cmd.AddCommand(create)
	return cmd
}
