package master

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
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
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(g)

	want := `
# HELP muster_targets Targets by status: normal, suspected_offline, blocked, paused, deleted (waiting to collect its DEFECT), defected.
# TYPE muster_targets gauge
muster_targets{status="blocked"} 1
muster_targets{status="defected"} 2
muster_targets{status="deleted"} 0
muster_targets{status="normal"} 1
muster_targets{status="paused"} 0
muster_targets{status="suspected_offline"} 0
`
	for range 3 {
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "muster_targets"); err != nil {
			t.Fatal(err)
		}
	}
	if reads != 1 {
		t.Errorf("%d reads for three scrapes within a second, want 1", reads)
	}
	// web2 says nothing of its spool's age: no series rather than a 0.
	if n, err := testutil.GatherAndCount(reg, "muster_spool_oldest_age_seconds"); err != nil || n != 1 {
		t.Errorf("%d muster_spool_oldest_age_seconds series (%v), want web1's only", n, err)
	}

	now = now.Add(time.Second)
	fail = errors.New("the database is gone")
	if n, err := testutil.GatherAndCount(reg, "muster_targets", "muster_spool_runs"); err != nil || n != 0 {
		t.Errorf("%d series of the catalog after a failed read (%v), want none", n, err)
	}
	if n := g.errorCount(); n != 1 {
		t.Errorf("%v scrape errors counted, want 1", n)
	}
	fail = nil
	if n, err := testutil.GatherAndCount(reg, "muster_targets"); err != nil || n != len(gaugeStatuses) {
		t.Errorf("%d muster_targets series after the database came back (%v), want %d", n, err, len(gaugeStatuses))
	}
	if reads != 3 {
		t.Errorf("%d reads, want 3: one shared, one failed, one again at once", reads)
	}
}
