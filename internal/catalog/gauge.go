package catalog

import (
	"context"
	"time"

	"github.com/musterhq/muster"
)

// GaugeRows are what the catalog holds that the master's metrics show as
// gauges, read at once (Reads.GaugeRows) when the metrics are scraped: the
// same for every master of a shared catalog.
type GaugeRows struct {
	// Targets are the active and deleted targets.
	Targets []TargetGaugeRow
	// Defected counts the targets that left.
	Defected int
	// LastSuccess is when each job last succeeded on each of its targets
	// (the master's clock), for the pairs that ever succeeded.
	LastSuccess []LastSuccessRow
}

// TargetGaugeRow is one target as the metrics read it.
type TargetGaugeRow struct {
	ID           int64
	Name         string
	State        string
	Paused       bool
	LastPoll     *time.Time
	PollInterval int
	// Blocking counts its failed instructions neither superseded nor
	// cleared.
	Blocking    int
	SpoolDepth  int
	SpoolOldest *time.Time // when the oldest run waiting entered its spool
	// CertNotAfter is when its newest certificate not replaced expires.
	CertNotAfter *time.Time
}

// LastSuccessRow is when a job last succeeded on a target.
type LastSuccessRow struct {
	Job, Target string
	At          time.Time
}

// Target statuses as the metrics count them, besides muster's derived
// statuses (normal, suspected_offline, blocked): each target is counted
// under one.
const (
	GaugePaused   = "paused"
	GaugeDeleted  = "deleted"
	GaugeDefected = "defected"
)

// TargetGauge is one target's state as the master's metrics show it.
type TargetGauge struct {
	Name string
	// Status is the one status the target is counted under: deleted (a
	// tombstone), paused, or its derived status.
	Status   string
	Blocking int
	// SpoolRuns is how many runs wait in its spool to be uploaded.
	SpoolRuns int
	// SpoolOldestAge is how long the oldest of them has waited, known
	// when SpoolKnown (a target of protocol 2 before spool_oldest does
	// not say).
	SpoolOldestAge time.Duration
	SpoolKnown     bool
	CertNotAfter   *time.Time
}

// Gauges is the catalog's state for the master's metrics, at the
// catalog's clock.
type Gauges struct {
	Targets     []TargetGauge
	Defected    int
	LastSuccess []LastSuccessRow
}

// Gauges reads the catalog's state for the master's metrics, the
// heartbeats not yet written overlaid, with each target's status derived
// as FindTargets derives it.
func (c *Catalog) Gauges(ctx context.Context) (Gauges, error) {
	rows, err := c.store.GaugeRows(ctx)
	if err != nil {
		return Gauges{}, err
	}
	now := c.opts.Now()
	g := Gauges{Defected: rows.Defected, LastSuccess: rows.LastSuccess, Targets: make([]TargetGauge, len(rows.Targets))}
	for i, r := range rows.Targets {
		var last time.Time
		if r.LastPoll != nil {
			last = *r.LastPoll
		}
		interval, depth, oldest := r.PollInterval, r.SpoolDepth, r.SpoolOldest
		if hb, ok := c.beats.lookup(r.ID); ok {
			last, interval, depth, oldest = hb.At, hb.PollInterval, hb.SpoolDepth, nil
			if hb.SpoolOldest != nil {
				at := hb.At.Add(-*hb.SpoolOldest)
				oldest = &at
			}
		}
		t := TargetGauge{Name: r.Name, Blocking: r.Blocking, SpoolRuns: depth, CertNotAfter: r.CertNotAfter}
		t.Status, _ = muster.DeriveStatus(now, muster.TargetState{LastPoll: last, PollInterval: interval, Blocking: r.Blocking})
		switch {
		case r.State == TargetDeleted:
			t.Status = GaugeDeleted
		case r.Paused:
			t.Status = GaugePaused
		}
		switch {
		case depth == 0:
			t.SpoolKnown = true
		case oldest != nil:
			t.SpoolKnown, t.SpoolOldestAge = true, max(now.Sub(*oldest), 0)
		}
		g.Targets[i] = t
	}
	return g, nil
}
