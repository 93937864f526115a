package agent

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// A target started with a trace writer (`muster target --trace FILE`, which
// `muster bench dispatch` uses) writes, for each run a START launches, one
// line of JSON with the times, read on this host's clock, of the hops of
// its dispatch after the master: the master wrote the poll reply
// (server_time, the master's clock), the target read it, committed the
// run, and the first step's process was started and let go: exec
// returned, and for an armed step (armed.go), whose exec may return
// before the commit, its gate opened. Nothing is traced without one.

// StartTrace is one line of the trace: Unix nanoseconds.
type StartTrace struct {
	RunID        string `json:"run_id"`
	ReplyWritten int64  `json:"reply_written"`
	ReplyRead    int64  `json:"reply_read"`
	Committed    int64  `json:"committed"`
	ExecReturned int64  `json:"exec_returned"`
}

// tracer writes StartTraces; nil when the target traces nothing.
type tracer struct {
	mu sync.Mutex
	w  io.Writer
}

func newTracer(w io.Writer) *tracer {
	if w == nil {
		return nil
	}
	return &tracer{w: w}
}

// reply notes when a poll reply, written at serverTime, was read: the
// start of a trace for each START it brings.
func (t *tracer) reply(serverTime time.Time) *StartTrace {
	if t == nil {
		return nil
	}
	return &StartTrace{ReplyWritten: serverTime.UnixNano(), ReplyRead: time.Now().UnixNano()}
}

// committed notes that the run of a START read with the reply st is
// committed, and hands its trace to ar.
func (t *tracer) committed(st *StartTrace, ar *activeRun) {
	if t == nil || st == nil || ar == nil {
		return
	}
	tr := *st
	tr.RunID, tr.Committed = ar.run.RunID, time.Now().UnixNano()
	ar.trace = &tr
}

// execReturned notes the first step's exec of ar returned at, and writes
// its trace: the write comes after the spawn, off the path it measures.
func (t *tracer) execReturned(ar *activeRun, at time.Time) error {
	if t == nil || ar.trace == nil {
		return nil
	}
	tr := ar.trace
	ar.trace = nil
	tr.ExecReturned = at.UnixNano()
	b, err := json.Marshal(tr)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	_, err = t.w.Write(append(b, '\n'))
	return err
}
