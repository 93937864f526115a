// Package master is the master daemon: the catalog, the CA, and one TLS
// listener serving the operator API (/api/v1/), the target protocol
// (/agent/v1/), metrics and health.
package master

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/pki"
)

// File names in the master's data directory, besides the CA's.
const (
	CatalogFile    = "catalog.db"
	AdminTokenFile = "admin.token"
)

// Config configures a master.
type Config struct {
	// DataDir holds the catalog, the CA and the admin token.
	DataDir string
	// Listen is the address of the single TLS listener.
	Listen string
	// Name is the master's name, reported to targets; the host name by default.
	Name string
	// Hosts are extra names and addresses the server certificate must cover.
	Hosts []string
	// CertTTL is the lifetime of target client certificates.
	CertTTL time.Duration
	// MaxPollHold caps how long a poll is held (55 s at most in any case).
	MaxPollHold time.Duration
	// ShutdownTimeout bounds a graceful stop.
	ShutdownTimeout time.Duration
	// NewEpoch gives the catalog a new epoch at start, making every target
	// resync: for a catalog restored from a backup.
	NewEpoch bool
	// ResetAdminToken issues a new admin token, replacing the old one.
	ResetAdminToken bool
	// HistoryMaxRunsPerJob keeps at most this many finished runs per job
	// (0: no limit); HistoryMaxAge deletes finished runs older than it (0:
	// no limit). Both are applied every HistoryInterval.
	HistoryMaxRunsPerJob int
	HistoryMaxAge        time.Duration
	HistoryInterval      time.Duration
	// DownloadedMaxRows keeps at most this many finished instructions per
	// target in the download list (0: no limit), applied with the history
	// limits (SQL Server's DownloadedMaxRows).
	DownloadedMaxRows int
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// Alerts configures events and notifications.
	Alerts AlertConfig
	// Logger receives the master's log; slog.Default() by default.
	Logger *slog.Logger
}

// DefaultConfig returns a configuration with the defaults filled in.
func DefaultConfig() Config {
	name, _ := os.Hostname()
	return Config{
		Listen:          "127.0.0.1:7070",
		Name:            name,
		CertTTL:         24 * time.Hour,
		MaxPollHold:     55 * time.Second,
		ShutdownTimeout: 10 * time.Second,
		Now:             time.Now,

		HistoryMaxRunsPerJob: 10000,
		HistoryMaxAge:        90 * 24 * time.Hour,
		HistoryInterval:      10 * time.Minute,
		DownloadedMaxRows:    1000,
	}
}

// Main is a running master.
type Main struct {
	cfg Config
	log *slog.Logger

	DB  *catalog.DB
	CA  *pki.CA
	hub *Hub

	// URL is where the master listens, e.g. https://127.0.0.1:7070.
	URL string
	// AdminToken is set when this start created (or reset) the admin token.
	AdminToken string

	ln             net.Listener
	srv            *http.Server
	metrics        *metrics
	enlistFailures *failureLimiter
	alerts         *alerting
}

// New checks the configuration; Open does the work.
func New(cfg Config) (*Main, error) {
	def := DefaultConfig()
	if cfg.DataDir == "" {
		return nil, errors.New("--data: a data directory is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = def.Listen
	}
	if cfg.Name == "" {
		cfg.Name = def.Name
	}
	if cfg.CertTTL <= 0 {
		cfg.CertTTL = def.CertTTL
	}
	if cfg.MaxPollHold <= 0 {
		cfg.MaxPollHold = def.MaxPollHold
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = def.ShutdownTimeout
	}
	if cfg.HistoryInterval <= 0 {
		cfg.HistoryInterval = def.HistoryInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	alerts, err := newAlerting(cfg, log)
	if err != nil {
		return nil, err
	}
	return &Main{cfg: cfg, log: log, hub: NewHub(), enlistFailures: newFailureLimiter(10, time.Minute), alerts: alerts}, nil
}

func (m *Main) now() time.Time { return m.cfg.Now() }

// Open prepares the data directory (CA, server certificate, catalog, admin
// token on first start) and binds the listener.
func (m *Main) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if err := os.MkdirAll(m.cfg.DataDir, 0o700); err != nil {
		return err
	}
	ca, created, err := pki.LoadOrCreateCA(m.cfg.DataDir, m.now())
	if err != nil {
		return err
	}
	m.CA = ca
	if created {
		m.log.Info("created a certificate authority", "file", filepath.Join(m.cfg.DataDir, pki.CACertFile), "fingerprint", ca.Fingerprint())
	}
	m.DB, err = catalog.Open(ctx, filepath.Join(m.cfg.DataDir, CatalogFile), catalog.Options{
		Now: m.cfg.Now,
		OnCommit: func(c catalog.Commit) {
			m.hub.Wake(c.Targets)
			m.hub.Poke(c.Poke)
			if len(c.Runs) > 0 {
				m.hub.WakeRuns()
				m.alerts.wake()
			}
		},
	})
	if err != nil {
		return err
	}
	if m.cfg.NewEpoch {
		epoch, err := m.DB.RotateEpoch(ctx)
		if err != nil {
			return err
		}
		m.log.Warn("catalog epoch rotated: every target will resync at its next poll", "epoch", epoch)
	}
	if err := m.ensureAdminToken(ctx); err != nil {
		return err
	}

	m.ln, err = net.Listen("tcp", m.cfg.Listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", m.cfg.Listen, err)
	}
	host, port, _ := net.SplitHostPort(m.ln.Addr().String())
	hosts := append(pki.DefaultHosts(), m.cfg.Hosts...)
	urlHost := host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		urlHost, _ = os.Hostname()
	} else {
		hosts = append(hosts, host)
	}
	cert, err := pki.LoadOrIssueServerCert(m.cfg.DataDir, ca, hosts, m.now())
	if err != nil {
		return err
	}
	m.URL = "https://" + net.JoinHostPort(urlHost, port)

	m.metrics = newMetrics()
	mux := http.NewServeMux()
	(&agent{m: m}).routes(mux)
	api := &httpapi.Server{DB: m.DB, Tokens: m, Hub: m.hub, Poker: m.hub, Now: m.cfg.Now, Log: m.log}
	api.Routes(mux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.metrics.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", m.ready)
	m.srv = &http.Server{
		Handler:           mux,
		TLSConfig:         pki.ServerTLSConfig(cert, ca),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelDebug),
	}
	m.alerts.start(m.DB)
	return nil
}

// NewEnlistToken creates a single-use enlistment token for a target name,
// valid for ttl, and returns its text (the catalog keeps only its hash).
func (m *Main) NewEnlistToken(ctx context.Context, name string, ttl time.Duration, by string) (string, time.Time, error) {
	tok := pki.NewEnlistToken(m.CA.Fingerprint())
	expires, err := m.DB.CreateEnlistToken(ctx, pki.HashSecret(tok.Secret), muster.NormalizeTargetName(name), ttl, by)
	return tok.String(), expires, err
}

// ready reports whether the catalog answers.
func (m *Main) ready(w http.ResponseWriter, r *http.Request) {
	if _, err := m.DB.CountAPITokens(r.Context()); err != nil {
		http.Error(w, "catalog unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ok\n"))
}

// ensureAdminToken creates the first admin token, or replaces it when asked,
// and writes it (0600) to the data directory. Only its hash is stored.
func (m *Main) ensureAdminToken(ctx context.Context) error {
	n, err := m.DB.CountAPITokens(ctx)
	if err != nil {
		return err
	}
	if n > 0 && !m.cfg.ResetAdminToken {
		return nil
	}
	secret := "mat_" + pki.RandomSecret()
	if err := m.DB.ReplaceAPIToken(ctx, "admin", catalog.RoleAdmin, pki.HashSecret(secret)); err != nil {
		return err
	}
	if err := pki.WriteFileAtomic(filepath.Join(m.cfg.DataDir, AdminTokenFile), []byte(secret+"\n"), 0o600); err != nil {
		return err
	}
	m.AdminToken = secret
	return nil
}

// Run serves until ctx is canceled, then stops gracefully: held polls are
// answered at once, in-flight requests get ShutdownTimeout to finish.
func (m *Main) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- m.srv.Serve(tls.NewListener(m.ln, m.srv.TLSConfig)) }()
	maint, stopMaint := context.WithCancel(ctx)
	maintDone := make(chan struct{})
	go func() { defer close(maintDone); m.maintain(maint) }()
	defer func() { stopMaint(); <-maintDone }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	m.hub.Close()
	sctx, cancel := context.WithTimeout(context.Background(), m.cfg.ShutdownTimeout)
	defer cancel()
	err := m.srv.Shutdown(sctx)
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}

// maintain applies the history retention limits every HistoryInterval,
// and releases held-back STARTs whose slots freed by expiry every few
// seconds.
func (m *Main) maintain(ctx context.Context) {
	history := time.NewTicker(m.cfg.HistoryInterval)
	defer history.Stop()
	queue := time.NewTicker(15 * time.Second)
	defer queue.Stop()
	prune := true
	for {
		if prune {
			if err := m.pruneHistory(ctx); err != nil && ctx.Err() == nil {
				m.log.Error("history retention", "err", err)
			}
		} else if err := m.DB.ReleaseQueuedStarts(ctx); err != nil && ctx.Err() == nil {
			m.log.Error("release queued starts", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-history.C:
			prune = true
		case <-queue.C:
			prune = false
		}
	}
}

// pruneHistory deletes runs, and finished instructions, beyond the
// retention limits, if any are set.
func (m *Main) pruneHistory(ctx context.Context) error {
	if m.cfg.DownloadedMaxRows > 0 {
		n, err := m.DB.PruneDownloaded(ctx, m.cfg.DownloadedMaxRows)
		if err != nil {
			return err
		}
		if n > 0 {
			m.log.Info("download list retention deleted instructions", "deleted", n)
		}
	}
	if m.cfg.HistoryMaxAge <= 0 && m.cfg.HistoryMaxRunsPerJob <= 0 {
		return nil
	}
	res, err := m.DB.PurgeRuns(ctx, catalog.PurgeRequest{OlderThan: max(m.cfg.HistoryMaxAge, 0), KeepPerJob: max(m.cfg.HistoryMaxRunsPerJob, 0)})
	if res.Deleted > 0 {
		m.log.Info("history retention deleted runs", "deleted", res.Deleted)
	}
	return err
}

// Close releases the listener and the catalog. It is safe after Run returns,
// and when Open failed part way.
func (m *Main) Close() error {
	m.hub.Close()
	var errs []error
	if m.srv != nil {
		errs = append(errs, ignoreClosed(m.srv.Close()))
	}
	if m.ln != nil {
		errs = append(errs, ignoreClosed(m.ln.Close()))
	}
	m.alerts.stop()
	if m.DB != nil {
		errs = append(errs, m.DB.Close())
		m.DB = nil
	}
	return errors.Join(errs...)
}

func ignoreClosed(err error) error {
	if err == nil || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// metrics are the master's Prometheus metrics, in its own registry so that
// several masters can run in one process (tests, muster dev).
type metrics struct {
	registry *prometheus.Registry
	polls    prometheus.Counter
	held     prometheus.Gauge
	runs     prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		polls:    prometheus.NewCounter(prometheus.CounterOpts{Name: "muster_polls_total", Help: "Polls received from targets."}),
		held:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "muster_polls_held", Help: "Polls being held open now."}),
		runs:     prometheus.NewCounter(prometheus.CounterOpts{Name: "muster_run_reports_total", Help: "Run reports received from targets."}),
	}
	m.registry.MustRegister(m.polls, m.held, m.runs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
