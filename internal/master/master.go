// Package master is the master daemon: the catalog, the CA, and one TLS
// listener serving the operator API (/api/v1/), the target protocol
// (/agent/v1/), metrics and health. Several masters may serve one catalog on
// PostgreSQL: each serves targets and operators, a post by one wakes the
// polls another holds, and the duties that must run once (offline and
// no-success detection, retention, releasing queued starts, delivering
// alerts) run on whichever holds the catalog's lease.
package master

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/console"
	"github.com/musterhq/muster/internal/dirlock"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/pki"
)

// File names in the master's data directory, besides the CA's.
const (
	CatalogFile    = "catalog.db"
	AdminTokenFile = "admin.token"
)

// targetStoreFile is the store of a target's data directory
// (agent.StoreFile), which a master's never holds.
const targetStoreFile = "target.db"

// Config configures a master.
type Config struct {
	// DataDir holds the master's own files: the CA (or, on a shared
	// catalog, its certificate), the server certificate, the admin token
	// of a new catalog, and a SQLite catalog.
	DataDir string
	// Store is the catalog: "" for SQLite in DataDir, or a PostgreSQL URL
	// (postgres://…) for a catalog several masters share.
	Store string
	// SecretFile holds the secret that encrypts the CA's key in a shared
	// catalog; every master of the catalog reads the same one.
	SecretFile string
	// Listen is the address of the single TLS listener.
	Listen string
	// Advertise is the URL targets and operators reach this master at
	// (https://host:port); by default, made from the listener's address.
	// The server certificate covers its host.
	Advertise string
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
	// ResetAdminToken issues a new secret for the admin key, replacing the
	// old one, and makes it active again if it was revoked or expired.
	ResetAdminToken bool
	// HistoryMaxRunsPerJob keeps at most this many finished runs per job
	// (0: no limit); HistoryMaxAge deletes finished runs older than it (0:
	// no limit). Both are applied every HistoryInterval.
	HistoryMaxRunsPerJob int
	HistoryMaxAge        time.Duration
	HistoryInterval      time.Duration
	// AuditMaxAge deletes audit log entries older than it, with the
	// history limits; it is never unlimited.
	AuditMaxAge time.Duration
	// DownloadedMaxRows keeps at most this many finished instructions per
	// target in the download list (0: no limit), applied with the history
	// limits (SQL Server's DownloadedMaxRows).
	DownloadedMaxRows int
	// RecheckInterval is how often a master of a shared catalog checks that
	// no held poll missed a post (a lost notification costs at most this
	// delay), and says it is alive to the others.
	RecheckInterval time.Duration
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// Alerts configures events and notifications.
	Alerts AlertConfig
	// Limits bound what clients can make the master hold; zero fields take
	// their defaults (DefaultLimits).
	Limits LimitConfig
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
		RecheckInterval: 5 * time.Second,
		Now:             time.Now,

		HistoryMaxRunsPerJob: 10000,
		HistoryMaxAge:        90 * 24 * time.Hour,
		HistoryInterval:      10 * time.Minute,
		DownloadedMaxRows:    1000,
		AuditMaxAge:          catalog.DefaultAuditMaxAge,

		Limits: DefaultLimits(),
	}
}

// Main is a running master.
type Main struct {
	cfg Config
	log *slog.Logger

	Catalog *catalog.Catalog
	CA      *pki.CA
	hub     *Hub

	// URL is where the master is reached: its advertised URL.
	URL string
	// AdminToken is set when this start created (or reset) the admin token.
	AdminToken string
	// CreatedCA is set when this start created the catalog's CA.
	CreatedCA bool

	lock           *dirlock.Lock
	ln             net.Listener
	srv            *http.Server
	resumed        *resumedListener // connections of answered polls, back to srv
	answerers      *answerers       // answer parked polls
	agentRoutes    []AgentRoute
	metrics        *masterMetrics
	enlistFailures *failureLimiter
	targetRequests *slots[int64]
	uploads        *uploads
	alerts         *alerting
	leader         atomic.Bool
	rechecks       chan struct{}            // recheckSoon: run the recheck loop now
	recorded       bool                     // the recheck loop recorded this master once
	masters        atomic.Pointer[[]string] // advertised URLs of the live masters
	// heartbeatWarned holds, by target id, what was last said of the
	// heartbeat text a poll of the target left out.
	heartbeatWarned sync.Map
	started         time.Time
	bg              sync.WaitGroup
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
	if cfg.AuditMaxAge <= 0 {
		cfg.AuditMaxAge = def.AuditMaxAge
	}
	if cfg.RecheckInterval <= 0 {
		cfg.RecheckInterval = def.RecheckInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Advertise != "" {
		u, err := advertisedURL(cfg.Advertise)
		if err != nil {
			return nil, err
		}
		cfg.Advertise = u
	}
	for _, h := range cfg.Hosts {
		if err := pki.CheckHost(h); err != nil {
			return nil, muster.Errorf(muster.EINVALID, "--host %q is not a host name or an address the server certificate can cover (such as master.example.com or 10.0.0.5): %v", h, err)
		}
	}
	if _, ok := sqlitePath(cfg.Store); !ok && !isShared(cfg.Store) {
		return nil, fmt.Errorf("--store: %q is neither a PostgreSQL URL (postgres://user@host/db) nor sqlite:PATH", cfg.Store)
	}
	if isShared(cfg.Store) && cfg.SecretFile == "" {
		return nil, errors.New("--secret-file: a catalog on PostgreSQL keeps the CA's key encrypted with a secret that every master reads from the same file; create one with `head -c 32 /dev/urandom | base64 > FILE` (mode 0600) and give it to every master")
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if err := cfg.Limits.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	alerts, err := newAlerting(cfg, log)
	if err != nil {
		return nil, err
	}
	m := &Main{cfg: cfg, log: log, hub: NewHub(), rechecks: make(chan struct{}, 1), enlistFailures: newFailureLimiter(10, time.Minute),
		targetRequests: newSlots[int64](maxRequestsPerTarget), uploads: newUploads(cfg.Limits), alerts: alerts, metrics: newMetrics()}
	m.alerts.leader = m.leader.Load
	m.answerers = newAnswerers(m)
	m.hub.answer = m.answerers.add
	return m, nil
}

func (m *Main) now() time.Time { return m.cfg.Now() }

// Open takes the data directory, opens the catalog, loads (or, on a new
// catalog, creates) the CA and the admin token, issues the server
// certificate and binds the listener.
func (m *Main) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	// A target cannot be a master, as a master cannot be a target
	// (SQL Server's 14360): nothing is written into a target's
	// directory.
	if _, err := os.Lstat(filepath.Join(m.cfg.DataDir, targetStoreFile)); err == nil {
		return muster.Errorf(muster.EINVALID, "--data: %s is a target's data directory (it holds %s); a target cannot be a master: give the master a directory of its own", m.cfg.DataDir, targetStoreFile)
	}
	if err := os.MkdirAll(m.cfg.DataDir, 0o700); err != nil {
		return err
	}
	if m.lock, err = dirlock.Acquire(m.cfg.DataDir); err != nil {
		return err
	}
	if !isShared(m.cfg.Store) {
		if err := checkOwnCAFiles(m.cfg.DataDir); err != nil {
			return err
		}
	}
	store, err := openStore(ctx, m.cfg)
	if err != nil {
		return err
	}
	store = catalog.TimeStore(store, m.metrics.observeStore)
	m.Catalog, err = catalog.Open(ctx, store, catalog.Options{Now: m.cfg.Now, Logger: m.log, OnCommit: m.committed})
	if err != nil {
		store.Close()
		return err
	}
	if err := m.loadCA(ctx); err != nil {
		return err
	}
	m.sayCAEnd()
	if m.cfg.NewEpoch {
		epoch, err := m.Catalog.RotateEpoch(ctx)
		if err != nil {
			return err
		}
		m.log.Warn("catalog epoch rotated: every target will resync at its next poll", "epoch", epoch)
	}
	if err := m.ensureAdminToken(ctx); err != nil {
		return err
	}

	logFileLimit(m.log)
	m.ln, err = net.Listen("tcp", m.cfg.Listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", m.cfg.Listen, err)
	}
	m.resumed = newResumedListener(m.ln.Addr())
	host, port, _ := net.SplitHostPort(m.ln.Addr().String())
	hosts := append(pki.DefaultHosts(), m.cfg.Hosts...)
	urlHost := host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		urlHost, _ = os.Hostname()
	} else {
		hosts = append(hosts, host)
	}
	m.URL = "https://" + net.JoinHostPort(urlHost, port)
	if m.cfg.Advertise != "" {
		u, _ := url.Parse(m.cfg.Advertise)
		m.URL = m.cfg.Advertise
		hosts = append(hosts, u.Hostname())
	} else if ip := net.ParseIP(urlHost); ip != nil && ip.IsLoopback() && isShared(m.cfg.Store) {
		// The other masters give this URL to their targets, and it takes
		// them to their own host.
		m.log.Warn(fmt.Sprintf("this master's URL, made from --listen %s without --advertise, is reached from this host only: the other masters of the catalog give it to their targets, which cannot reach this master by it; listen on an address they reach, or give --advertise https://HOST:PORT", m.cfg.Listen),
			muster.LogMaster, m.URL)
	}
	cert, err := pki.NewServerCert(m.cfg.DataDir, m.CA, hosts, m.now, func(err error) {
		m.log.Error("the server certificate is due and could not be re-issued; trying again in a minute", muster.LogErr, err)
	})
	if err != nil {
		return err
	}
	// On a shared catalog, the URL is this master's from now on, unless
	// it is another's.
	m.started = m.now()
	if isShared(m.cfg.Store) {
		if err := m.record(ctx, m.started); err != nil {
			return err
		}
	}
	// The group's masters are announced once read from the catalog; till
	// then polls announce none, which leaves a target's list as it is.
	m.masters.Store(&[]string{})

	m.metrics.registry.Register(&gaugeCollector{read: m.Catalog.Gauges, now: time.Now, maxAge: time.Second})
	mux := http.NewServeMux()
	agent := &agent{m: m}
	m.agentRoutes = agent.routes()
	agent.register(mux, m.agentRoutes)
	api := &httpapi.Server{DB: m.Catalog, Tokens: m, Hub: m.hub, Poker: m.hub, Now: m.cfg.Now, Log: m.log}
	api.Routes(mux)
	web := &console.Server{DB: m.Catalog, API: api, Poker: m.hub, Log: m.log, Secure: true}
	if err := web.Routes(mux); err != nil {
		return err
	}
	// The series name every job and target: as the rest of the fleet's
	// inventory, they are for a key's holder.
	mux.Handle("GET /metrics", api.Protect("GET /metrics", catalog.RoleReader, m.metrics.registry.Handler(0)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", m.ready)
	m.srv = &http.Server{
		Handler:           newAdmission(web.WithPages(mux), m.cfg.Limits, accessOf(m.agentRoutes), m.log, m.metrics.registry),
		TLSConfig:         serverTLSConfig(cert, m.CA),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelDebug),
	}
	return nil
}

// serverTLSConfig is the listener's configuration, presenting the server
// certificate cert keeps current: in every handshake, with or without a
// server name (a target that reaches the master by its address sends
// none).
func serverTLSConfig(cert *pki.ServerCert, ca *pki.CA) *tls.Config {
	cfg := pki.ServerTLSConfig(tls.Certificate{}, ca)
	cfg.Certificates, cfg.GetCertificate = nil, cert.Get
	return cfg
}

// isShared reports whether a --store names a catalog several masters can
// share.
func isShared(store string) bool {
	return strings.HasPrefix(store, "postgres://") || strings.HasPrefix(store, "postgresql://")
}

// advertisedURL checks an --advertise URL.
func advertisedURL(s string) (string, error) {
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil || u.Scheme != "https" || u.Hostname() == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("--advertise: %q is not a master URL such as https://master1.example.com:7070", s)
	}
	return u.String(), nil
}

// committed hears of every commit of this master's catalog, and of those
// other masters tell it of.
func (m *Main) committed(c catalog.Commit) {
	m.metrics.ended(c.Ended)
	m.hub.Wake(c.Targets, c.Posted)
	if len(c.Targets) > 0 {
		// The answerer the wake readied runs next on this processor, but
		// only once this goroutine blocks: after the committing request has
		// written its own answer. Yielding lets it write the poll's reply
		// first, which is what the target waits for.
		runtime.Gosched()
	}
	m.hub.Poke(c.Poke)
	if len(c.Runs) > 0 {
		m.hub.WakeRuns()
	}
	if len(c.Runs) > 0 || c.Events {
		m.alerts.wake()
	}
	if c.Masters {
		m.recheckSoon()
	}
}

// recheckSoon has the recheck loop run now rather than at its next tick.
func (m *Main) recheckSoon() {
	select {
	case m.rechecks <- struct{}{}:
	default:
	}
}

// AgentRoutes returns the endpoints of the target protocol the master
// serves, so that tests can cover each one, however many there are.
func (m *Main) AgentRoutes() []AgentRoute { return m.agentRoutes }

// NewEnlistToken creates a single-use enlistment token for a target name,
// valid for ttl, and returns its text (the catalog keeps only its hash).
func (m *Main) NewEnlistToken(ctx context.Context, name string, ttl time.Duration, by muster.Actor) (string, time.Time, error) {
	tok := pki.NewEnlistToken(m.CA.Fingerprint())
	expires, err := m.Catalog.CreateEnlistToken(ctx, pki.HashSecret(tok.Secret), muster.NormalizeTargetName(name), ttl, by)
	return tok.String(), expires, err
}

// Self is the master as the audit log names it, for the changes it makes
// itself.
func (m *Main) Self() muster.Actor { return muster.Actor{Kind: muster.ActorMaster, Name: m.cfg.Name} }

// ensureAdminToken creates the first admin key, named admin, or gives it a
// new secret when asked, and writes the secret (0600) to the data
// directory. Only its hash is stored. A master joining a catalog that has
// keys writes none.
func (m *Main) ensureAdminToken(ctx context.Context) error {
	n, err := m.Catalog.CountAPITokens(ctx)
	if err != nil {
		return err
	}
	if n > 0 && !m.cfg.ResetAdminToken {
		return nil
	}
	secret := "mat_" + pki.RandomSecret()
	if m.cfg.ResetAdminToken {
		err = m.Catalog.ResetAdminKey(ctx, pki.HashSecret(secret), m.Self())
	} else {
		_, err = m.Catalog.CreateAPIKey(ctx, catalog.NewAPIKey{Name: catalog.AdminKey, Role: catalog.RoleAdmin}, pki.HashSecret(secret), m.Self())
		if muster.ErrorCode(err) == muster.ECONFLICT {
			return nil // another master starting on the same new catalog made it
		}
	}
	if err != nil {
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
	errc, resumedc := make(chan error, 1), make(chan error, 1)
	m.answerers.start()
	defer m.answerers.stop() // after the hub answered what is parked
	go func() { errc <- m.srv.Serve(tls.NewListener(m.ln, m.srv.TLSConfig)) }()
	go func() { resumedc <- m.srv.Serve(m.resumed) }()
	defer func() { m.resumed.Close(); <-resumedc; m.resumed.wait() }()
	defer m.hub.Close()
	bg, stopBG := context.WithCancel(ctx)
	m.bg.Add(4)
	go func() { defer m.bg.Done(); m.maintain(bg) }()
	go func() { defer m.bg.Done(); m.Catalog.Store().Lead(bg, m.lead) }()
	go func() { defer m.bg.Done(); m.Catalog.Store().Listen(bg, m.heard) }()
	go func() { defer m.bg.Done(); m.recheck(bg) }()
	m.alerts.start(m.Catalog)
	defer func() { stopBG(); m.bg.Wait(); m.alerts.stop() }()
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

// masterURLs are the advertised URLs of the masters of a shared
// catalog, for targets to move between; a master alone sends none (its
// own URL, made from its listener, may not be how its targets reach it;
// see recheckOnce), and so does one that has not read them from the
// catalog yet.
func (m *Main) masterURLs() []string {
	if !m.Catalog.Store().Shared() {
		return nil
	}
	return *m.masters.Load()
}

// lead hears whether this master holds the singleton duties.
func (m *Main) lead(held bool) {
	if m.leader.Swap(held) == held {
		return
	}
	if held {
		m.log.Info("this master now runs the catalog's singleton duties (detection, retention, queued starts, alert delivery)")
		m.alerts.lead(m.now())
	} else {
		m.log.Info("this master no longer runs the catalog's singleton duties")
	}
}

// heard wakes what other masters' commits concern here. After a break in
// notifications, every held poll looks again.
func (m *Main) heard(c catalog.Commit, missed bool) {
	if missed || c.Credentials {
		m.Catalog.ForgetCredentials()
	}
	if missed {
		m.hub.WakeAll()
		m.hub.WakeRuns()
		m.alerts.wake()
		m.recheckSoon()
		return
	}
	// The runs another master's commit ended are that master's to count.
	c.Ended = nil
	m.committed(c)
}

// recheck, on a shared catalog, wakes the held polls a lost notification
// left behind, keeps the epoch and the list of masters current, and says
// this master is alive.
func (m *Main) recheck(ctx context.Context) {
	if !m.Catalog.Store().Shared() {
		return
	}
	t := time.NewTicker(m.cfg.RecheckInterval)
	defer t.Stop()
	for {
		if err := m.recheckOnce(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("checking the shared catalog failed", muster.LogErr, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.rechecks:
		}
	}
}

// masterTTL is how long a master that stopped saying it is alive stays in
// the list targets are given: a day, so that a master down for a while (a
// crash, a host's reboot, a rolling restart) is still known to the targets
// when another fails after it came back. A target tries a master that does
// not answer once and moves on; a master removed for good drops off the
// list a day after it stopped.
const masterTTL = 24 * time.Hour

func (m *Main) recheckOnce(ctx context.Context) error {
	now := m.now()
	taken := m.record(ctx, now)
	if taken != nil && muster.ErrorCode(taken) != muster.ECONFLICT {
		return taken
	}
	masters, err := m.Catalog.FindMasters(ctx, now.Add(-masterTTL))
	if err != nil {
		return err
	}
	urls := make([]string, 0, len(masters))
	// Another master holding this one's URL is a master to tell of
	// commits, though the list has no other URL.
	others := taken != nil
	for _, ms := range masters {
		urls = append(urls, ms.URL)
		others = others || ms.URL != m.URL
	}
	// Alone, this master's commits need tell no one; a master that starts
	// is heard of at once (Commit.Masters), and read here again. Nor are
	// its targets told of masters: its own URL may be made from its
	// listener, not how they reach it, and would replace the one they use.
	m.Catalog.Store().SetPeers(others)
	if !others {
		urls = urls[:0]
	}
	if prev := m.masters.Swap(&urls); !slices.Equal(*prev, urls) {
		// Targets hear of a master that joined (or left) at once, not at
		// their next poll: the one they poll may fail before that.
		m.hub.PokeAll()
	}
	if err := m.Catalog.RefreshEpoch(ctx); err != nil {
		return err
	}
	seqs, err := m.Catalog.LastSeqs(ctx)
	if err != nil {
		return err
	}
	if n := m.hub.WakeBehind(seqs); n > 0 {
		m.log.Debug("woke polls a notification missed", "polls", n)
	}
	return taken
}

// record says, in the catalog, that this master serves it at its URL. A
// URL another master has recorded, and said it is alive at within three
// checks, is refused: see Catalog.UpsertMaster.
func (m *Main) record(ctx context.Context, now time.Time) error {
	live := 3 * m.cfg.RecheckInterval
	holder, err := m.Catalog.UpsertMaster(ctx, catalog.MasterRow{Name: m.cfg.Name, URL: m.URL, StartedAt: m.started, SeenAt: now}, !m.recorded, now.Add(-live))
	if err != nil {
		return err
	}
	if holder != nil {
		flag := "--advertise " + m.URL
		if m.cfg.Advertise == "" {
			flag = fmt.Sprintf("--advertise (not given, so made from --listen %s: %s)", m.cfg.Listen, m.URL)
		}
		return muster.Errorf(muster.ECONFLICT, "%s: master %s serves this catalog at that URL (it said so %s ago); give each master an --advertise URL of its own, where targets reach it and no other master (a URL is free again %s after its master last said so)",
			flag, holder.Name, now.Sub(holder.SeenAt).Round(time.Millisecond), live)
	}
	m.recorded = true
	return nil
}

// maintain applies the history retention limits every HistoryInterval,
// and every few seconds releases held-back STARTs whose slots freed by
// expiry and moves on rollouts whose waves ended with a START refused or
// expired, while this master holds the singleton duties.
func (m *Main) maintain(ctx context.Context) {
	history := time.NewTicker(m.cfg.HistoryInterval)
	defer history.Stop()
	queue := time.NewTicker(15 * time.Second)
	defer queue.Stop()
	prune := true
	for {
		switch {
		case !m.leader.Load():
		case prune:
			if err := m.pruneHistory(ctx); err != nil && ctx.Err() == nil {
				m.log.Error("history retention", muster.LogErr, err)
			}
		default:
			if err := m.Catalog.ReleaseQueuedStarts(ctx); err != nil && ctx.Err() == nil {
				m.log.Error("release queued starts", muster.LogErr, err)
			}
			if err := m.Catalog.AdvanceRollouts(ctx); err != nil && ctx.Err() == nil {
				m.log.Error("advance rollouts", muster.LogErr, err)
			}
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
// retention limits, if any are set, audit log entries older than
// AuditMaxAge, and start requests' idempotency keys past their window.
func (m *Main) pruneHistory(ctx context.Context) error {
	n, err := m.Catalog.PruneAudit(ctx, m.cfg.AuditMaxAge)
	if err != nil {
		return err
	}
	if n > 0 {
		m.log.Info("audit log retention deleted entries", "deleted", n)
	}
	if n, err := m.Catalog.PruneStarts(ctx); err != nil {
		return err
	} else if n > 0 {
		m.log.Debug("forgot idempotency keys past their window", "deleted", n)
	}
	if m.cfg.DownloadedMaxRows > 0 {
		n, err := m.Catalog.PruneDownloaded(ctx, m.cfg.DownloadedMaxRows)
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
	res, err := m.Catalog.PurgeRuns(ctx, catalog.PurgeRequest{OlderThan: max(m.cfg.HistoryMaxAge, 0), KeepPerJob: max(m.cfg.HistoryMaxRunsPerJob, 0)}, m.Self())
	if res.Deleted > 0 {
		m.log.Info("history retention deleted runs", "deleted", res.Deleted)
	}
	return err
}

// Close releases the listener, the catalog and the data directory. It is
// safe after Run returns, and when Open failed part way.
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
	if m.Catalog != nil {
		errs = append(errs, m.Catalog.Close())
		m.Catalog = nil
	}
	errs = append(errs, m.lock.Release())
	m.lock = nil
	return errors.Join(errs...)
}

func ignoreClosed(err error) error {
	if err == nil || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
