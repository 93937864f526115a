package metrics

import (
	"compress/gzip"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func text(t *testing.T, r *Registry) string {
	t.Helper()
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// parse reads an exposition as Prometheus does, failing the test on
// anything it refuses.
func parse(t *testing.T, s string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(s))
	if err != nil {
		t.Fatalf("Prometheus's parser refuses the exposition: %v\n%s", err, s)
	}
	return fams
}

// The exposition is the text format, byte for byte: families by name,
// series by label values, histograms cumulative with +Inf, _sum and
// _count, label values and help escaped.
func TestWriteText(t *testing.T) {
	r := NewRegistry()
	polls := r.Counter("demo_polls_total", "Polls received.")
	held := r.Gauge("demo_held", "Polls held \\ now.\nSecond line.")
	runs := r.CounterVec("demo_runs_total", "Runs by job and status.", "job", "status")
	lat := r.Histogram("demo_latency_seconds", "Latency.", []float64{0.1, 1})
	byOp := r.HistogramVec("demo_query_seconds", "Queries.", []float64{0.5}, "op")

	polls.Add(3)
	held.Set(2)
	held.Dec()
	runs.WithLabelValues("backup", "failed").Inc()
	runs.WithLabelValues(`say "hi"\n`+"\n", "succeeded").Add(2)
	runs.WithLabelValues("backup", "failed").Inc()
	for _, v := range []float64{0.05, 0.1, 0.5, 7} {
		lat.Observe(v)
	}
	byOp.WithLabelValues("Update").Observe(0.25)

	want := `# HELP demo_held Polls held \\ now.\nSecond line.
# TYPE demo_held gauge
demo_held 1
# HELP demo_latency_seconds Latency.
# TYPE demo_latency_seconds histogram
demo_latency_seconds_bucket{le="0.1"} 2
demo_latency_seconds_bucket{le="1"} 3
demo_latency_seconds_bucket{le="+Inf"} 4
demo_latency_seconds_sum 7.65
demo_latency_seconds_count 4
# HELP demo_polls_total Polls received.
# TYPE demo_polls_total counter
demo_polls_total 3
# HELP demo_query_seconds Queries.
# TYPE demo_query_seconds histogram
demo_query_seconds_bucket{op="Update",le="0.5"} 1
demo_query_seconds_bucket{op="Update",le="+Inf"} 1
demo_query_seconds_sum{op="Update"} 0.25
demo_query_seconds_count{op="Update"} 1
# HELP demo_runs_total Runs by job and status.
# TYPE demo_runs_total counter
demo_runs_total{job="backup",status="failed"} 2
demo_runs_total{job="say \"hi\"\\n\n",status="succeeded"} 2
`
	got := text(t, r)
	if got != want {
		t.Fatalf("exposition:\n%s\nwant:\n%s", got, want)
	}
	fams := parse(t, got)
	if len(fams) != 5 {
		t.Fatalf("%d families parsed, want 5", len(fams))
	}
	h := fams["demo_latency_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 4 || h.GetSampleSum() != 7.65 || len(h.GetBucket()) != 3 {
		t.Errorf("parsed histogram: %v", h)
	}
	var job string
	for _, m := range fams["demo_runs_total"].GetMetric() {
		if m.GetLabel()[1].GetValue() == "succeeded" {
			job = m.GetLabel()[0].GetValue()
		}
	}
	if job != `say "hi"\n`+"\n" {
		t.Errorf("label value read back as %q", job)
	}
}

// A family without series is left out; a family read when scraped adds
// what it has then.
func TestCollectorAtScrape(t *testing.T) {
	r := NewRegistry()
	d := NewDesc("demo_spool_runs", "Runs waiting.", KindGauge, "target")
	var targets []string
	r.Register(collectFunc{d, func(s *Scrape) {
		for i, name := range targets {
			s.Add(d, float64(i), name)
		}
	}})
	if got := text(t, r); got != "" {
		t.Fatalf("an empty family is written: %q", got)
	}
	targets = []string{"web2", "web1"}
	want := "# HELP demo_spool_runs Runs waiting.\n# TYPE demo_spool_runs gauge\n" +
		"demo_spool_runs{target=\"web1\"} 1\ndemo_spool_runs{target=\"web2\"} 0\n"
	if got := text(t, r); got != want {
		t.Fatalf("exposition:\n%s\nwant:\n%s", got, want)
	}
}

type collectFunc struct {
	d *Desc
	f func(*Scrape)
}

func (c collectFunc) Describe() []*Desc { return []*Desc{c.d} }
func (c collectFunc) Collect(s *Scrape) { c.f(s) }

func panics(t *testing.T, what string, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Errorf("%s: no panic", what)
			return
		}
		if msg, _ := r.(string); !strings.Contains(msg, want) {
			t.Errorf("%s: panic %v, want it to say %q", what, r, want)
		}
	}()
	f()
}

// Mistakes in the program's own descriptions are found the first time it
// runs, each with what is wrong.
func TestMistakesPanic(t *testing.T) {
	r := NewRegistry()
	r.Counter("demo_total", "x")
	panics(t, "a family registered twice", "registered twice", func() { r.Gauge("demo_total", "y") })
	panics(t, "a name with a dash", "not a valid metric name", func() { NewDesc("demo-x", "x", KindGauge) })
	panics(t, "a name beginning with a digit", "not a valid metric name", func() { NewDesc("1demo", "x", KindGauge) })
	panics(t, "the label le", "not a valid label name", func() { NewDesc("demo", "x", KindGauge, "le") })
	panics(t, "a label with a colon", "not a valid label name", func() { NewDesc("demo", "x", KindGauge, "a:b") })
	panics(t, "bounds out of order", "ascend strictly", func() { r.Histogram("demo_h", "x", []float64{1, 0.5}) })
	panics(t, "an infinite bound", "ascend strictly", func() { r.Histogram("demo_i", "x", []float64{math.Inf(1)}) })
	v := r.CounterVec("demo_v_total", "x", "job")
	panics(t, "too many label values", "has 1 labels, given 2", func() { v.WithLabelValues("a", "b") })
	panics(t, "a counter going down", "cannot go down", func() { v.WithLabelValues("a").Add(-1) })
}

// Adds from many goroutines at once are all counted.
func TestConcurrentAdds(t *testing.T) {
	r := NewRegistry()
	c := r.CounterVec("demo_total", "x", "n")
	h := r.Histogram("demo_seconds", "x", []float64{1})
	const workers, each = 8, 1000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				c.WithLabelValues([]string{"a", "b"}[w%2]).Inc()
				h.Observe(0.5)
			}
		})
	}
	wg.Wait()
	if a, b := c.WithLabelValues("a").Value(), c.WithLabelValues("b").Value(); a+b != workers*each || a != b {
		t.Errorf("counted %v and %v, want %d each", a, b, workers*each/2)
	}
	if n := h.Count(); n != workers*each {
		t.Errorf("histogram counted %d, want %d", n, workers*each)
	}
	m := parse(t, text(t, r))["demo_seconds"].GetMetric()[0].GetHistogram()
	if m.GetSampleSum() != workers*each*0.5 {
		t.Errorf("histogram sum %v, want %v", m.GetSampleSum(), workers*each*0.5)
	}
}

// The Go runtime's and the process's series come under the names of
// Prometheus's Go client, and read what they say.
func TestRuntimeCollectors(t *testing.T) {
	r := NewRegistry()
	r.Register(GoCollector(), ProcessCollector())
	fams := parse(t, text(t, r))
	for _, name := range []string{"go_goroutines", "go_threads", "go_info", "go_gc_duration_seconds",
		"go_memstats_heap_alloc_bytes", "go_memstats_alloc_bytes_total", "go_sched_gomaxprocs_threads",
		"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_max_fds",
		"process_start_time_seconds", "process_virtual_memory_bytes"} {
		if fams[name] == nil {
			t.Errorf("%s is missing", name)
		}
	}
	value := func(name string) float64 {
		m := fams[name].GetMetric()[0]
		if m.GetGauge() != nil {
			return m.GetGauge().GetValue()
		}
		return m.GetCounter().GetValue()
	}
	if v := value("go_goroutines"); v < 1 {
		t.Errorf("go_goroutines %v", v)
	}
	if v := value("process_resident_memory_bytes"); v < 1<<20 {
		t.Errorf("process_resident_memory_bytes %v, want at least 1 MiB", v)
	}
	if v := value("process_open_fds"); v < 3 {
		t.Errorf("process_open_fds %v, want stdin, stdout and stderr at least", v)
	}
	start := time.Unix(int64(value("process_start_time_seconds")), 0)
	if now := time.Now(); start.After(now) || now.Sub(start) > 24*time.Hour {
		t.Errorf("process_start_time_seconds says %v, now is %v", start, now)
	}
	if got := fams["go_gc_duration_seconds"].GetMetric()[0].GetSummary().GetQuantile(); len(got) != 5 {
		t.Errorf("go_gc_duration_seconds has %d quantiles, want 5", len(got))
	}
}

// The command name in /proc/PID/stat may hold spaces and parentheses.
func TestParseStat(t *testing.T) {
	line := "4242 (mu ster) (x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 123456 1048576000 5120 18446744073709551615\n"
	st, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.utime != 250 || st.stime != 50 || st.start != 123456 || st.vsize != 1048576000 || st.rss != 5120 {
		t.Errorf("parsed %+v", st)
	}
	if _, err := parseStat([]byte("4242 (muster) S 1 2 3")); err == nil {
		t.Error("a short line parsed")
	}
}

// A scraper that accepts gzip gets it; one that does not gets plain text.
func TestHandlerGzip(t *testing.T) {
	r := NewRegistry()
	r.Counter("demo_total", "x").Inc()
	for _, c := range []struct {
		accept string
		gzip   bool
	}{{"gzip", true}, {"deflate, gzip;q=0.5", true}, {"gzip;q=0", false}, {"", false}, {"br", false}} {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if c.accept != "" {
			req.Header.Set("Accept-Encoding", c.accept)
		}
		w := httptest.NewRecorder()
		r.Handler(0).ServeHTTP(w, req)
		if ct := w.Header().Get("Content-Type"); ct != ContentType {
			t.Errorf("%q: Content-Type %q", c.accept, ct)
		}
		var body io.Reader = w.Body
		if got := w.Header().Get("Content-Encoding") == "gzip"; got != c.gzip {
			t.Fatalf("Accept-Encoding %q: gzipped %v, want %v", c.accept, got, c.gzip)
		}
		if c.gzip {
			zr, err := gzip.NewReader(w.Body)
			if err != nil {
				t.Fatal(err)
			}
			body = zr
		}
		b, _ := io.ReadAll(body)
		if !strings.Contains(string(b), "demo_total 1\n") {
			t.Errorf("%q: body %q", c.accept, b)
		}
	}
}

// Beyond the limit of scrapes at once, a scrape is answered 503 at once.
func TestHandlerInFlight(t *testing.T) {
	r := NewRegistry()
	d := NewDesc("demo_slow", "x", KindGauge)
	entered, release := make(chan struct{}), make(chan struct{})
	r.Register(collectFunc{d, func(s *Scrape) {
		entered <- struct{}{}
		<-release
		s.Add(d, 1)
	}})
	h := r.Handler(1)
	done := make(chan int)
	go func() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		done <- w.Code
	}()
	<-entered
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("a second scrape at once: %d, want 503", w.Code)
	}
	close(release)
	if code := <-done; code != http.StatusOK {
		t.Errorf("the first scrape: %d, want 200", code)
	}
}

// Any label value and help text round-trips through Prometheus's parser.
func FuzzEscaping(f *testing.F) {
	for _, s := range []string{"", "plain", `a"b`, `back\slash`, "line\nfeed", `\n`, "é ✓", "\x00\xff"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, value, help string) {
		if !utf8.ValidString(value) || !utf8.ValidString(help) {
			t.Skip("the format is UTF-8")
		}
		r := NewRegistry()
		r.CounterVec("demo_total", help, "v").WithLabelValues(value).Inc()
		fams := parse(t, text(t, r))
		fam := fams["demo_total"]
		if fam == nil || len(fam.GetMetric()) != 1 {
			t.Fatalf("families %v", fams)
		}
		if got := fam.GetMetric()[0].GetLabel()[0].GetValue(); got != value {
			t.Errorf("label value %q read back as %q", value, got)
		}
		// The format's reader drops the blanks before a help text.
		if got, want := fam.GetHelp(), strings.TrimLeft(help, " \t"); got != want {
			t.Errorf("help %q read back as %q", help, got)
		}
	})
}
