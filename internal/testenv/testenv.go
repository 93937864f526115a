// Package testenv runs a real master and real targets in one process for
// end-to-end tests: real TLS on 127.0.0.1, real SQLite files in temporary
// directories, real step processes.
package testenv

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/agent"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/master"
)

// Options shape an environment.
type Options struct {
	// Targets are enlisted and started by New, by name.
	Targets []string
	// Master adjusts the master's configuration before it starts.
	Master func(*master.Config)
	// Target adjusts each target's configuration before it starts.
	Target func(*agent.Config)
}

// Env is a running master with targets.
type Env struct {
	t       testing.TB
	Dir     string
	Master  *master.Main
	Client  *httpapi.Client
	Log     *slog.Logger
	opts    Options
	stop    context.CancelFunc
	done    chan error
	mu      sync.Mutex
	targets map[string]*Target
}

// Target is a running target of an Env.
type Target struct {
	Name   string
	Dir    string
	Main   *agent.Main
	stop   context.CancelFunc
	exited chan struct{}
	err    error
}

// New starts a master in a temporary directory and enlists and starts the
// targets named in opts. Everything stops when the test ends.
func New(t testing.TB, opts Options) *Env {
	t.Helper()
	e := &Env{t: t, Dir: t.TempDir(), opts: opts, targets: map[string]*Target{}, Log: Logger(t)}
	t.Cleanup(e.Close)
	e.StartMaster("127.0.0.1:0")
	var err error
	if e.Client, err = httpapi.NewClient(e.Master.URL, e.Master.AdminToken, e.Master.CA.Pool()); err != nil {
		t.Fatal(err)
	}
	for _, name := range opts.Targets {
		e.AddTarget(name)
	}
	return e
}

// Join starts a second master beside first's, on a data directory of its
// own, configured by cfg (to share first's catalog). Its client uses the
// admin token first's master made. It starts no target.
func Join(t testing.TB, first *Env, cfg func(*master.Config)) *Env {
	t.Helper()
	e := &Env{t: t, Dir: t.TempDir(), opts: Options{Master: cfg, Target: first.opts.Target}, targets: map[string]*Target{}, Log: first.Log}
	t.Cleanup(e.Close)
	e.StartMaster("127.0.0.1:0")
	var err error
	if e.Client, err = httpapi.NewClient(e.Master.URL, first.Master.AdminToken, e.Master.CA.Pool()); err != nil {
		t.Fatal(err)
	}
	return e
}

// StartMaster starts the master on listen, with the environment's data
// directory: a restart keeps its catalog and CA.
func (e *Env) StartMaster(listen string) {
	e.t.Helper()
	cfg := master.DefaultConfig()
	cfg.DataDir = filepath.Join(e.Dir, "master")
	cfg.Listen = listen
	cfg.Logger = e.Log
	if e.opts.Master != nil {
		e.opts.Master(&cfg)
	}
	m, err := master.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := m.Open(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	if e.Master != nil && e.Master.AdminToken != "" {
		m.AdminToken = e.Master.AdminToken
	}
	e.Master = m
	ctx, cancel := context.WithCancel(context.Background())
	e.stop, e.done = cancel, make(chan error, 1)
	go func() { e.done <- m.Run(ctx) }()
}

// StopMaster stops the master as SIGTERM does, and returns how long it took.
func (e *Env) StopMaster() time.Duration {
	e.t.Helper()
	start := time.Now()
	e.stop()
	if err := <-e.done; err != nil {
		e.t.Errorf("master: %v", err)
	}
	took := time.Since(start)
	e.Master.Close()
	e.stop = nil
	return took
}

// RestartMaster stops the master and starts it again on the same address.
func (e *Env) RestartMaster() {
	e.t.Helper()
	addr := strings.TrimPrefix(e.Master.URL, "https://")
	if e.stop != nil {
		e.StopMaster()
	}
	e.StartMaster(addr)
}

// Close stops the targets, then the master.
func (e *Env) Close() {
	e.mu.Lock()
	targets := e.targets
	e.targets = map[string]*Target{}
	e.mu.Unlock()
	for _, tg := range targets {
		tg.Stop(e.t)
	}
	if e.stop != nil {
		e.stop()
		<-e.done
		e.Master.Close()
		e.stop = nil
	}
}

// Token creates an enlistment token for name through the API.
func (e *Env) Token(name string) string {
	e.t.Helper()
	tok, err := e.Client.CreateToken(context.Background(), name, 15*time.Minute)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok.Token
}

// AddTarget enlists a new target and starts it.
func (e *Env) AddTarget(name string) *Target {
	e.t.Helper()
	dir := filepath.Join(e.Dir, "target-"+name)
	if _, err := agent.Enlist(context.Background(), agent.EnlistOptions{
		MasterURL: e.Master.URL, Token: e.Token(name), Name: name, DataDir: dir,
	}); err != nil {
		e.t.Fatal(err)
	}
	return e.StartTarget(name)
}

// StartTarget starts the (enlisted) target's daemon.
func (e *Env) StartTarget(name string) *Target {
	e.t.Helper()
	cfg := agent.DefaultConfig()
	cfg.DataDir = filepath.Join(e.Dir, "target-"+name)
	cfg.Logger = e.Log
	if e.opts.Target != nil {
		e.opts.Target(&cfg)
	}
	m, err := agent.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := m.Open(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tg := &Target{Name: name, Dir: cfg.DataDir, Main: m, stop: cancel, exited: make(chan struct{})}
	go func() {
		tg.err = m.Run(ctx)
		close(tg.exited)
	}()
	e.mu.Lock()
	e.targets[name] = tg
	e.mu.Unlock()
	return tg
}

// Target returns a running target by name.
func (e *Env) Target(name string) *Target {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.targets[name]
}

// Exited is closed when the target's daemon has returned from Run.
func (tg *Target) Exited() <-chan struct{} { return tg.exited }

// Err is what Run returned, once Exited is closed.
func (tg *Target) Err() error { return tg.err }

// Stop stops a target's daemon gracefully and releases its data directory.
func (tg *Target) Stop(t testing.TB) {
	if tg.stop == nil {
		return
	}
	tg.stop()
	<-tg.exited
	if tg.err != nil && !errors.Is(tg.err, agent.ErrDefected) {
		t.Errorf("target %s: %v", tg.Name, tg.err)
	}
	tg.Main.Close()
	tg.stop = nil
}

// Clock is a clock a test can move forward, for the master's or a
// target's Now.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now returns the real time plus the offset.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Set makes the clock read t now (and move on from there in real time).
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.offset = time.Until(t)
	c.mu.Unlock()
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// Eventually waits until cond holds, checking often, for at most d.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Logger returns a logger that writes warnings and errors to the test log
// while the test runs, and nothing after it ends.
func Logger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(p))
	}
	return len(p), nil
}

var _ io.Writer = (*testWriter)(nil)
