package metrics

import (
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// GoCollector adds the Go runtime's series, named as Prometheus's Go client
// names them: goroutines, threads, the garbage collector's pauses and the
// memory statistics.
func GoCollector() Collector { return goCollector{} }

type goCollector struct{}

// goOnce builds the descriptions when a registry first asks for them, not
// when the program starts.
var goOnce struct {
	sync.Once
	descs []*Desc
	mem   []memDesc
}

type memDesc struct {
	d *Desc
	v func(*runtime.MemStats) float64
}

func goDescriptions() ([]*Desc, []memDesc) {
	goOnce.Do(func() { goOnce.descs, goOnce.mem = newGoDescs() })
	return goOnce.descs, goOnce.mem
}

func newGoDescs() ([]*Desc, []memDesc) {
	gauge := func(name, help string, v func(*runtime.MemStats) float64) memDesc {
		return memDesc{NewDesc(name, help, KindGauge), v}
	}
	counter := func(name, help string, v func(*runtime.MemStats) float64) memDesc {
		return memDesc{NewDesc(name, help, KindCounter), v}
	}
	mem := []memDesc{
		gauge("go_memstats_alloc_bytes", "Number of bytes allocated in heap and currently in use.", func(m *runtime.MemStats) float64 { return float64(m.Alloc) }),
		counter("go_memstats_alloc_bytes_total", "Total number of bytes allocated in heap until now, even if released already.", func(m *runtime.MemStats) float64 { return float64(m.TotalAlloc) }),
		gauge("go_memstats_sys_bytes", "Number of bytes obtained from system.", func(m *runtime.MemStats) float64 { return float64(m.Sys) }),
		counter("go_memstats_mallocs_total", "Total number of heap objects allocated.", func(m *runtime.MemStats) float64 { return float64(m.Mallocs) }),
		counter("go_memstats_frees_total", "Total number of heap objects frees.", func(m *runtime.MemStats) float64 { return float64(m.Frees) }),
		gauge("go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and currently in use.", func(m *runtime.MemStats) float64 { return float64(m.HeapAlloc) }),
		gauge("go_memstats_heap_sys_bytes", "Number of heap bytes obtained from system.", func(m *runtime.MemStats) float64 { return float64(m.HeapSys) }),
		gauge("go_memstats_heap_idle_bytes", "Number of heap bytes waiting to be used.", func(m *runtime.MemStats) float64 { return float64(m.HeapIdle) }),
		gauge("go_memstats_heap_inuse_bytes", "Number of heap bytes that are in use.", func(m *runtime.MemStats) float64 { return float64(m.HeapInuse) }),
		gauge("go_memstats_heap_released_bytes", "Number of heap bytes released to OS.", func(m *runtime.MemStats) float64 { return float64(m.HeapReleased) }),
		gauge("go_memstats_heap_objects", "Number of currently allocated objects.", func(m *runtime.MemStats) float64 { return float64(m.HeapObjects) }),
		gauge("go_memstats_stack_inuse_bytes", "Number of bytes obtained from system for stack allocator in non-CGO environments.", func(m *runtime.MemStats) float64 { return float64(m.StackInuse) }),
		gauge("go_memstats_stack_sys_bytes", "Number of bytes obtained from system for stack allocator.", func(m *runtime.MemStats) float64 { return float64(m.StackSys) }),
		gauge("go_memstats_mspan_inuse_bytes", "Number of bytes in use by mspan structures.", func(m *runtime.MemStats) float64 { return float64(m.MSpanInuse) }),
		gauge("go_memstats_mspan_sys_bytes", "Number of bytes used for mspan structures obtained from system.", func(m *runtime.MemStats) float64 { return float64(m.MSpanSys) }),
		gauge("go_memstats_mcache_inuse_bytes", "Number of bytes in use by mcache structures.", func(m *runtime.MemStats) float64 { return float64(m.MCacheInuse) }),
		gauge("go_memstats_mcache_sys_bytes", "Number of bytes used for mcache structures obtained from system.", func(m *runtime.MemStats) float64 { return float64(m.MCacheSys) }),
		gauge("go_memstats_buck_hash_sys_bytes", "Number of bytes used by the profiling bucket hash table.", func(m *runtime.MemStats) float64 { return float64(m.BuckHashSys) }),
		gauge("go_memstats_gc_sys_bytes", "Number of bytes used for garbage collection system metadata.", func(m *runtime.MemStats) float64 { return float64(m.GCSys) }),
		gauge("go_memstats_other_sys_bytes", "Number of bytes used for other system allocations.", func(m *runtime.MemStats) float64 { return float64(m.OtherSys) }),
		gauge("go_memstats_next_gc_bytes", "Number of heap bytes when next garbage collection will take place.", func(m *runtime.MemStats) float64 { return float64(m.NextGC) }),
		gauge("go_memstats_last_gc_time_seconds", "Number of seconds since 1970 of last garbage collection.", func(m *runtime.MemStats) float64 { return float64(m.LastGC) / 1e9 }),
	}
	descs := []*Desc{
		NewDesc("go_goroutines", "Number of goroutines that currently exist.", KindGauge),
		NewDesc("go_threads", "Number of OS threads created.", KindGauge),
		NewDesc("go_info", "Information about the Go environment.", KindGauge, "version"),
		NewDesc("go_sched_gomaxprocs_threads", "The current runtime.GOMAXPROCS setting, or the number of operating system threads that can execute user-level Go code simultaneously.", KindGauge),
		NewDesc("go_gc_gomemlimit_bytes", "Go runtime memory limit configured by the user, otherwise math.MaxInt64.", KindGauge),
		NewDesc("go_gc_duration_seconds", "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.", KindSummary),
	}
	for _, m := range mem {
		descs = append(descs, m.d)
	}
	return descs, mem
}

func (goCollector) Describe() []*Desc {
	descs, _ := goDescriptions()
	return descs
}

var gcQuantiles = []float64{0, 0.25, 0.5, 0.75, 1}

func (goCollector) Collect(s *Scrape) {
	descs, mem := goDescriptions()
	threads, _ := runtime.ThreadCreateProfile(nil)
	s.Add(descs[0], float64(runtime.NumGoroutine()))
	s.Add(descs[1], float64(threads))
	s.Add(descs[2], 1, runtime.Version())
	s.Add(descs[3], float64(runtime.GOMAXPROCS(0)))
	s.Add(descs[4], float64(debug.SetMemoryLimit(-1))) // -1 reads the limit without changing it

	var gc debug.GCStats
	gc.PauseQuantiles = make([]time.Duration, len(gcQuantiles))
	debug.ReadGCStats(&gc)
	pauses := make([]float64, len(gcQuantiles))
	for i, p := range gc.PauseQuantiles {
		pauses[i] = p.Seconds()
	}
	s.AddSummary(descs[5], gcQuantiles, pauses, gc.PauseTotal.Seconds(), float64(gc.NumGC))

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	for _, m := range mem {
		s.Add(m.d, m.v(&ms))
	}
}
