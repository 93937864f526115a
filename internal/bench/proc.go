package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ProcStats is what /proc tells about a process at one moment.
type ProcStats struct {
	RSS       int64         // resident set, bytes (VmRSS)
	RSSAnon   int64         // of which anonymous memory: heap, stacks (RssAnon)
	RSSFile   int64         // of which mapped files, the binary's pages first (RssFile)
	PeakRSS   int64         // high-water mark of the resident set (VmHWM)
	CPU       time.Duration // user + system time since the process started
	OpenFiles int           // entries in /proc/PID/fd
	Threads   int
}

// clockTicks is the unit of the CPU times in /proc/PID/stat (USER_HZ). It
// is 100 on every Linux the Go runtime supports.
const clockTicks = 100

// ReadProc reads the stats of process pid.
func ReadProc(pid int) (ProcStats, error) {
	var st ProcStats
	dir := "/proc/" + strconv.Itoa(pid)
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return st, err
	}
	for line := range strings.Lines(string(status)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			st.RSS = n << 10
		case "RssAnon":
			st.RSSAnon = n << 10
		case "RssFile":
			st.RSSFile = n << 10
		case "VmHWM":
			st.PeakRSS = n << 10
		case "Threads":
			st.Threads = int(n)
		}
	}
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return st, err
	}
	// The command name is in parentheses and may hold spaces; the fields
	// after it are numbered from 3 (state). utime and stime are 14 and 15.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return st, fmt.Errorf("%s/stat: no command name", dir)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return st, fmt.Errorf("%s/stat: %d fields", dir, len(f))
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	st.CPU = time.Duration(utime+stime) * time.Second / clockTicks
	fds, err := os.ReadDir(dir + "/fd")
	if err != nil {
		return st, err
	}
	st.OpenFiles = len(fds)
	return st, nil
}

// Watch reads process pid's stats, waits window (or until ctx ends), reads
// them again, and returns the second reading with the CPU the process used
// meanwhile, in percent of one core.
func Watch(ctx context.Context, pid int, window time.Duration) (ProcStats, float64, error) {
	before, err := ReadProc(pid)
	if err != nil {
		return ProcStats{}, 0, err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return ProcStats{}, 0, ctx.Err()
	case <-time.After(window):
	}
	after, err := ReadProc(pid)
	return after, CPUPercent(before, after, time.Since(t0)), err
}

// CPUPercent is the share of one core that a process used between two
// readings taken wall apart.
func CPUPercent(before, after ProcStats, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return 100 * float64(after.CPU-before.CPU) / float64(wall)
}

// MiB renders bytes in mebibytes.
func MiB(b int64) float64 { return float64(b) / (1 << 20) }
