package main

import (
	"context"
	"fmt"
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
(/agent/v1/), /metrics, /healthz and /readyz.

On its first start with an empty data directory the master creates a CA
(ca.pem, give it to operators as MUSTER_CACERT), a server certificate, and an
admin API token written to admin.token (mode 0600; use it as MUSTER_TOKEN).`,
		Example: `  muster master --data /var/lib/muster --listen 0.0.0.0:7070 --host master.example.com`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			cfg.Logger = log
			m, err := master.New(cfg)
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			if err := m.Open(ctx); err != nil {
				return err
			}
			defer m.Close()
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "muster master listening on %s\n", m.URL)
			fmt.Fprintf(out, "CA certificate: %s (sha256 %s)\n", filepath.Join(cfg.DataDir, pki.CACertFile), m.CA.Fingerprint())
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
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "address of the HTTPS listener")
	f.StringSliceVar(&cfg.Hosts, "host", nil, "extra host name or address the server certificate must cover (repeatable)")
	f.StringVar(&cfg.Name, "name", cfg.Name, "the master's name, as targets report it")
	f.DurationVar(&cfg.CertTTL, "cert-ttl", 24*time.Hour, "lifetime of target client certificates")
	f.BoolVar(&cfg.NewEpoch, "new-epoch", false, "make every target resync at its next poll (after restoring the catalog from a backup)")
	f.BoolVar(&cfg.ResetAdminToken, "reset-admin-token", false, "issue a new admin token, replacing the old one")
	f.StringVar(&alsoTarget, "also-target", "", "also run a target named NAME in this process, so jobs can run on the master's own server")
	f.IntVar(&cfg.DownloadedMaxRows, "downloaded-max-rows", cfg.DownloadedMaxRows, "keep at most this many finished instructions per target (0: no limit)")
	f.IntVar(&cfg.HistoryMaxRunsPerJob, "history-max-runs", cfg.HistoryMaxRunsPerJob, "keep at most this many finished runs per job (0: no limit)")
	f.DurationVar(&cfg.HistoryMaxAge, "history-max-age", cfg.HistoryMaxAge, "delete finished runs older than this (0: keep them)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&cfg.Alerts.SMTP.Addr, "smtp-addr", "", "SMTP server for e-mail notifications, host:port")
	f.StringVar(&cfg.Alerts.SMTP.TLS, "smtp-tls", "", "TLS to the SMTP server: starttls (required), tls (from the first byte), none, or\nauto: tls on port 465, else starttls, which a server on localhost may go without (default auto)")
	f.StringVar(&cfg.Alerts.SMTP.From, "smtp-from", "", "sender address of e-mail notifications")
	f.StringVar(&cfg.Alerts.SMTP.Username, "smtp-user", "", "user to authenticate to the SMTP server as (PLAIN, over TLS or to localhost)")
	f.StringVar(&cfg.Alerts.SMTP.PasswordFile, "smtp-password-file", "", "file holding the SMTP user's password")
	cmd.MarkFlagRequired("data")
	return cmd
}
