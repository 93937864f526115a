package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog/sqlitestore"
)

func newStoreBackupCmd() *cobra.Command {
	var from, to string
	cmd := &cobra.Command{
		Use:   "backup --from sqlite:PATH --to FILE",
		Short: "Copy a SQLite catalog to a backup file, while its master runs",
		Long: `Write a consistent copy of a master's SQLite catalog to a new file. The
master may be running: the copy is one read transaction, which sees every
change committed before it and none after, and holds no change up. The file
is checked once written, and appears under its name only when whole.

The catalog is what changes; the CA (ca.pem and ca-key.pem in the data
directory) does not: copy it once, and keep ca-key.pem as safe as the
backups. A catalog on PostgreSQL is backed up with pg_dump (docs/ha.md).`,
		Example: `  muster store backup --from sqlite:/var/lib/muster/catalog.db \
      --to /backups/muster-$(date -u +%Y%m%dT%H%M%SZ).db`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := sqliteFlag("--from", from)
			if err != nil {
				return err
			}
			s, err := sqlitestore.Backup(context.Background(), path, to, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backed up %s to %s\n", path, s.Path)
			describeSnapshot(cmd.OutOrStdout(), s)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "the catalog: sqlite:PATH to a master's catalog.db (required)")
	f.StringVar(&to, "to", "", "the backup file to write; it must not exist (required)")
	cmd.MarkFlagRequired("from")
	cmd.MarkFlagRequired("to")
	return cmd
}

func newStoreRestoreCmd() *cobra.Command {
	var from, to string
	cmd := &cobra.Command{
		Use:   "restore --from FILE --to sqlite:PATH",
		Short: "Put a backup in place of a master's SQLite catalog",
		Long: `Put a backup taken with "muster store backup" in place of a master's
SQLite catalog. Stop the master first: the restore is refused while a master
uses the catalog.

The catalog being replaced is not deleted: it is renamed, with its
write-ahead log, to PATH.replaced-TIME (PATH.replaced-TIME-2, and so on, if
a restore in the same second took that name); a log left without its
catalog (the file removed after a crash) is moved aside the same way, not
replayed into the restored catalog. The restored catalog gets a new
epoch, so every target resyncs at its next poll: it is sent every job it
should hold, as the backup has them, and drops the rest. Targets that
renewed their certificates since the backup was taken carry on with them;
targets enlisted after it are unknown to it and must enlist again.`,
		Example: `  muster store restore --from /backups/muster-20261207T030000Z.db \
      --to sqlite:/var/lib/muster/catalog.db`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := sqliteFlag("--to", to)
			if err != nil {
				return err
			}
			s, replaced, err := sqlitestore.Restore(context.Background(), from, path, time.Now())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "restored %s from %s\n", path, from)
			describeSnapshot(out, s)
			if replaced != "" {
				fmt.Fprintf(out, "the catalog it replaced is kept as %s\n", replaced)
			}
			fmt.Fprintln(out, "new epoch: every target resyncs its jobs at its next poll once the master is started")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "the backup file, written by muster store backup (required)")
	f.StringVar(&to, "to", "", "the catalog to replace: sqlite:PATH to a master's catalog.db (required)")
	cmd.MarkFlagRequired("from")
	cmd.MarkFlagRequired("to")
	return cmd
}

// sqliteFlag returns the path a sqlite:PATH flag names.
func sqliteFlag(name, value string) (string, error) {
	if strings.HasPrefix(value, "postgres://") || strings.HasPrefix(value, "postgresql://") {
		return "", muster.Errorf(muster.EINVALID, "%s: a catalog on PostgreSQL is backed up and restored with pg_dump and pg_restore (docs/ha.md)", name)
	}
	return sqlitestore.CatalogPath(name, value)
}

func describeSnapshot(out io.Writer, s sqlitestore.Snapshot) {
	fmt.Fprintf(out, "  %d targets, %d jobs, %d runs, %.1f MiB (schema %d)\n", s.Targets, s.Jobs, s.Runs, float64(s.Bytes)/(1<<20), s.Schema)
	if !s.TakenAt.IsZero() {
		fmt.Fprintf(out, "  taken at %s\n", s.TakenAt.UTC().Format(time.RFC3339))
	}
}
