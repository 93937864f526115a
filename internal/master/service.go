package master

import (
	"context"
	"log/slog"
	"time"

	"github.com/musterhq/muster"
)

// service runs a maintenance task in a goroutine of its own: runOnce at
// Start, then whenever it is woken or the wait runOnce asked for has passed,
// until Stop. runOnce is synchronous, so tests can call it directly.
type service struct {
	name    string
	log     *slog.Logger
	runOnce func(context.Context) (wait time.Duration, err error)
	wake    chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
}

func newService(name string, log *slog.Logger, runOnce func(context.Context) (time.Duration, error)) *service {
	return &service{name: name, log: log, runOnce: runOnce, wake: make(chan struct{}, 1)}
}

// Start starts the loop.
func (s *service) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	go s.loop(ctx)
}

// Stop stops the loop and waits for it: a runOnce under way sees its
// context canceled.
func (s *service) Stop() {
	if s == nil || s.cancel == nil {
		return
	}
	s.cancel()
	<-s.done
	s.cancel = nil
}

// Wake asks for a run now. It never blocks.
func (s *service) Wake() {
	if s == nil {
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *service) loop(ctx context.Context) {
	defer close(s.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
		wait, err := s.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.log.Error(s.name+" failed", muster.LogErr, err, muster.LogRetryIn, wait)
		}
		timer.Reset(wait)
	}
}
