package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/pki"
)

// A large simulated fleet is held by several sim processes (`muster bench
// serve-sims`), each a share of it, because each simulated target holds a
// connection and a process may hold no more than its open-file limit
// (`ulimit -Hn`), which only a privileged process can raise. The bench
// process tells each child its targets as JSON on the child's stdin, and
// the child reports on its stdout, one JSON event a line, what the
// scenarios measure: targets enlisted, all of them polling, and the time
// each START's run was started and recorded, as its own clock read them.
// Closing the child's stdin stops it.

// defaultSimsPerProcess is how many simulated targets one sim process holds
// unless told otherwise: the design's fleet of one master.
const defaultSimsPerProcess = 10000

// simSpec is what a sim process is told on its stdin.
type simSpec struct {
	// EnlistURL is the master the targets enlist with; Token is its admin
	// token, CAFile its CA certificate.
	EnlistURL string `json:"enlist_url"`
	Token     string `json:"token"`
	CAFile    string `json:"ca_file"`
	// Names are the targets; PollURLs[i] is the master Names[i] polls.
	Names    []string `json:"names"`
	PollURLs []string `json:"poll_urls"`
	// Workers is how many enlistments run at once.
	Workers int `json:"workers"`
}

// simEvent is one line a sim process writes on its stdout.
type simEvent struct {
	Kind string `json:"k"`
	Run  string `json:"r,omitempty"`
	At   int64  `json:"t,omitempty"` // Unix nanoseconds
	N    int    `json:"n,omitempty"`
	Err  string `json:"e,omitempty"`
}

// Kinds of simEvent.
const (
	eventEnlisted = "enlisted" // N more targets enlisted
	eventReady    = "ready"    // every target enlisted and polling
	eventRunning  = "running"  // Run's step would have been exec'd At
	eventRecorded = "recorded" // the master took Run's finished report At
	eventFailed   = "failed"   // the process stops on Err
)

// enlistReportEvery is how many enlistments a sim process counts before it
// reports them.
const enlistReportEvery = 100

// ServeSims is a sim process: it reads a simSpec from in, enlists its
// targets, runs them until in is closed or ctx ends, and writes simEvents
// to out.
func ServeSims(ctx context.Context, in io.Reader, out io.Writer) error {
	var spec simSpec
	if err := json.NewDecoder(in).Decode(&spec); err != nil {
		return fmt.Errorf("read the targets to simulate: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		io.Copy(io.Discard, in)
		cancel()
	}()
	w := newEventWriter(out)
	err := serveSims(ctx, spec, w)
	if err != nil {
		w.send(simEvent{Kind: eventFailed, Err: err.Error()})
	}
	return errors.Join(err, w.close())
}

func serveSims(ctx context.Context, spec simSpec, w *eventWriter) error {
	if len(spec.PollURLs) != len(spec.Names) {
		return fmt.Errorf("poll_urls: %d for %d names, want one each", len(spec.PollURLs), len(spec.Names))
	}
	if err := ensureOpenFiles(len(spec.Names)); err != nil {
		return err
	}
	roots, err := pki.LoadPool(spec.CAFile)
	if err != nil {
		return err
	}
	client, err := httpapi.NewClient(spec.EnlistURL, spec.Token, roots)
	if err != nil {
		return err
	}
	m := &Master{URL: spec.EnlistURL, Client: client, Roots: roots}
	// Each target polls as soon as it is enlisted, as a real one does: the
	// masters take the fleet's connections at the pace of enlistment, not
	// all at once.
	failures := &failureLog{w: os.Stderr, every: 10 * time.Second}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }() // the targets stop before w closes
	var enlisted atomic.Int64
	err = parallel(ctx, len(spec.Names), max(spec.Workers, 1), func(ctx context.Context, i int) error {
		s, err := enlistSim(ctx, m, spec.PollURLs[i], spec.Names[i], w)
		if err != nil {
			return err
		}
		s.failed = failures.note
		wg.Add(1)
		go func() { defer wg.Done(); s.run(runCtx) }()
		if enlisted.Add(1)%enlistReportEvery == 0 {
			w.send(simEvent{Kind: eventEnlisted, N: enlistReportEvery})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if rest := len(spec.Names) % enlistReportEvery; rest > 0 {
		w.send(simEvent{Kind: eventEnlisted, N: rest})
	}
	w.send(simEvent{Kind: eventReady})
	<-ctx.Done()
	return nil
}

// eventWriter writes a sim process's events from one goroutine, flushing
// whenever none is waiting, so that a burst (a fan-out) costs few writes.
type eventWriter struct {
	ch   chan simEvent
	done chan struct{}
	err  error // the first write error; read after done
}

func newEventWriter(out io.Writer) *eventWriter {
	w := &eventWriter{ch: make(chan simEvent, 1024), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		bw := bufio.NewWriter(out)
		enc := json.NewEncoder(bw)
		for ev := range w.ch {
			if w.err == nil {
				w.err = enc.Encode(ev)
			}
			if len(w.ch) == 0 && w.err == nil {
				w.err = bw.Flush()
			}
		}
	}()
	return w
}

func (w *eventWriter) send(ev simEvent) { w.ch <- ev }

func (w *eventWriter) running(run string, at time.Time) {
	w.send(simEvent{Kind: eventRunning, Run: run, At: at.UnixNano()})
}

func (w *eventWriter) recorded(run string, at time.Time) {
	w.send(simEvent{Kind: eventRecorded, Run: run, At: at.UnixNano()})
}

// close writes what is queued; no event may be sent after it.
func (w *eventWriter) close() error {
	close(w.ch)
	<-w.done
	return w.err
}

// simsPerProcess is how many simulated targets each sim process holds: as
// asked (the default when 0), but no more than the open-file limit a child
// inherits leaves room for.
func simsPerProcess(asked int) (int, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	room := min(lim.Max, 1<<30)
	if room <= fileMargin {
		return 0, fmt.Errorf("the open-file limit (%d, ulimit -Hn) leaves no room for simulated targets beside the %d files a process keeps open", lim.Max, fileMargin)
	}
	return min(or(asked, defaultSimsPerProcess), int(room-fileMargin)), nil
}

// startSimFleet runs n simulated targets in sim processes, enlisted with
// the first master, their polls spread over the masters (target i polls
// master i mod len(ms)); their runs are noted in rec. It waits until the
// masters hold a poll from every one, and returns how many processes hold
// them and how many polls the masters held then.
func (e *env) startSimFleet(ctx context.Context, ms []*Master, n int, rec *recorder) (procs, held int, err error) {
	per, err := simsPerProcess(e.o.SimsPerProcess)
	if err != nil {
		return 0, 0, err
	}
	procs = (n + per - 1) / per
	e.progress("enlisting %d simulated targets in %d process(es)", n, procs)
	names := targetNames(n)
	start := time.Now()
	var enlisted atomic.Int64
	onEnlisted := func(k int) {
		total := enlisted.Add(int64(k))
		if total/1000 > (total-int64(k))/1000 && total < int64(n) {
			e.progress("enlisted %d of %d in %s", total, n, time.Since(start).Round(time.Second))
		}
	}
	var ps []*simProcess
	for p := range procs {
		lo, hi := p*per, min(n, (p+1)*per)
		spec := simSpec{EnlistURL: ms[0].URL, Token: ms[0].Token, CAFile: filepath.Join(ms[0].Dir, pki.CACertFile),
			Names: names[lo:hi], Workers: max(enlistWorkers/procs, 1)}
		for i := lo; i < hi; i++ {
			spec.PollURLs = append(spec.PollURLs, ms[i%len(ms)].URL)
		}
		sp, err := startSimProcess(e.o.Exe, filepath.Join(e.dir, fmt.Sprintf("sims%d.log", p+1)), spec, rec, onEnlisted)
		if err != nil {
			return 0, 0, err
		}
		e.onClose(func() {
			if err := sp.stop(); err != nil {
				e.progress("%v", err)
			}
		})
		ps = append(ps, sp)
	}
	for _, sp := range ps {
		if err := sp.waitReady(ctx); err != nil {
			return 0, 0, err
		}
	}
	held, err = e.waitPollsHeld(ctx, n, ms...)
	return procs, held, err
}

// simProcess is a running `muster bench serve-sims`, seen from the bench
// process.
type simProcess struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	log     string
	ready   chan struct{} // closed at its ready event
	done    chan struct{} // closed once it exited and its events are read
	failure string        // its failed event, or why its events could not be read; read after done
}

// startSimProcess starts a sim process for spec, whose stderr goes to log,
// and passes its events on: runs to rec, enlistments to enlisted.
func startSimProcess(exe, log string, spec simSpec, rec *recorder, enlisted func(int)) (*simProcess, error) {
	out, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "bench", "serve-sims")
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		out.Close()
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		out.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, err
	}
	p := &simProcess{cmd: cmd, stdin: stdin, log: log, ready: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer out.Close()
		p.read(stdout, rec, enlisted)
		cmd.Wait()
	}()
	if err := json.NewEncoder(stdin).Encode(spec); err != nil {
		p.kill()
		return nil, fmt.Errorf("tell the sim process its targets: %w", err)
	}
	return p, nil
}

// read passes the process's events on until its stdout ends.
func (p *simProcess) read(stdout io.Reader, rec *recorder, enlisted func(int)) {
	dec := json.NewDecoder(stdout)
	for {
		var ev simEvent
		if err := dec.Decode(&ev); err != nil {
			if !errors.Is(err, io.EOF) {
				p.failure = fmt.Sprintf("read its events: %v", err)
				io.Copy(io.Discard, stdout)
			}
			return
		}
		switch ev.Kind {
		case eventEnlisted:
			enlisted(ev.N)
		case eventReady:
			close(p.ready)
		case eventRunning:
			rec.running(ev.Run, time.Unix(0, ev.At))
		case eventRecorded:
			rec.recorded(ev.Run, time.Unix(0, ev.At))
		case eventFailed:
			p.failure = ev.Err
		}
	}
}

// waitReady waits until every target of the process polls.
func (p *simProcess) waitReady(ctx context.Context) error {
	select {
	case <-p.ready:
		return nil
	case <-p.done:
		return fmt.Errorf("sim process %d exited before its targets were polling: %s\n%s", p.cmd.Process.Pid, p.failure, logTail(p.log))
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop closes the process's stdin, which stops it, and waits for it to
// exit, killing it after stopTimeout.
func (p *simProcess) stop() error {
	p.stdin.Close()
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
		p.kill()
		return fmt.Errorf("sim process %d did not stop within %s of its stdin closing; killed", p.cmd.Process.Pid, stopTimeout)
	}
}

func (p *simProcess) kill() {
	p.stdin.Close()
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// logTail is the end of a log file, for an error message.
func logTail(path string) string {
	b, _ := os.ReadFile(path)
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}

// failureLog writes how many polls failed, and the last error, at most
// once every so often: a sim process's log says why its targets do not
// poll without writing a line for each of thousands.
type failureLog struct {
	w     io.Writer
	every time.Duration
	mu    sync.Mutex
	n     int
	last  time.Time
}

func (f *failureLog) note(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if now := time.Now(); now.Sub(f.last) >= f.every {
		fmt.Fprintf(f.w, "%s: %d poll(s) failed; the last: %v\n", now.Format(time.RFC3339), f.n, err)
		f.n, f.last = 0, now
	}
}
