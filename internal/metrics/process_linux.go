package metrics

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"syscall"
)

// ProcessCollector adds the process's own series, named as Prometheus's Go
// client names them: CPU time, resident and virtual memory, open files and
// their limit, and the start time. It reads /proc/self.
func ProcessCollector() Collector { return processCollector{} }

type processCollector struct{}

// procDescSet describes the process's series, built when a registry first
// asks for them.
type procDescSet struct {
	cpu, open, maxFDs, vsize, vmax, rss, start *Desc
}

var procOnce struct {
	sync.Once
	procDescSet
}

func procDescs() *procDescSet {
	p := &procOnce
	p.Do(func() {
		p.cpu = NewDesc("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", KindCounter)
		p.open = NewDesc("process_open_fds", "Number of open file descriptors.", KindGauge)
		p.maxFDs = NewDesc("process_max_fds", "Maximum number of open file descriptors.", KindGauge)
		p.vsize = NewDesc("process_virtual_memory_bytes", "Virtual memory size in bytes.", KindGauge)
		p.vmax = NewDesc("process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes.", KindGauge)
		p.rss = NewDesc("process_resident_memory_bytes", "Resident memory size in bytes.", KindGauge)
		p.start = NewDesc("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", KindGauge)
	})
	return &p.procDescSet
}

func (processCollector) Describe() []*Desc {
	p := procDescs()
	return []*Desc{p.cpu, p.open, p.maxFDs, p.vsize, p.vmax, p.rss, p.start}
}

// userHZ is the unit of /proc's CPU times: USER_HZ, 100 on every Linux
// architecture Go runs on.
const userHZ = 100

func (processCollector) Collect(s *Scrape) {
	p := procDescs()
	if st, err := readStat(); err == nil {
		s.Add(p.cpu, float64(st.utime+st.stime)/userHZ)
		s.Add(p.vsize, float64(st.vsize))
		s.Add(p.rss, float64(st.rss*int64(os.Getpagesize())))
		if boot, err := bootTime(); err == nil {
			s.Add(p.start, float64(boot)+float64(st.start)/userHZ)
		}
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		s.Add(p.open, float64(len(fds)-1)) // less the one reading the directory
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		s.Add(p.maxFDs, float64(lim.Cur))
	}
	if syscall.Getrlimit(syscall.RLIMIT_AS, &lim) == nil {
		s.Add(p.vmax, float64(lim.Cur))
	}
}

type procStat struct {
	utime, stime, start uint64
	vsize               uint64
	rss                 int64
}

// readStat reads the fields of /proc/self/stat it needs. The command name,
// in parentheses, may hold spaces and parentheses: the fields are counted
// from the last ')'.
func readStat() (procStat, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, strconv.ErrSyntax
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state): field n is f[n-3].
	if len(f) < 22 {
		return procStat{}, strconv.ErrSyntax
	}
	var st procStat
	var errs [5]error
	st.utime, errs[0] = strconv.ParseUint(string(f[14-3]), 10, 64)
	st.stime, errs[1] = strconv.ParseUint(string(f[15-3]), 10, 64)
	st.start, errs[2] = strconv.ParseUint(string(f[22-3]), 10, 64)
	st.vsize, errs[3] = strconv.ParseUint(string(f[23-3]), 10, 64)
	st.rss, errs[4] = strconv.ParseInt(string(f[24-3]), 10, 64)
	for _, err := range errs {
		if err != nil {
			return procStat{}, err
		}
	}
	return st, nil
}

// bootTime is when the system booted, in Unix seconds: the btime line of
// /proc/stat.
func bootTime() (uint64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			return strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
		}
	}
	return 0, strconv.ErrSyntax
}
