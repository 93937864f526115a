package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster/internal/catalog/sqlitestore"
	"github.com/musterhq/muster/internal/master"
)

func newStoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Manage the master's catalog database",
	}
	cmd.AddCommand(newStoreMigrateCmd(), newStoreBackupCmd(), newStoreRestoreCmd())
	return cmd
}

func newStoreMigrateCmd() *cobra.Command {
	var from, to, secretFile, dataDir string
	cmd := &cobra.Command{
		Use:   "migrate --from sqlite:PATH --to postgres://… --secret-file FILE",
		Short: "Copy a master's SQLite catalog into PostgreSQL, for several masters",
		Long: `Copy a whole catalog from SQLite into an empty PostgreSQL database (or
schema): targets with their sequence numbers and the catalog's epoch,
certificates, tokens and API keys, jobs, groups, the download list, history
and output, events, operators, alerts, the audit log, rollouts and console
sessions, in one transaction. The CA is copied from the SQLite
master's data directory (--data; by default the catalog's directory, where
a master keeps catalog.db unless --store sqlite:PATH put it elsewhere)
into the catalog, its key encrypted with the secret in --secret-file,
which every master of the new catalog reads.

Stop the master first. Start the masters on PostgreSQL where targets reach
the old one (its address, or a name that moves to them): targets carry on
without enlisting again or resyncing. See docs/ha.md.`,
		Example: `  muster store migrate --from sqlite:/var/lib/muster/catalog.db \
      --to postgres://muster@db.example.com/muster --secret-file /etc/muster/secret`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := master.MigrateStore(context.Background(), from, to, secretFile, dataDir)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "copied %s into %s:\n", m.From, m.To)
			for _, t := range sqlitestore.Tables {
				if m.Rows[t] > 0 {
					fmt.Fprintf(out, "  %-16s %d\n", t, m.Rows[t])
				}
			}
			fmt.Fprintf(out, "CA %s, its key sealed with %s\n", m.CAFingerprint, secretFile)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "the SQLite catalog: sqlite:PATH to a master's catalog.db (required)")
	f.StringVar(&to, "to", "", "the PostgreSQL database to copy into, empty (required)")
	f.StringVar(&secretFile, "secret-file", "", "file holding the secret the masters will read to use the CA (required)")
	f.StringVar(&dataDir, "data", "", "the master's data directory, which holds its CA (default: the directory of the catalog)")
	cmd.MarkFlagRequired("from")
	cmd.MarkFlagRequired("to")
	cmd.MarkFlagRequired("secret-file")
	return cmd
}
