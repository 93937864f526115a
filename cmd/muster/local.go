package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agent"
	"github.com/musterhq/muster/internal/master"
)

// localTargets runs targets in the master's own process (muster dev, and
// muster master --also-target), enlisting each on first use.
type localTargets struct {
	m     *master.Main
	log   *slog.Logger
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
	mu    sync.Mutex // mains, which a signal's hurry reads
	mains []*agent.Main
}

func newLocalTargets(m *master.Main, log *slog.Logger) *localTargets {
	ctx, stop := context.WithCancel(context.Background())
	return &localTargets{m: m, log: log, ctx: ctx, stop: stop}
}

// start enlists the target in dir if it is not yet, and runs it.
func (l *localTargets) start(ctx context.Context, name, dir string, subreaper bool) error {
	if _, err := os.Stat(filepath.Join(dir, agent.CertFile)); errors.Is(err, os.ErrNotExist) {
		tok, _, err := l.m.NewEnlistToken(ctx, name, 15*time.Minute, l.m.Self())
		if err != nil {
			return err
		}
		if _, err := agent.Enlist(ctx, agent.EnlistOptions{MasterURL: l.m.URL, Token: tok, Name: name, DataDir: dir}); err != nil {
			return fmt.Errorf("enlist %s: %w", name, err)
		}
	}
	cfg := agent.DefaultConfig()
	cfg.DataDir, cfg.Logger, cfg.Subreaper = dir, l.log, subreaper
	t, err := agent.New(cfg)
	if err != nil {
		return err
	}
	if err := t.Open(ctx); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	l.mu.Lock()
	l.mains = append(l.mains, t)
	l.mu.Unlock()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		if err := t.Run(l.ctx); err != nil && !errors.Is(err, agent.ErrDefected) {
			l.log.Error("target stopped", muster.LogTarget, name, muster.LogErr, err)
		}
	}()
	return nil
}

// hurry kills the steps of every target's runs at once, rather than after
// their grace, as a second signal to a target does (see daemonContext). It
// is for any goroutine, and does nothing on a nil l: the targets not
// started yet.
func (l *localTargets) hurry() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, t := range l.mains {
		t.Hurry()
	}
}

// lateTargets is the local targets of a process, set once they start, for
// a signal handler made before them.
type lateTargets struct{ p atomic.Pointer[localTargets] }

func (l *lateTargets) set(t *localTargets) { l.p.Store(t) }
func (l *lateTargets) hurry()              { l.p.Load().hurry() }

// close stops every target and waits for them.
func (l *localTargets) close() {
	l.stop()
	l.wg.Wait()
	for _, t := range l.mains {
		t.Close()
	}
}
