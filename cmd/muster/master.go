package main

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster/internal/master"
	"github.com/musterhq/muster/internal/pki"
)

func newMasterCmd() *cobra.Command {
	cfg := master.DefaultConfig()
	var logLevel, alsoTarget string
	cmd := &cobra.Command{
		Use:   "master --data DIR [--listen ADDR]",
		Short: "Run the master server",
		Long: `Run the master: the catalog of jobs and targets, the certificate authority, and
one HTTPS listener for the operator API (/api/v1/), the target protocol
(/agent/v1/), /metrics (to an API key), /healthz and /readyz.

On its first start with an empty data directory the master creates a CA
(ca.pem, give it to operators as MUSTER_CACERT), a server certificate, and an
admin API key written to admin.token (mode 0600; use it as MUSTER_TOKEN, and
make keys for everyone else with "muster apikey create").

The catalog is SQLite in the data directory by default. For masters that
must survive losing one, run two or three on one PostgreSQL database
(--store postgres://…, or MUSTER_STORE): they share one CA, kept in the
database with its key encrypted by the secret in --secret-file (the same
file on every master). The first master on an empty database creates the CA
and the admin token; the others write ca.pem to their data directory. Each
master's --advertise URL is where targets reach it. See docs/ha.md.`,
		Example: `  muster master --data /var/lib/muster --listen 0.0.0.0:7070 --host master.example.com

  # two masters on one PostgreSQL database
  muster master --data /var/lib/muster --listen 0.0.0.0:7070 --advertise https://m1.example.com:7070 \
      --store postgres://muster@db.example.com/muster --secret-file /etc/muster/secret`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			cfg.Logger = log
			if !cmd.Flags().Changed("store") {
				cfg.Store = envOr("MUSTER_STORE", "")
			}
			if cfg.AuditMaxAge <= 0 {
				return fmt.Errorf("--audit-max-age: the audit log is always kept for a while; give a positive duration such as 365d, not %s", time.Duration(cfg.AuditMaxAge))
			}
			m, err := master.New(cfg)
			if err != nil {
				return err
			}
			// SIGHUP stops a master as SIGTERM does: with --also-target
			// it runs steps, and a hang-up ending it at once would leave
			// them behind, their runs recorded running.
			var local lateTargets
			hurry := local.hurry
			if alsoTarget == "" {
				hurry = nil
			}
			ctx, stop := daemonContext(log, hurry)
			defer stop()
			if err := m.Open(ctx); err != nil {
				return err
			}
			defer m.Close()
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "muster master listening on %s\n", m.URL)
			fmt.Fprintf(out, "CA certificate: %s (sha256 %s)\n", filepath.Join(cfg.DataDir, pki.CACertFile), m.CA.Fingerprint())
			if cfg.Store != "" {
				fmt.Fprintf(out, "catalog: %s\n", m.Catalog.Describe())
			}
			if m.AdminToken != "" {
				fmt.Fprintf(out, "admin API token written to %s\n", filepath.Join(cfg.DataDir, master.AdminTokenFile))
			}
			if alsoTarget == "" {
				return m.Run(ctx)
			}
			// The master serves first, then enlists (once) and runs its own
			// target, which it stops before it stops serving.
			runCtx, stopRun := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- m.Run(runCtx) }()
			targets := newLocalTargets(m, log)
			local.set(targets)
			err = targets.start(ctx, alsoTarget, filepath.Join(cfg.DataDir, "also-target"), true)
			if err == nil {
				fmt.Fprintf(out, "also running jobs here, as target %s\n", alsoTarget)
				<-ctx.Done()
			}
			targets.close()
			stopRun()
			if runErr := <-done; err == nil {
				err = runErr
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data", "", "data directory: catalog, CA and admin token (required)")
	// MUSTER_STORE is read when the command runs, not made the flag's
	// default: help would print it, password and all.
	f.StringVar(&cfg.Store, "store", "", "the catalog: sqlite:PATH, or a PostgreSQL URL shared by several masters\n(default $MUSTER_STORE, else catalog.db in the data directory)")
	f.StringVar(&cfg.SecretFile, "secret-file", "", "file holding the secret that encrypts the CA key in a PostgreSQL catalog\n(at least 32 bytes, mode 0600, the same on every master)")
	f.StringVar(&cfg.Advertise, "advertise", "", "the URL targets and operators reach this master at, e.g. https://m1.example.com:7070\n(default: from --listen; each master of one catalog needs its own)")
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "address of the HTTPS listener")
	f.StringSliceVar(&cfg.Hosts, "host", nil, "extra host name or address the server certificate must cover (repeatable)")
	// The default is this host's name, filled in by the master: help
	// is read about other hosts, and would print this one's.
	f.StringVar(&cfg.Name, "name", "", "the master's name, as targets report it (default: this host's name)")
	cfg.CertTTL = 24 * time.Hour
	f.Var((*days)(&cfg.CertTTL), "cert-ttl", "lifetime of target client certificates, e.g. 24h or 7d")
	f.BoolVar(&cfg.NewEpoch, "new-epoch", false, "make every target resync at its next poll (after restoring the catalog from a backup)")
	f.BoolVar(&cfg.ResetAdminToken, "reset-admin-token", false, "give the admin API key a new secret (written to admin.token), replacing the old one;\nit is active again if it was revoked or expired")
	f.StringVar(&alsoTarget, "also-target", "", "also run a target named NAME in this process, so jobs can run on the master's own server")
	boundedIntVar(f, &cfg.DownloadedMaxRows, "downloaded-max-rows", cfg.DownloadedMaxRows, 0, math.MaxInt, "keep at most this many finished instructions per target (0: no limit)")
	boundedIntVar(f, &cfg.HistoryMaxRunsPerJob, "history-max-runs", cfg.HistoryMaxRunsPerJob, 0, math.MaxInt, "keep at most this many finished runs per job (0: no limit)")
	f.Var((*days)(&cfg.HistoryMaxAge), "history-max-age", "delete finished runs older than this, e.g. 90d or 2160h (0: keep them)")
	f.Var((*days)(&cfg.AuditMaxAge), "audit-max-age", "delete audit log entries older than this, e.g. 365d or 2160h")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&cfg.Alerts.SMTP.Addr, "smtp-addr", "", "SMTP server for e-mail notifications, host:port")
	f.StringVar(&cfg.Alerts.SMTP.TLS, "smtp-tls", "", "TLS to the SMTP server: starttls (required), tls (from the first byte), none, or\nauto: tls on port 465, else starttls, which a server on localhost may go without (default auto)")
	f.StringVar(&cfg.Alerts.SMTP.From, "smtp-from", "", "sender address of e-mail notifications")
	f.StringVar(&cfg.Alerts.SMTP.Username, "smtp-user", "", "user to authenticate to the SMTP server as (PLAIN, over TLS or to localhost)")
	f.StringVar(&cfg.Alerts.SMTP.PasswordFile, "smtp-password-file", "", "file holding the SMTP user's password")
	cmd.MarkFlagRequired("data")
	return cmd
}
