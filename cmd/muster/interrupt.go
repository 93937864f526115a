package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// interruption watches for the signals that interrupt a command that
// waits: Ctrl-C (SIGINT) and SIGTERM (a service manager, a CI runner's
// timeout). The first cancels the wait; the command then says what goes on
// without it, and exits as a shell reports a process that signal ended (130,
// 143). A second ends the process at once.
type interruption struct {
	signals chan os.Signal
	done    chan struct{}
	wg      sync.WaitGroup
	sig     os.Signal // set before the context is canceled
}

// interruptible returns a context the first SIGINT or SIGTERM cancels, and
// the interruption to end once the wait is over.
func interruptible(parent context.Context) (context.Context, *interruption) {
	ctx, cancel := context.WithCancel(parent)
	in := &interruption{signals: make(chan os.Signal, 1), done: make(chan struct{})}
	signal.Notify(in.signals, os.Interrupt, syscall.SIGTERM)
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		defer cancel()
		select {
		case in.sig = <-in.signals:
		case <-in.done:
		}
		signal.Stop(in.signals)
	}()
	return ctx, in
}

// end stops watching, and returns err, what the wait returned, or, if a
// signal ended the wait, the exit that says so and what goes on without it.
func (in *interruption) end(err error, goesOn string) error {
	close(in.done)
	in.wg.Wait()
	if in.sig == nil {
		return err
	}
	code := 130
	if in.sig == syscall.SIGTERM {
		code = 143
	}
	return &exitError{code: code, err: fmt.Errorf("interrupted: %s", goesOn)}
}
