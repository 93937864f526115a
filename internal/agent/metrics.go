package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/metrics"
)

// counters are what the target counts for its own metrics, kept whether
// or not they are served: a few atomics, no registry until one is wanted.
type counters struct {
	started    atomic.Int64
	pollErrors atomic.Int64
	lastPoll   atomic.Int64 // Unix milliseconds of the last poll the master answered; 0 before one

	mu       sync.Mutex
	finished map[muster.RunStatus]int64
}

func (c *counters) runFinished(s muster.RunStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished == nil {
		c.finished = map[muster.RunStatus]int64{}
	}
	c.finished[s]++
}

// finishedStatuses are the outcomes muster_target_runs_finished_total
// always has a series for.
var finishedStatuses = []muster.RunStatus{muster.RunSucceeded, muster.RunFailed, muster.RunTimedOut,
	muster.RunCanceled, muster.RunAbandoned, muster.RunSkipped}

// targetDescs describes the target's own metrics. They are built when the
// metrics are first served (--metrics-listen), not at startup.
type targetDescs struct {
	started, finished, spool, spoolAge, pollErrors, lastPoll, diskFull *metrics.Desc
}

func newTargetDescs() targetDescs {
	return targetDescs{
		started: metrics.NewDesc("muster_target_runs_started_total",
			"Runs this target process started (a START, a schedule, or at startup).", metrics.KindCounter),
		finished: metrics.NewDesc("muster_target_runs_finished_total",
			"Runs this target process finished, by outcome.", metrics.KindCounter, "status"),
		spool: metrics.NewDesc("muster_target_spool_runs",
			"Runs waiting to be uploaded to the master, those waiting in memory for a full disk included.", metrics.KindGauge),
		spoolAge: metrics.NewDesc("muster_target_spool_oldest_age_seconds",
			"How long the oldest run waiting to be uploaded has waited (0 when none waits).", metrics.KindGauge),
		pollErrors: metrics.NewDesc("muster_target_poll_errors_total",
			"Polls of the master that failed: the master unreachable or refusing.", metrics.KindCounter),
		lastPoll: metrics.NewDesc("muster_target_last_poll_success_timestamp_seconds",
			"When the master last answered a poll (Unix time); absent before the first answer.", metrics.KindGauge),
		diskFull: metrics.NewDesc("muster_target_disk_full",
			"1 while the data directory is full and runs' outcomes wait in memory, else 0.", metrics.KindGauge),
	}
}

// targetCollector reads the target's metrics when they are scraped.
type targetCollector struct {
	m *Main
	d targetDescs
}

func (c targetCollector) Describe() []*metrics.Desc {
	return []*metrics.Desc{c.d.started, c.d.finished, c.d.spool, c.d.spoolAge, c.d.pollErrors, c.d.lastPoll, c.d.diskFull}
}

func (c targetCollector) Collect(s *metrics.Scrape) {
	m := c.m
	s.Add(c.d.started, float64(m.counters.started.Load()))
	m.counters.mu.Lock()
	for _, status := range finishedStatuses {
		s.Add(c.d.finished, float64(m.counters.finished[status]), string(status))
	}
	m.counters.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	depth, oldest := m.spool(ctx)
	s.Add(c.d.spool, float64(depth))
	s.Add(c.d.spoolAge, oldest.Seconds())
	s.Add(c.d.pollErrors, float64(m.counters.pollErrors.Load()))
	if at := m.counters.lastPoll.Load(); at > 0 {
		s.Add(c.d.lastPoll, float64(at)/1000)
	}
	full := 0.0
	if m.diskFull() {
		full = 1
	}
	s.Add(c.d.diskFull, full)
}

// listenMetrics binds the address of the target's own metrics, if one is
// configured.
func (m *Main) listenMetrics() error {
	if m.cfg.MetricsListen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", m.cfg.MetricsListen)
	if err != nil {
		return fmt.Errorf("--metrics-listen %s: %w", m.cfg.MetricsListen, err)
	}
	if host, _, _ := net.SplitHostPort(m.cfg.MetricsListen); !isLoopback(host) {
		m.log.Warn("the target's metrics are served without TLS or credentials on an address that is not loopback; keep it on a management network",
			"metrics_listen", ln.Addr().String())
	}
	m.metricsLn = ln
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// MetricsAddr is the address the target's own metrics are served at, or ""
// when they are not.
func (m *Main) MetricsAddr() string {
	if m.metricsLn == nil {
		return ""
	}
	return m.metricsLn.Addr().String()
}

// serveMetrics serves GET /metrics on the metrics listener until ctx is
// done.
func (m *Main) serveMetrics(ctx context.Context) {
	if m.metricsLn == nil {
		return
	}
	reg := metrics.NewRegistry()
	reg.Register(targetCollector{m, newTargetDescs()}, metrics.GoCollector(), metrics.ProcessCollector())
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", reg.Handler(4))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(m.metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
		m.log.Warn("the target's metrics are no longer served", muster.LogErr, err)
	}
	<-done
}
