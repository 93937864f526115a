// Package metrics keeps counters, gauges and histograms and serves them in
// Prometheus's text exposition format (version 0.0.4).
//
// It holds what muster exposes and no more: families of counters, gauges
// and histograms with fixed label names, families read when scraped
// (Collector), and the Go runtime's and the process's own series under the
// names Prometheus's Go client gives them, so dashboards built for one read
// the other. Its package has no initialization work: a target or the CLI,
// which are the same binary as the master, pay nothing for it until a
// registry is made.
package metrics

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Kind is a family's Prometheus type.
type Kind uint8

const (
	KindCounter Kind = iota
	KindGauge
	KindHistogram
	KindSummary
)

func (k Kind) String() string {
	switch k {
	case KindCounter:
		return "counter"
	case KindGauge:
		return "gauge"
	case KindHistogram:
		return "histogram"
	case KindSummary:
		return "summary"
	}
	return "untyped"
}

// Desc describes a family: its name, help text, type and label names.
type Desc struct {
	Name   string
	Help   string
	Kind   Kind
	Labels []string
}

// NewDesc describes a family. It panics on a name or label name that
// Prometheus would refuse: descriptions are fixed in the code, so that is a
// mistake in the program, found the first time it runs.
func NewDesc(name, help string, kind Kind, labels ...string) *Desc {
	if !validName(name, true) {
		panic(fmt.Sprintf("metrics: %q is not a valid metric name", name))
	}
	for _, l := range labels {
		if !validName(l, false) || strings.HasPrefix(l, "__") || l == "le" || l == "quantile" {
			panic(fmt.Sprintf("metrics: %s: %q is not a valid label name", name, l))
		}
	}
	return &Desc{Name: name, Help: help, Kind: kind, Labels: labels}
}

// validName reports whether s matches [a-zA-Z_:][a-zA-Z0-9_:]* (metric
// names) or [a-zA-Z_][a-zA-Z0-9_]* (label names).
func validName(s string, colon bool) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' || colon && c == ':'
		if !ok {
			return false
		}
	}
	return true
}

// A Collector adds its series to a scrape.
type Collector interface {
	// Describe returns the families the collector adds to. A registry
	// refuses two collectors adding to the same family.
	Describe() []*Desc
	// Collect adds the collector's series to s.
	Collect(s *Scrape)
}

// Counter is a value that only goes up. Its zero value is not usable: make
// one with Registry.Counter or CounterVec.WithLabelValues.
type Counter struct {
	bits atomic.Uint64 // a float64
}

// Inc adds 1.
func (c *Counter) Inc() { c.Add(1) }

// Add adds v, which must not be negative.
func (c *Counter) Add(v float64) {
	if v < 0 {
		panic("metrics: a counter cannot go down")
	}
	addFloat(&c.bits, v)
}

// Value is the counter's value.
func (c *Counter) Value() float64 { return math.Float64frombits(c.bits.Load()) }

// Gauge is a value that goes up and down.
type Gauge struct {
	bits atomic.Uint64 // a float64
}

func (g *Gauge) Set(v float64)  { g.bits.Store(math.Float64bits(v)) }
func (g *Gauge) Add(v float64)  { addFloat(&g.bits, v) }
func (g *Gauge) Inc()           { g.Add(1) }
func (g *Gauge) Dec()           { g.Add(-1) }
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }
func addFloat(b *atomic.Uint64, v float64) {
	for {
		old := b.Load()
		if b.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Histogram counts observations in buckets of fixed upper bounds.
type Histogram struct {
	bounds []float64       // ascending; +Inf is implied
	counts []atomic.Uint64 // per bucket, not cumulative; the last is above every bound
	sum    atomic.Uint64   // a float64
}

func newHistogram(bounds []float64) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe counts v in the first bucket whose upper bound is at least v.
func (h *Histogram) Observe(v float64) {
	i, _ := slices.BinarySearch(h.bounds, v)
	h.counts[i].Add(1)
	addFloat(&h.sum, v)
}

// Count is the number of observations.
func (h *Histogram) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// snapshot returns the cumulative counts of each bound and of +Inf, and the
// sum. The total is the sum of the buckets read, so _count always equals
// the +Inf bucket.
func (h *Histogram) snapshot() ([]float64, float64) {
	cum := make([]float64, len(h.counts))
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
		cum[i] = float64(n)
	}
	return cum, math.Float64frombits(h.sum.Load())
}

// checkBounds panics unless bounds ascend strictly: a fixed list in the
// code, so a mistake in the program.
func checkBounds(name string, bounds []float64) {
	for i := range bounds {
		if math.IsNaN(bounds[i]) || math.IsInf(bounds[i], 0) || i > 0 && bounds[i] <= bounds[i-1] {
			panic(fmt.Sprintf("metrics: %s: bucket bounds must be finite and ascend strictly", name))
		}
	}
}

// vec holds one family's series by their label values.
type vec[T any] struct {
	desc *Desc
	newT func() *T
	mu   sync.RWMutex
	m    map[string]entry[T] // by the label values joined with 0xff
}

// entry is one set of label values and its metric.
type entry[T any] struct {
	values []string
	t      *T
}

func (v *vec[T]) with(values []string) *T {
	if len(values) != len(v.desc.Labels) {
		panic(fmt.Sprintf("metrics: %s has %d labels, given %d values", v.desc.Name, len(v.desc.Labels), len(values)))
	}
	key := strings.Join(values, "\xff")
	v.mu.RLock()
	e, ok := v.m[key]
	v.mu.RUnlock()
	if ok {
		return e.t
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if e, ok := v.m[key]; ok {
		return e.t
	}
	e = entry[T]{values: slices.Clone(values), t: v.newT()}
	v.m[key] = e
	return e.t
}

func (v *vec[T]) each(f func(values []string, t *T)) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, e := range v.m {
		f(e.values, e.t)
	}
}

func newVec[T any](d *Desc, newT func() *T) *vec[T] {
	return &vec[T]{desc: d, newT: newT, m: map[string]entry[T]{}}
}

// CounterVec is a family of counters by label values.
type CounterVec struct{ v *vec[Counter] }

// WithLabelValues returns the counter of these label values, in the order
// of the family's label names, making it at 0 the first time.
func (c *CounterVec) WithLabelValues(values ...string) *Counter { return c.v.with(values) }

func (c *CounterVec) Describe() []*Desc { return []*Desc{c.v.desc} }
func (c *CounterVec) Collect(s *Scrape) {
	c.v.each(func(values []string, x *Counter) { s.Add(c.v.desc, x.Value(), values...) })
}

// HistogramVec is a family of histograms by label values.
type HistogramVec struct{ v *vec[Histogram] }

// WithLabelValues returns the histogram of these label values, making it
// empty the first time.
func (h *HistogramVec) WithLabelValues(values ...string) *Histogram { return h.v.with(values) }

func (h *HistogramVec) Describe() []*Desc { return []*Desc{h.v.desc} }
func (h *HistogramVec) Collect(s *Scrape) {
	h.v.each(func(values []string, x *Histogram) { s.addHistogram(h.v.desc, x, values) })
}

// one is a family of a single series without labels.
type one struct {
	desc    *Desc
	collect func(s *Scrape)
}

func (o one) Describe() []*Desc { return []*Desc{o.desc} }
func (o one) Collect(s *Scrape) { o.collect(s) }
