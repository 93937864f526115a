package metrics

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Registry holds the collectors of one set of metrics: a master's, or a
// target's. Several registries can live in one process (tests, muster dev).
type Registry struct {
	mu         sync.Mutex
	collectors []Collector
	names      map[string]bool
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{names: map[string]bool{}} }

// Register adds collectors. It panics if two collectors describe the same
// family: the families are fixed in the code, so that is a mistake in the
// program.
func (r *Registry) Register(cs ...Collector) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cs {
		for _, d := range c.Describe() {
			if r.names[d.Name] {
				panic(fmt.Sprintf("metrics: %s is registered twice", d.Name))
			}
			r.names[d.Name] = true
		}
		r.collectors = append(r.collectors, c)
	}
}

// Counter registers a counter without labels.
func (r *Registry) Counter(name, help string) *Counter {
	c := new(Counter)
	d := NewDesc(name, help, KindCounter)
	r.Register(one{d, func(s *Scrape) { s.Add(d, c.Value()) }})
	return c
}

// Gauge registers a gauge without labels.
func (r *Registry) Gauge(name, help string) *Gauge {
	g := new(Gauge)
	d := NewDesc(name, help, KindGauge)
	r.Register(one{d, func(s *Scrape) { s.Add(d, g.Value()) }})
	return g
}

// Histogram registers a histogram without labels, with these bucket upper
// bounds (ascending; +Inf is implied).
func (r *Registry) Histogram(name, help string, bounds []float64) *Histogram {
	checkBounds(name, bounds)
	h := newHistogram(bounds)
	d := NewDesc(name, help, KindHistogram)
	r.Register(one{d, func(s *Scrape) { s.addHistogram(d, h, nil) }})
	return h
}

// CounterVec registers a family of counters by these label names.
func (r *Registry) CounterVec(name, help string, labels ...string) *CounterVec {
	c := &CounterVec{newVec(NewDesc(name, help, KindCounter, labels...), func() *Counter { return new(Counter) })}
	r.Register(c)
	return c
}

// HistogramVec registers a family of histograms by these label names.
func (r *Registry) HistogramVec(name, help string, bounds []float64, labels ...string) *HistogramVec {
	checkBounds(name, bounds)
	h := &HistogramVec{newVec(NewDesc(name, help, KindHistogram, labels...), func() *Histogram { return newHistogram(bounds) })}
	r.Register(h)
	return h
}

// Scrape gathers the series of one exposition.
type Scrape struct {
	families map[*Desc]*family
}

type family struct {
	desc   *Desc
	series []series
}

// series is one set of label values' lines: a value, or a histogram's or a
// summary's buckets with their sum and count.
type series struct {
	values []string
	value  float64
	bounds []float64 // histogram: upper bounds; summary: quantiles
	counts []float64 // histogram: cumulative counts, then +Inf's; summary: the quantiles' values
	sum    float64
	count  float64
}

// Add adds a counter's or a gauge's series of d. It panics if the number of
// label values is not the number of d's labels.
func (s *Scrape) Add(d *Desc, v float64, labelValues ...string) {
	s.add(d, series{values: labelValues, value: v})
}

// AddSummary adds a summary's series of d: the value at each quantile, the
// sum and the count of the observations.
func (s *Scrape) AddSummary(d *Desc, quantiles, values []float64, sum, count float64, labelValues ...string) {
	s.add(d, series{values: labelValues, bounds: quantiles, counts: values, sum: sum, count: count})
}

func (s *Scrape) addHistogram(d *Desc, h *Histogram, labelValues []string) {
	cum, sum := h.snapshot()
	s.add(d, series{values: labelValues, bounds: h.bounds, counts: cum, sum: sum, count: cum[len(cum)-1]})
}

func (s *Scrape) add(d *Desc, x series) {
	if len(x.values) != len(d.Labels) {
		panic(fmt.Sprintf("metrics: %s has %d labels, given %d values", d.Name, len(d.Labels), len(x.values)))
	}
	f := s.families[d]
	if f == nil {
		f = &family{desc: d}
		s.families[d] = f
	}
	f.series = append(f.series, x)
}

// WriteText writes every family that has a series, in the text exposition
// format: families by name, series by their label values.
func (r *Registry) WriteText(w io.Writer) error {
	r.mu.Lock()
	cs := slices.Clone(r.collectors)
	r.mu.Unlock()
	s := &Scrape{families: map[*Desc]*family{}}
	for _, c := range cs {
		c.Collect(s)
	}
	fams := make([]*family, 0, len(s.families))
	for _, f := range s.families {
		fams = append(fams, f)
	}
	slices.SortFunc(fams, func(a, b *family) int { return strings.Compare(a.desc.Name, b.desc.Name) })
	bw := bufio.NewWriterSize(w, 32<<10)
	for _, f := range fams {
		writeFamily(bw, f)
	}
	return bw.Flush()
}

func writeFamily(w *bufio.Writer, f *family) {
	d := f.desc
	slices.SortFunc(f.series, func(a, b series) int { return slices.Compare(a.values, b.values) })
	w.WriteString("# HELP ")
	w.WriteString(d.Name)
	w.WriteByte(' ')
	writeEscaped(w, d.Help, false)
	w.WriteString("\n# TYPE ")
	w.WriteString(d.Name)
	w.WriteByte(' ')
	w.WriteString(d.Kind.String())
	w.WriteByte('\n')
	for _, x := range f.series {
		switch d.Kind {
		case KindHistogram:
			for i, b := range x.bounds {
				writeLine(w, d, "_bucket", x.values, "le", b, x.counts[i])
			}
			writeLine(w, d, "_bucket", x.values, "le", math.Inf(1), x.counts[len(x.counts)-1])
			writeLine(w, d, "_sum", x.values, "", 0, x.sum)
			writeLine(w, d, "_count", x.values, "", 0, x.count)
		case KindSummary:
			for i, q := range x.bounds {
				writeLine(w, d, "", x.values, "quantile", q, x.counts[i])
			}
			writeLine(w, d, "_sum", x.values, "", 0, x.sum)
			writeLine(w, d, "_count", x.values, "", 0, x.count)
		default:
			writeLine(w, d, "", x.values, "", 0, x.value)
		}
	}
}

// writeLine writes one sample: the name and suffix, the labels (and the
// extra label, le or quantile, when named), the value.
func writeLine(w *bufio.Writer, d *Desc, suffix string, values []string, extra string, extraValue, v float64) {
	w.WriteString(d.Name)
	w.WriteString(suffix)
	if len(values) > 0 || extra != "" {
		w.WriteByte('{')
		for i, l := range d.Labels {
			if i > 0 {
				w.WriteByte(',')
			}
			w.WriteString(l)
			w.WriteString(`="`)
			writeEscaped(w, values[i], true)
			w.WriteByte('"')
		}
		if extra != "" {
			if len(values) > 0 {
				w.WriteByte(',')
			}
			w.WriteString(extra)
			w.WriteString(`="`)
			w.WriteString(formatFloat(extraValue))
			w.WriteByte('"')
		}
		w.WriteByte('}')
	}
	w.WriteByte(' ')
	w.WriteString(formatFloat(v))
	w.WriteByte('\n')
}

// writeEscaped writes s escaped as the format wants: a backslash and a
// line feed always, a double quote in a label value.
func writeEscaped(w *bufio.Writer, s string, quote bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			w.WriteString(`\\`)
		case c == '\n':
			w.WriteString(`\n`)
		case c == '"' && quote:
			w.WriteString(`\"`)
		default:
			w.WriteByte(c)
		}
	}
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// ContentType is the media type of the text exposition format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Handler serves the registry's metrics, gzipped when the scraper accepts
// it (Prometheus does). With maxInFlight > 0, a scrape beyond that many at
// once is answered 503 at once rather than queued.
func (r *Registry) Handler(maxInFlight int) http.Handler {
	var slots chan struct{}
	if maxInFlight > 0 {
		slots = make(chan struct{}, maxInFlight)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if slots != nil {
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
			default:
				http.Error(w, fmt.Sprintf("too many scrapes at once (the limit is %d)", maxInFlight), http.StatusServiceUnavailable)
				return
			}
		}
		w.Header().Set("Content-Type", ContentType)
		var out io.Writer = w
		if acceptsGzip(req.Header.Get("Accept-Encoding")) {
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Add("Vary", "Accept-Encoding")
			gz := gzip.NewWriter(w)
			defer gz.Close()
			out = gz
		}
		// Once the first bytes are out, an error can only end the body
		// early, which the scraper sees as a failed scrape.
		r.WriteText(out)
	})
}

// acceptsGzip reports whether an Accept-Encoding header names gzip with a
// weight above 0.
func acceptsGzip(h string) bool {
	for part := range strings.SplitSeq(h, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		q, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q=")
		if !ok {
			return true
		}
		f, err := strconv.ParseFloat(q, 64)
		return err == nil && f > 0
	}
	return false
}
