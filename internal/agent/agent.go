// Package agent is the daemon that runs on a target: it polls its master for
// instructions, applies them to its local store, runs jobs in its own
// processes, and reports every run back through a local spool that survives
// restarts and master outages.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/pki"
	"github.com/musterhq/muster/internal/schedule"
)

// Files in a target's data directory besides the store and the lock.
const (
	KeyFile  = "key.pem"
	CertFile = "cert.pem"
	CAFile   = "ca.pem"
)

// Config configures a target daemon.
type Config struct {
	// DataDir holds the enlistment, the store and the key.
	DataDir string
	// Settings are the local settings (from --config).
	Settings Settings
	// PollWait is the longest a poll asks the master to hold it.
	PollWait time.Duration
	// MaxBackoff caps the wait between attempts to reach the master.
	MaxBackoff time.Duration
	// KillGrace is how long a step's processes have between SIGTERM and
	// SIGKILL when the step is stopped or times out (5 s by default), unless
	// Hurry is called.
	KillGrace time.Duration
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// Subreaper makes the daemon the parent of processes its steps orphan
	// (PR_SET_CHILD_SUBREAPER), and reaps them. The target command sets it;
	// tests that run targets inside a test binary do not.
	Subreaper bool
	// ReleaseStartupCode has the target, releaseAfter after it starts,
	// release the pages of its binary that start-up mapped (see
	// releaseStartupCode). The target command sets it; a target inside
	// another process (a test, muster dev) does not.
	ReleaseStartupCode bool
	// MetricsListen is the address the target serves its own Prometheus
	// metrics at (GET /metrics, plain HTTP); none when empty.
	MetricsListen string
	// FailInstruction, when set, is asked before each instruction is
	// applied; an error it returns fails the instruction. Tests use it to
	// inject failures.
	FailInstruction func(agentproto.Instruction) error
	// Trace, when set, receives a line for each run a START launches:
	// the times of its dispatch's hops (see StartTrace).
	Trace io.Writer
	// Logger receives the daemon's log; slog.Default() by default.
	Logger *slog.Logger
}

// DefaultConfig returns a configuration with the defaults filled in.
func DefaultConfig() Config {
	return Config{
		Settings:   DefaultSettings(),
		PollWait:   55 * time.Second,
		MaxBackoff: 5 * time.Second,
		KillGrace:  5 * time.Second,
		Now:        time.Now,
	}
}

// Main is a target daemon.
type Main struct {
	cfg   Config
	log   *slog.Logger
	trace *tracer

	lock   *os.File
	store  *store
	enl    enlistment
	client *client
	loc    *time.Location
	tzName string
	zones  sync.Map // IANA name → *time.Location of the jobs' own zones, loaded once
	home   string

	exec  *executor
	sched *scheduler
	cg    cgroups
	// paused and clockOffset are set by the master (poll replies and
	// SYNC-TIME) and read by the scheduler, the applier and the heartbeat.
	paused      atomic.Bool
	clockOffset atomic.Pointer[time.Duration]
	// pollInterval is the poll interval in seconds, which the client
	// reads to know when to leave a silent master.
	pollInterval atomic.Int64
	// masters are the group's masters as the poll loop last recorded them.
	masters []string
	// replyTrace is the trace of the poll reply being applied, when
	// traced (poll loop only).
	replyTrace *StartTrace
	// unrecorded is the first error of the store that kept the instruction
	// the poll loop is applying from being committed (a full disk), so
	// that a START that expired meanwhile says why it waited (poll loop
	// only).
	unrecorded struct {
		seq int64
		err error
	}
	uploadWake chan struct{}
	backlog    *backlog
	spoolAges  spoolAges
	counters   counters
	metricsLn  net.Listener // the metrics' listener, when configured
	expiredAt  time.Time    // last sweep of expired runs (uploader only)
	// uploadLimits are what each upload starts from: what the protocol
	// says a master takes.
	uploadLimits uploadLimits
	events       *events
	defectReq    chan defectRequest
	// masterDefect holds the DEFECT the master posted until Run takes it.
	masterDefect chan struct{}
	wg           sync.WaitGroup
	// testHooks are set only by tests, to hold a loop at a point of the
	// start-up order.
	testHooks testHooks
}

// testHooks are called, when set, at points of the start-up order. They
// are nil outside tests.
type testHooks struct {
	beforeLoad func() error // before each load of the schedules; an error fails the load
	pollHeld   func()       // when the poll loop waits for the schedules' first load
}

// New checks the configuration; Open does the work.
func New(cfg Config) (*Main, error) {
	def := DefaultConfig()
	if cfg.DataDir == "" {
		return nil, errors.New("--data: a data directory is required")
	}
	if cfg.Settings.OutputLimit == 0 {
		cfg.Settings = def.Settings
	}
	if cfg.Settings.RunOutputLimit == 0 {
		cfg.Settings.RunOutputLimit = def.Settings.RunOutputLimit
	}
	if cfg.PollWait <= 0 {
		cfg.PollWait = def.PollWait
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = def.MaxBackoff
	}
	if cfg.KillGrace <= 0 {
		cfg.KillGrace = def.KillGrace
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	ev := newEvents(cfg.Now)
	return &Main{cfg: cfg, log: ev.logger(log), trace: newTracer(cfg.Trace), events: ev, uploadWake: make(chan struct{}, 1), backlog: newBacklog(),
		uploadLimits: defaultUploadLimits(), defectReq: make(chan defectRequest), masterDefect: make(chan struct{}, 1)}, nil
}

// notEnlisted says that dir holds no enlistment.
func notEnlisted(dir string) error {
	return muster.Errorf(muster.ENOTFOUND, "%s is not enlisted in a master; run `muster enlist --data %s ...` first", dir, dir)
}

// Open locks the data directory, opens the store, loads the enlistment and
// the certificate, and records runs a previous process left running as
// abandoned.
func (m *Main) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	keepDescriptorsFromSteps()
	if err := checkEnlisted(m.cfg.DataDir); err != nil {
		return err
	}
	if m.lock, err = lockDir(m.cfg.DataDir); err != nil {
		return err
	}
	if m.store, err = openStore(ctx, filepath.Join(m.cfg.DataDir, StoreFile), m.cfg.Now); err != nil {
		return err
	}
	enl, ok, err := m.store.enlistment(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return notEnlisted(m.cfg.DataDir)
	}
	m.enl = enl
	m.pollInterval.Store(int64(enl.PollInterval))
	m.masters = enl.Masters
	m.log = m.log.With(muster.LogTarget, enl.Name)
	m.paused.Store(enl.Paused)
	m.clockOffset.Store(enl.ClockOffset)
	cert, err := loadIdentity(m.cfg.DataDir)
	if err != nil {
		return err
	}
	roots, err := pki.LoadPool(filepath.Join(m.cfg.DataDir, CAFile))
	if err != nil {
		return err
	}
	m.client, err = newClient(enl.Masters, enl.MasterURL, roots, cert, m.cfg.PollWait, m.cfg.Now,
		func() time.Duration { return time.Duration(m.pollInterval.Load()) * time.Second }, m.movedTo)
	if err != nil {
		return fmt.Errorf("%s: the enlistment's masters: %w", m.cfg.DataDir, err)
	}
	if m.cfg.Settings.TimeZone != "" {
		m.loc, _ = schedule.LoadZone(m.cfg.Settings.TimeZone)
		m.tzName = m.cfg.Settings.TimeZone
	} else {
		m.loc, m.tzName = localZone()
	}
	m.home = "/"
	if u, err := user.Current(); err == nil && u.HomeDir != "" {
		m.home = u.HomeDir
	}
	m.exec = newExecutor(m)
	m.sched = newScheduler(m)
	if m.cg.base, err = cgroupBase(enl.UID); err != nil {
		m.log.Info("runs are tracked by their process group and environment, not by cgroups", muster.LogErr, err)
	}
	if m.cfg.Subreaper {
		if err := becomeSubreaper(); err != nil {
			m.log.Warn("cannot become a child subreaper; orphaned step processes are found by their environment only", muster.LogErr, err)
			m.cfg.Subreaper = false
		}
	}
	if err := m.listenMetrics(); err != nil {
		return err
	}
	return m.exec.recover(ctx)
}

// Hurry kills the steps of the runs being stopped at once, without the
// grace between SIGTERM and SIGKILL: a daemon told to stop a second time
// calls it. Their runs are recorded as the stop says.
func (m *Main) Hurry() {
	if m.exec != nil {
		m.exec.hurryOnce.Do(func() { close(m.exec.hurry) })
	}
}

// Name returns the target's name.
func (m *Main) Name() string { return m.enl.Name }

// Run polls, applies, executes and uploads until ctx is canceled, then
// cancels running runs, records them, and tries once to upload them. It
// returns ErrDefected once the target has defected (asked by `muster
// defect` or by the master's DEFECT).
func (m *Main) Run(ctx context.Context) error {
	m.log.Info("target running", "name", m.enl.Name, muster.LogMaster, m.Master(), "masters", m.masters, "time_zone", m.tzName,
		"process_tracking", m.cg.processTracking(), "cgroup", m.cg.base)
	ctlCtx, stopControl := context.WithCancel(ctx)
	var ctl sync.WaitGroup
	ctl.Add(1)
	go func() { defer ctl.Done(); m.serveControl(ctlCtx) }()
	ctl.Add(1)
	go func() { defer ctl.Done(); m.serveMetrics(ctlCtx) }()
	defer func() { stopControl(); ctl.Wait() }()
	if m.cfg.ReleaseStartupCode {
		release := time.AfterFunc(releaseAfter, func() {
			n, err := releaseStartupCode()
			if err != nil {
				m.log.Warn("the pages start-up mapped are kept", muster.LogErr, err)
				return
			}
			m.log.Debug("released the pages start-up mapped", "bytes", n)
		})
		defer release.Stop()
	}
	for {
		req, ok, canceled := m.runUntil(ctx)
		if !ok {
			flush, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := m.uploadOnce(flush); err != nil {
				m.log.Warn("runs not uploaded before stopping; they stay in the spool", muster.LogErr, err)
			}
			m.log.Info("target stopped", "runs_canceled", canceled)
			return nil
		}
		res := m.defectNow(context.WithoutCancel(ctx), req.force, req.by == byMaster)
		res.RunsCanceled = canceled
		if req.done != nil {
			req.done <- res
		}
		if res.Error == "" {
			return ErrDefected
		}
		m.log.Warn("defect failed; carrying on", muster.LogErr, res.Error)
	}
}

// runUntil runs every loop until ctx is canceled or a defect is requested,
// then stops them and every running run. It reports the defect request and
// how many runs it canceled.
func (m *Main) runUntil(ctx context.Context) (defectRequest, bool, int) {
	runCtx, cancel := context.WithCancel(ctx)
	if m.cfg.Subreaper {
		m.wg.Add(1)
		go func() { defer m.wg.Done(); m.exec.procs.reapLoop(runCtx) }()
	}
	// The poll loop starts once the scheduler has tried its first load:
	// that load counts the fires missed while the daemon was down from when
	// each job was last changed, and a change applied before it would hide
	// them. A load that fails does not hold the poll loop: it is tried
	// again while the poll loop runs.
	loaded := make(chan struct{})
	m.wg.Add(4)
	go func() { defer m.wg.Done(); m.renewLoop(runCtx) }()
	go func() {
		defer m.wg.Done()
		if m.testHooks.pollHeld != nil {
			m.testHooks.pollHeld()
		}
		select {
		case <-loaded:
			m.pollLoop(runCtx)
		case <-runCtx.Done():
		}
	}()
	go func() { defer m.wg.Done(); m.uploadLoop(runCtx) }()
	go func() { defer m.wg.Done(); m.sched.run(runCtx, loaded) }()
	m.wg.Add(2)
	go func() { defer m.wg.Done(); m.eventLoop(runCtx) }()
	go func() { defer m.wg.Done(); m.backlogLoop(runCtx) }()
	var req defectRequest
	var defect bool
	reason := "the target daemon stopped"
	for !defect && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-m.masterDefect:
			req, defect = defectRequest{force: true, by: byMaster}, true
			reason = "the target is defecting (asked by the master)"
		case req = <-m.defectReq:
			// A defect that must tell the master checks first that it can,
			// so that a refused defect changes nothing: runs carry on.
			if !req.force {
				if err := m.reachMaster(ctx); err != nil {
					req.done <- DefectResult{Master: m.Master(), Error: fmt.Sprintf("the master at %s cannot be reached: %v; run again with --force to defect anyway", m.Master(), err)}
					continue
				}
			}
			defect = true
			reason = "the target is defecting (asked by the " + req.by + ")"
		}
	}
	cancel()
	m.wg.Wait()
	canceled := m.exec.stopAll(reason)
	m.exec.wait()
	if err := m.flushBacklog(context.Background()); err != nil {
		m.log.Error("runs could not be recorded before the daemon stopped; the next start records them abandoned", muster.LogErr, err)
	}
	return req, defect, canceled
}

// Close releases the store and the lock.
func (m *Main) Close() error {
	var errs []error
	if m.client != nil {
		m.client.close()
	}
	if m.exec != nil {
		m.exec.close()
	}
	if m.store != nil {
		errs = append(errs, m.store.Close())
		m.store = nil
	}
	if m.cg.base != "" {
		os.Remove(m.cg.base) // once its runs' cgroups are gone; a daemon killed leaves it for the next
	}
	if m.metricsLn != nil {
		m.metricsLn.Close() // Run's server has closed it, unless Run never ran
	}
	errs = append(errs, unlockDir(m.lock))
	m.lock = nil
	return errors.Join(errs...)
}

// now returns the target's clock in its time zone.
func (m *Main) now() time.Time { return m.cfg.Now().In(m.loc) }

// monotonic returns the monotonic clock's reading at t, a time of the
// clock near now. Durations are measured on the monotonic clock: the wall
// clock may be stepped while a run runs (NTP, a resumed VM), and now's
// times have no monotonic reading (In drops it).
func (m *Main) monotonic(t time.Time) time.Time { return time.Now().Add(t.Sub(m.cfg.Now())) }

// backoff returns the wait before attempt n (from 0) to reach the master.
func (m *Main) backoff(n int) time.Duration { return backoff(m.cfg.MaxBackoff, n) }

// logFailure logs the first failures of a retry loop as warnings and the
// rest at debug level, so a long master outage does not flood the log.
func logFailure(log *slog.Logger, failures int, msg string, err error, retryIn time.Duration) {
	level := slog.LevelWarn
	if failures > 3 {
		level = slog.LevelDebug
	}
	log.Log(context.Background(), level, msg, muster.LogErr, err, muster.LogRetryIn, retryIn.Round(time.Millisecond), muster.LogFailures, failures)
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// wakeUploader asks the uploader to send the spool now.
func (m *Main) wakeUploader() {
	select {
	case m.uploadWake <- struct{}{}:
	default:
	}
}

// LocalRuns returns the runs in this target's spool, oldest first.
func (m *Main) LocalRuns(ctx context.Context) ([]LocalRun, error) { return m.store.localRuns(ctx) }

// reachMaster checks that the master answers this target.
func (m *Main) reachMaster(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := m.client.time(ctx)
	return err
}

// SpoolStats returns how many runs wait for the master, and how many the
// full spool has dropped since enlistment.
func (m *Main) SpoolStats(ctx context.Context) (depth, dropped int) {
	return m.store.spoolDepth(ctx), m.store.spoolDropped(ctx)
}

// Jobs returns the names of the jobs this target holds.
func (m *Main) Jobs(ctx context.Context) ([]string, error) {
	jobs, err := m.store.jobs(ctx)
	names := make([]string, len(jobs))
	for i, j := range jobs {
		names[i] = j.Name
	}
	return names, err
}
