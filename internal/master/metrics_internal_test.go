package master

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/metrics"
)

// Scrapes within a second of a read share it; a failed read leaves the
// catalog's gauges out of the scrape and is counted, and the next scrape
// reads again.
func TestGaugeCollectorReads(t *testing.T) {
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	reads := 0
	var fail error
	g := &gaugeCollector{now: func() time.Time { return now }, maxAge: time.Second,
		read: func(context.Context) (catalog.Gauges, error) {
			reads++
			return catalog.Gauges{Defected: 2, Targets: []catalog.TargetGauge{
				{Name: "web1", Status: muster.StatusNormal, SpoolKnown: true},
				{Name: "web2", Status: muster.StatusBlocked, Blocking: 1, SpoolRuns: 4},
			}}, fail
		}}
	reg := metrics.NewRegistry()
	reg.Register(g)

	want := `# HELP muster_targets Targets by status: normal, suspected_offline, blocked, paused, deleted (waiting to collect its DEFECT), defected.
# TYPE muster_targets gauge
muster_targets{status="blocked"} 1
muster_targets{status="defected"} 2
muster_targets{status="deleted"} 0
muster_targets{status="normal"} 1
muster_targets{status="paused"} 0
muster_targets{status="suspected_offline"} 0
`
	for range 3 {
		if got := family(scrape(t, reg), "muster_targets"); got != want {
			t.Fatalf("muster_targets:\n%s\nwant:\n%s", got, want)
		}
	}
	if reads != 1 {
		t.Errorf("%d reads for three scrapes within a second, want 1", reads)
	}
	// web2 says nothing of its spool's age: no series rather than a 0.
	if n := seriesCount(scrape(t, reg), "muster_spool_oldest_age_seconds"); n != 1 {
		t.Errorf("%d muster_spool_oldest_age_seconds series, want web1's only", n)
	}

	now = now.Add(time.Second)
	fail = errors.New("the database is gone")
	if n := seriesCount(scrape(t, reg), "muster_targets", "muster_spool_runs"); n != 0 {
		t.Errorf("%d series of the catalog after a failed read, want none", n)
	}
	if n := g.errorCount(); n != 1 {
		t.Errorf("%v scrape errors counted, want 1", n)
	}
	fail = nil
	if n := seriesCount(scrape(t, reg), "muster_targets"); n != len(gaugeStatuses) {
		t.Errorf("%d muster_targets series after the database came back, want %d", n, len(gaugeStatuses))
	}
	if reads != 3 {
		t.Errorf("%d reads, want 3: one shared, one failed, one again at once", reads)
	}
}

// scrape returns reg's exposition.
func scrape(t *testing.T, reg *metrics.Registry) string {
	t.Helper()
	var b strings.Builder
	if err := reg.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// family returns the lines of the family name in an exposition, its HELP
// and TYPE lines first.
func family(text, name string) string {
	var out strings.Builder
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, "# HELP "+name+" ") || strings.HasPrefix(line, "# TYPE "+name+" ") ||
			strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			out.WriteString(line)
		}
	}
	return out.String()
}

// seriesCount counts the series of the families names in an exposition.
func seriesCount(text string, names ...string) int {
	n := 0
	for _, name := range names {
		for line := range strings.Lines(family(text, name)) {
			if !strings.HasPrefix(line, "#") {
				n++
			}
		}
	}
	return n
}

// A counter whose labels are known in advance has each of their series
// from the start, at 0: Prometheus's increase() and rate() see a counter's
// first increment only from a sample before it, so an alert on the first
// failed instruction, or the first refused request, since the master
// started would otherwise never fire.
func TestCountersOfKnownLabelsStartAtZero(t *testing.T) {
	m := newMetrics()
	newAdmission(nil, DefaultConfig().Limits, func(string) Access { return AccessAnyone }, nil, m.registry)
	text := scrape(t, m.registry)
	for _, c := range []struct {
		name string
		want int
	}{
		{"muster_instructions_total", 9 * 2}, // each operation, downloaded or failed
		{"muster_requests_refused_total", 3}, // address, total, body
	} {
		if n := seriesCount(text, c.name); n != c.want {
			t.Errorf("%s: %d series at start, want %d:\n%s", c.name, n, c.want, family(text, c.name))
		}
	}
	if !strings.Contains(text, `muster_instructions_total{operation="SET-POLL",status="failed"} 0`+"\n") ||
		!strings.Contains(text, `muster_requests_refused_total{limit="body"} 0`+"\n") {
		t.Errorf("want the series at 0:\n%s%s", family(text, "muster_instructions_total"), family(text, "muster_requests_refused_total"))
	}
}
