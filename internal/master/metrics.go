package master

import (
	"context"
	"sync"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/metrics"
)

// metrics are the master's Prometheus metrics, in its own registry so that
// several masters can run in one process (tests, muster dev). Counters and
// histograms count what this master process saw; the gauges of the
// catalog's state (gaugeCollector) are read from the catalog when scraped,
// and so are the same on every master of a shared catalog.
type masterMetrics struct {
	registry *metrics.Registry
	polls    *metrics.Counter
	held     *metrics.Gauge
	runs     *metrics.Counter

	runsEnded    *metrics.CounterVec   // job, status
	runDuration  *metrics.HistogramVec // job
	dispatch     *metrics.Histogram
	instructions *metrics.CounterVec   // operation, status
	storeQueries *metrics.HistogramVec // op
}

// Buckets of the histograms, in seconds. A dispatch is milliseconds on a
// quiet network and up to a poll interval when a target's poll was not
// held; a run is anything from a blink to hours.
var (
	dispatchBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	runBuckets      = []float64{.1, .5, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400}
	storeBuckets    = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
)

func newMetrics() *masterMetrics {
	r := metrics.NewRegistry()
	m := &masterMetrics{
		registry: r,
		polls:    r.Counter("muster_polls_total", "Polls received from targets."),
		held:     r.Gauge("muster_polls_held", "Polls being held open now."),
		runs:     r.Counter("muster_run_reports_total", "Run reports received from targets."),
		runsEnded: r.CounterVec("muster_runs_total",
			"Runs this master recorded finished, by job and outcome (succeeded, failed, timed_out, canceled, abandoned, skipped).",
			"job", "status"),
		runDuration: r.HistogramVec("muster_run_duration_seconds",
			"How long the runs this master recorded finished took, by job.", runBuckets, "job"),
		dispatch: r.Histogram("muster_dispatch_seconds",
			"From a START posted to the first step of its run running on the target.", dispatchBuckets),
		instructions: r.CounterVec("muster_instructions_total",
			"Instructions targets acknowledged to this master, by operation and outcome (downloaded: applied; failed).",
			"operation", "status"),
		storeQueries: r.HistogramVec("muster_store_query_seconds",
			"How long the catalog's queries and statements took, by store operation; Update and DryRun are whole transactions.",
			storeBuckets, "op"),
	}
	// Every series a counter's labels are known for is there from the
	// start, at 0: increase() and rate() see a counter's first increment
	// only from a sample before it.
	for _, op := range ackedOperations {
		for _, status := range []muster.InstructionStatus{muster.InstructionDownloaded, muster.InstructionFailed} {
			m.instructions.WithLabelValues(string(op), string(status))
		}
	}
	r.Register(metrics.GoCollector(), metrics.ProcessCollector())
	return m
}

// ackedOperations are the operations muster_instructions_total always has
// series for.
var ackedOperations = []muster.Operation{muster.OpInsert, muster.OpUpdate, muster.OpDelete, muster.OpStart, muster.OpStop,
	muster.OpReEnlist, muster.OpDefect, muster.OpSyncTime, muster.OpSetPoll}

// observeStore is the catalog store's timing hook (catalog.TimeStore).
func (m *masterMetrics) observeStore(op string, d time.Duration) {
	m.storeQueries.WithLabelValues(op).Observe(d.Seconds())
}

// recorded counts the dispatch times of the runs an upload recorded first.
func (m *masterMetrics) recorded(results []catalog.RunResult) {
	for _, r := range results {
		if r.Dispatch != nil {
			m.dispatch.Observe(r.Dispatch.Seconds())
		}
	}
}

// ended counts the runs a transaction of this master recorded finished,
// whoever ended them: a target's upload, or the master itself (a START
// never run, a departed target's run). The catalog tells each run's end
// once (catalog.Commit.Ended).
func (m *masterMetrics) ended(ends []catalog.RunEnd) {
	for _, e := range ends {
		m.runsEnded.WithLabelValues(e.Job, string(e.Status)).Inc()
		m.runDuration.WithLabelValues(e.Job).Observe(e.Duration.Seconds())
	}
}

// acked counts the instructions an acknowledgement recorded.
func (m *masterMetrics) acked(acked []catalog.Acked) {
	for _, a := range acked {
		m.instructions.WithLabelValues(string(a.Operation), string(a.Status)).Inc()
	}
}

// gaugeDescs describes the gauges read from the catalog.
type gaugeDescs struct {
	targets, failed, lastSuccess, certExpiry, spoolRuns, spoolAge, scrapeErrors *metrics.Desc
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
		targets: metrics.NewDesc("muster_targets",
			"Targets by status: normal, suspected_offline, blocked, paused, deleted (waiting to collect its DEFECT), defected.",
			metrics.KindGauge, "status"),
		failed: metrics.NewDesc("muster_instructions_failed",
			"Failed instructions of a target neither superseded nor cleared: they block it.",
			metrics.KindGauge, "target"),
		lastSuccess: metrics.NewDesc("muster_job_last_success_timestamp_seconds",
			"When the master recorded a job's last successful run on a target (Unix time).",
			metrics.KindGauge, "job", "target"),
		certExpiry: metrics.NewDesc("muster_target_cert_expiry_timestamp_seconds",
			"When a target's newest client certificate expires (Unix time); the target renews it at two thirds of its life.",
			metrics.KindGauge, "target"),
		spoolRuns: metrics.NewDesc("muster_spool_runs",
			"Runs waiting in a target's spool to be uploaded, as of its last poll.",
			metrics.KindGauge, "target"),
		spoolAge: metrics.NewDesc("muster_spool_oldest_age_seconds",
			"How long the oldest run waiting in a target's spool has waited (0 when none waits); absent for a target that does not report it.",
			metrics.KindGauge, "target"),
		scrapeErrors: metrics.NewDesc("muster_catalog_scrape_errors_total",
			"Scrapes whose read of the catalog's state failed.", metrics.KindCounter),
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

func (g *gaugeCollector) Describe() []*metrics.Desc {
	all := descs()
	return []*metrics.Desc{all.targets, all.failed, all.lastSuccess, all.certExpiry, all.spoolRuns, all.spoolAge, all.scrapeErrors}
}

func (g *gaugeCollector) Collect(s *metrics.Scrape) {
	d := descs()
	gauges, ok := g.gauges()
	s.Add(d.scrapeErrors, g.errorCount())
	if !ok {
		// Without the catalog's state, no series rather than wrong ones;
		// the master's own metrics are still served.
		return
	}
	counts := map[string]float64{catalog.GaugeDefected: float64(gauges.Defected)}
	for _, t := range gauges.Targets {
		counts[t.Status]++
		s.Add(d.failed, float64(t.Blocking), t.Name)
		s.Add(d.spoolRuns, float64(t.SpoolRuns), t.Name)
		if t.SpoolKnown {
			s.Add(d.spoolAge, t.SpoolOldestAge.Seconds(), t.Name)
		}
		if t.CertNotAfter != nil {
			s.Add(d.certExpiry, unixSeconds(*t.CertNotAfter), t.Name)
		}
	}
	for _, status := range gaugeStatuses {
		s.Add(d.targets, counts[status], status)
	}
	for _, l := range gauges.LastSuccess {
		s.Add(d.lastSuccess, unixSeconds(l.At), l.Job, l.Target)
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
