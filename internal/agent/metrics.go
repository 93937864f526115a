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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/musterhq/muster"
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
	started, finished, spool, spoolAge, pollErrors, lastPoll, diskFull *prometheus.Desc
}

func newTargetDescs() targetDescs {
	return targetDescs{
		started: prometheus.NewDesc("muster_target_runs_started_total",
			"Runs this target process started (a START, a schedule, or at startup).", nil, nil),
		finished: prometheus.NewDesc("muster_target_runs_finished_total",
			"Runs this target process finished, by outcome.", []string{"status"}, nil),
		spool: prometheus.NewDesc("muster_target_spool_runs",
			"Runs waiting to be uploaded to the master, those waiting in memory for a full disk included.", nil, nil),
		spoolAge: prometheus.NewDesc("muster_target_spool_oldest_age_seconds",
			"How long the oldest run waiting to be uploaded has waited (0 when none waits).", nil, nil),
		pollErrors: prometheus.NewDesc("muster_target_poll_errors_total",
			"Polls of the master that failed (unreachable, refused, or an instruction that could not be applied).", nil, nil),
		lastPoll: prometheus.NewDesc("muster_target_last_poll_success_timestamp_seconds",
			"When the master last answered a poll (Unix time); absent before the first answer.", nil, nil),
		diskFull: prometheus.NewDesc("muster_target_disk_full",
			"1 while the data directory is full and runs' outcomes wait in memory, else 0.", nil, nil),
	}
}

// targetCollector reads the target's metrics when they are scraped.
type targetCollector struct {
	m *Main
	d targetDescs
}

func (c targetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.d.started, c.d.finished, c.d.spool, c.d.spoolAge, c.d.pollErrors, c.d.lastPoll, c.d.diskFull} {
		ch <- d
	}
}

func (c targetCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	ch <- prometheus.MustNewConstMetric(c.d.started, prometheus.CounterValue, float64(m.counters.started.Load()))
	m.counters.mu.Lock()
	for _, s := range finishedStatuses {
		ch <- prometheus.MustNewConstMetric(c.d.finished, prometheus.CounterValue, float64(m.counters.finished[s]), string(s))
	}
	m.counters.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	depth, oldest := m.spool(ctx)
	ch <- prometheus.MustNewConstMetric(c.d.spool, prometheus.GaugeValue, float64(depth))
	ch <- prometheus.MustNewConstMetric(c.d.spoolAge, prometheus.GaugeValue, oldest.Seconds())
	ch <- prometheus.MustNewConstMetric(c.d.pollErrors, prometheus.CounterValue, float64(m.counters.pollErrors.Load()))
	if at := m.counters.lastPoll.Load(); at > 0 {
		ch <- prometheus.MustNewConstMetric(c.d.lastPoll, prometheus.GaugeValue, float64(at)/1000)
	}
	full := 0.0
	if m.diskFull() {
		full = 1
	}
	ch <- prometheus.MustNewConstMetric(c.d.diskFull, prometheus.GaugeValue, full)
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
	reg := prometheus.NewRegistry()
	reg.MustRegister(targetCollector{m, newTargetDescs()}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{MaxRequestsInFlight: 4}))
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
