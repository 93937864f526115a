package master

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

// metrics are the master's Prometheus metrics, in its own registry so that
// several masters can run in one process (tests, muster dev). Counters and
// histograms count what this master process saw; the gauges of the
// catalog's state (gaugeCollector) are read from the catalog when scraped,
// and so are the same on every master of a shared catalog.
type metrics struct {
	registry *prometheus.Registry
	polls    prometheus.Counter
	held     prometheus.Gauge
	runs     prometheus.Counter

	runsEnded    *prometheus.CounterVec   // job, status
	runDuration  *prometheus.HistogramVec // job
	dispatch     prometheus.Histogram
	instructions *prometheus.CounterVec   // operation, status
	storeQueries *prometheus.HistogramVec // op
}

// Buckets of the histograms, in seconds. A dispatch is milliseconds on a
// quiet network and up to a poll interval when a target's poll was not
// held; a run is anything from a blink to hours.
var (
	dispatchBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	runBuckets      = []float64{.1, .5, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400}
	storeBuckets    = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
)

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		polls:    prometheus.NewCounter(prometheus.CounterOpts{Name: "muster_polls_total", Help: "Polls received from targets."}),
		held:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "muster_polls_held", Help: "Polls being held open now."}),
		runs:     prometheus.NewCounter(prometheus.CounterOpts{Name: "muster_run_reports_total", Help: "Run reports received from targets."}),
		runsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "muster_runs_total",
			Help: "Runs this master recorded finished, by job and outcome (succeeded, failed, timed_out, canceled, abandoned, skipped)."},
			[]string{"job", "status"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "muster_run_duration_seconds",
			Help: "How long the runs this master recorded finished took, by job.", Buckets: runBuckets}, []string{"job"}),
		dispatch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "muster_dispatch_seconds",
			Help: "From a START posted to the first step of its run running on the target.", Buckets: dispatchBuckets}),
		instructions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "muster_instructions_total",
			Help: "Instructions targets acknowledged to this master, by operation and outcome (downloaded: applied; failed)."},
			[]string{"operation", "status"}),
		storeQueries: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "muster_store_query_seconds",
			Help:    "How long the catalog's queries and statements took, by store operation; Update and DryRun are whole transactions.",
			Buckets: storeBuckets}, []string{"op"}),
	}
	m.registry.MustRegister(m.polls, m.held, m.runs, m.runsEnded, m.runDuration, m.dispatch, m.instructions, m.storeQueries,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observeStore is the catalog store's timing hook (catalog.TimeStore).
func (m *metrics) observeStore(op string, d time.Duration) {
	m.storeQueries.WithLabelValues(op).Observe(d.Seconds())
}

// recorded counts the runs an upload recorded finished, and the dispatch
// times of the runs it recorded first.
func (m *metrics) recorded(results []catalog.RunResult) {
	for _, r := range results {
		if r.Ended {
			m.runsEnded.WithLabelValues(r.Job, string(r.Status)).Inc()
			m.runDuration.WithLabelValues(r.Job).Observe(r.Duration.Seconds())
		}
		if r.Dispatch != nil {
			m.dispatch.Observe(r.Dispatch.Seconds())
		}
	}
}

// acked counts the instructions an acknowledgement recorded.
func (m *metrics) acked(acked []catalog.Acked) {
	for _, a := range acked {
		m.instructions.WithLabelValues(string(a.Operation), string(a.Status)).Inc()
	}
}

// gaugeDescs describes the gauges read from the catalog.
type gaugeDescs struct {
	targets, failed, lastSuccess, certExpiry, spoolRuns, spoolAge, scrapeErrors *prometheus.Desc
}

// gaugeDescsOnce builds the descriptions the first time a master's metrics
// are described or collected, not when the program starts: a target or the
// CLI, which are the same binary, never needs them. (A package-level
// sync.OnceValue would itself be a call made at startup.)
var gaugeDescsOnce struct {
	sync.Once
	d gaugeDescs
}

func descs() gaugeDescs {
	gaugeDescsOnce.Do(func() { gaugeDescsOnce.d = newGaugeDescs() })
	return gaugeDescsOnce.d
}

func newGaugeDescs() gaugeDescs {
	return gaugeDescs{
		targets: prometheus.NewDesc("muster_targets",
			"Targets by status: normal, suspected_offline, blocked, paused, deleted (waiting to collect its DEFECT), defected.",
			[]string{"status"}, nil),
		failed: prometheus.NewDesc("muster_instructions_failed",
			"Failed instructions of a target neither superseded nor cleared: they block it.", []string{"target"}, nil),
		lastSuccess: prometheus.NewDesc("muster_job_last_success_timestamp_seconds",
			"When the master recorded a job's last successful run on a target (Unix time).", []string{"job", "target"}, nil),
		certExpiry: prometheus.NewDesc("muster_target_cert_expiry_timestamp_seconds",
			"When a target's newest client certificate expires (Unix time); the target renews it at two thirds of its life.",
			[]string{"target"}, nil),
		spoolRuns: prometheus.NewDesc("muster_spool_runs",
			"Runs waiting in a target's spool to be uploaded, as of its last poll.", []string{"target"}, nil),
		spoolAge: prometheus.NewDesc("muster_spool_oldest_age_seconds",
			"How long the oldest run waiting in a target's spool has waited (0 when none waits); absent for a target that does not report it.",
			[]string{"target"}, nil),
		scrapeErrors: prometheus.NewDesc("muster_catalog_scrape_errors_total",
			"Scrapes whose read of the catalog's state failed.", nil, nil),
	}
}

// gaugeStatuses are the statuses muster_targets always has a series for.
var gaugeStatuses = []string{muster.StatusNormal, muster.StatusSuspectedOffline, muster.StatusBlocked,
	catalog.GaugePaused, catalog.GaugeDeleted, catalog.GaugeDefected}

// gaugeCollector reads the catalog's state when the metrics are scraped,
// in a few statements whatever the size of the fleet, so that the gauges
// are never out of step with the catalog and every master of a shared
// catalog shows the same. Scrapes within maxAge of a read share it: the
// metrics are served without credentials, and a burst of scrapes must not
// become a burst of queries.
type gaugeCollector struct {
	read   func(context.Context) (catalog.Gauges, error)
	now    func() time.Time
	maxAge time.Duration

	mu     sync.Mutex
	last   catalog.Gauges
	readAt time.Time
	errors float64
}

// gaugeReadTimeout bounds a scrape's read of the catalog.
const gaugeReadTimeout = 5 * time.Second

func (g *gaugeCollector) Describe(ch chan<- *prometheus.Desc) {
	all := descs()
	for _, d := range []*prometheus.Desc{all.targets, all.failed, all.lastSuccess, all.certExpiry, all.spoolRuns, all.spoolAge, all.scrapeErrors} {
		ch <- d
	}
}

func (g *gaugeCollector) Collect(ch chan<- prometheus.Metric) {
	d := descs()
	gauges, ok := g.gauges()
	ch <- prometheus.MustNewConstMetric(d.scrapeErrors, prometheus.CounterValue, g.errorCount())
	if !ok {
		// Without the catalog's state, no series rather than wrong ones;
		// the master's own metrics are still served.
		return
	}
	counts := map[string]float64{catalog.GaugeDefected: float64(gauges.Defected)}
	for _, t := range gauges.Targets {
		counts[t.Status]++
		ch <- prometheus.MustNewConstMetric(d.failed, prometheus.GaugeValue, float64(t.Blocking), t.Name)
		ch <- prometheus.MustNewConstMetric(d.spoolRuns, prometheus.GaugeValue, float64(t.SpoolRuns), t.Name)
		if t.SpoolKnown {
			ch <- prometheus.MustNewConstMetric(d.spoolAge, prometheus.GaugeValue, t.SpoolOldestAge.Seconds(), t.Name)
		}
		if t.CertNotAfter != nil {
			ch <- prometheus.MustNewConstMetric(d.certExpiry, prometheus.GaugeValue, unixSeconds(*t.CertNotAfter), t.Name)
		}
	}
	for _, s := range gaugeStatuses {
		ch <- prometheus.MustNewConstMetric(d.targets, prometheus.GaugeValue, counts[s], s)
	}
	for _, l := range gauges.LastSuccess {
		ch <- prometheus.MustNewConstMetric(d.lastSuccess, prometheus.GaugeValue, unixSeconds(l.At), l.Job, l.Target)
	}
}

// gauges returns the catalog's state, read now unless a read within maxAge
// can serve.
func (g *gaugeCollector) gauges() (catalog.Gauges, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if !g.readAt.IsZero() && now.Sub(g.readAt) < g.maxAge && now.Sub(g.readAt) >= 0 {
		return g.last, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), gaugeReadTimeout)
	defer cancel()
	gauges, err := g.read(ctx)
	if err != nil {
		g.errors++
		g.readAt = time.Time{}
		return catalog.Gauges{}, false
	}
	g.last, g.readAt = gauges, now
	return gauges, true
}

func (g *gaugeCollector) errorCount() float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.errors
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }
