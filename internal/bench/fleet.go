package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"syscall"
	"time"
)

// FleetResult is the fleet scenario's report: a master holding a long-poll
// from every target of a large simulated fleet with the default 60 s
// heartbeat, what that costs it, and a fan-out at that size.
type FleetResult struct {
	Scenario   string `json:"scenario"`
	Targets    int    `json:"targets"`
	TargetMode string `json:"target_mode"`
	// EnlistS is how long enlisting the fleet took; PollsHeld is the
	// master's own count of held polls once all were connected.
	EnlistS   float64 `json:"enlist_s"`
	PollsHeld int     `json:"polls_held"`
	// Steady state, over WindowS seconds with every target connected.
	WindowS          float64 `json:"window_s"`
	MasterRSSMiB     float64 `json:"master_rss_mib"`
	MasterPeakRSSMiB float64 `json:"master_peak_rss_mib"`
	MasterCPUPercent float64 `json:"master_cpu_percent"` // of one core
	MasterOpenFiles  int     `json:"master_open_files"`
	MasterThreads    int     `json:"master_threads"`
	// From the master's Go runtime (its /metrics), at the same moment.
	MasterGoroutines    int     `json:"master_goroutines"`
	MasterHeapInuseMiB  float64 `json:"master_heap_inuse_mib"`
	MasterStackInuseMiB float64 `json:"master_stack_inuse_mib"`
	// A START of one job on every target.
	FanoutRunningMS  float64 `json:"fanout_all_running_ms"`
	FanoutRecordedMS float64 `json:"fanout_all_recorded_ms"`
	// The master's peak resident set by the end, fan-out included.
	MasterPeakRSSAfterMiB float64 `json:"master_peak_rss_after_fanout_mib"`
	// Store names the catalog; with several masters (on PostgreSQL), the
	// targets' polls are spread over them, the figures above are the
	// largest of any master, and PerMaster gives each one's.
	Store     string          `json:"store"`
	Masters   int             `json:"masters"`
	PerMaster []MasterFigures `json:"per_master,omitempty"`
	// SimProcesses is how many processes held the simulated targets.
	SimProcesses int `json:"sim_processes"`
	// MasterKiBPerTarget is the master's resident set, all targets
	// connected, divided by the targets it holds.
	MasterKiBPerTarget float64 `json:"master_rss_kib_per_target"`
	Verdict
}

// MasterFigures are one master's share of a fleet.
type MasterFigures struct {
	URL             string  `json:"url"`
	PollsHeld       int     `json:"polls_held"`
	RSSMiB          float64 `json:"rss_mib"`
	PeakRSSMiB      float64 `json:"peak_rss_mib"`
	CPUPercent      float64 `json:"cpu_percent"`
	PeakRSSAfterMiB float64 `json:"peak_rss_after_fanout_mib"`
}

// Fleet budgets.
const (
	budgetFleetTargets       = 10000
	budgetFleetRSSMiB        = 1024
	budgetFleetKiBPerTarget  = 50
	budgetFleetFanoutRunning = 2000
)

func fleet(ctx context.Context, e *env) (Result, error) {
	if e.o.Mode == ModeProcess {
		return nil, fmt.Errorf("--mode process: the fleet scenario uses simulated targets")
	}
	n, window := or(e.o.Targets, budgetFleetTargets), or(e.o.Duration, time.Minute)
	ms, err := e.startMasters(ctx, or(e.o.Masters, 1))
	if err != nil {
		return nil, err
	}
	m := ms[0]
	rec := newRecorder()
	res := &FleetResult{Scenario: "fleet", Targets: n, TargetMode: ModeSim, WindowS: window.Seconds(), Store: storeName(e.o.Store), Masters: len(ms)}
	start := time.Now()
	// The polls held are counted when the masters first hold one from
	// every target: a held poll ends when its hold does (55 s for the
	// simulated targets) and its target polls again at once, so a count
	// taken later can miss a target between two polls.
	if res.SimProcesses, res.PollsHeld, err = e.startSimFleet(ctx, ms, n, rec); err != nil {
		return nil, err
	}
	res.EnlistS = time.Since(start).Seconds()
	e.progress("%d targets connected to %d master(s) in %s; measuring the masters for %s", n, len(ms), time.Since(start).Round(time.Second), window)
	res.PerMaster = make([]MasterFigures, len(ms))
	stats := make([]ProcStats, len(ms))
	if err := parallel(ctx, len(ms), len(ms), func(ctx context.Context, i int) error {
		after, cpu, err := Watch(ctx, ms[i].Pid(), window)
		stats[i] = after
		res.PerMaster[i] = MasterFigures{URL: ms[i].URL, RSSMiB: MiB(after.RSS), PeakRSSMiB: MiB(after.PeakRSS), CPUPercent: cpu}
		return err
	}); err != nil {
		return nil, err
	}
	if e.o.ProfileDir != "" {
		// Under `bench serve-master`, SIGUSR1 writes a heap profile.
		m.cmd.Process.Signal(syscall.SIGUSR1)
	}
	for i, f := range res.PerMaster {
		if held, err := ms[i].Metric(ctx, "muster_polls_held"); err == nil {
			res.PerMaster[i].PollsHeld = int(held)
		}
		res.MasterCPUPercent = max(res.MasterCPUPercent, f.CPUPercent)
		res.MasterRSSMiB, res.MasterPeakRSSMiB = max(res.MasterRSSMiB, f.RSSMiB), max(res.MasterPeakRSSMiB, f.PeakRSSMiB)
		res.MasterOpenFiles, res.MasterThreads = max(res.MasterOpenFiles, stats[i].OpenFiles), max(res.MasterThreads, stats[i].Threads)
	}
	for name, into := range map[string]*float64{
		"go_memstats_heap_inuse_bytes":  &res.MasterHeapInuseMiB,
		"go_memstats_stack_inuse_bytes": &res.MasterStackInuseMiB,
	} {
		if v, err := m.Metric(ctx, name); err == nil {
			*into = MiB(int64(v))
		}
	}
	if v, err := m.Metric(ctx, "go_goroutines"); err == nil {
		res.MasterGoroutines = int(v)
	}

	e.progress("fan-out to %d targets", n)
	names := targetNames(n)
	if err := applyJobs(ctx, m, shellJob("fleet", "true", names)); err != nil {
		return nil, err
	}
	if e.o.ProfileDir != "" {
		stop := profileWindow(ctx, ms, rec, n)
		defer stop()
	}
	f, err := fanOnce(ctx, m, rec, ModeSim, "fleet", n)
	if err != nil {
		return nil, err
	}
	each := slices.Sorted(slices.Values(f.each))
	e.progress("the START answered in %s; runs running from %s, half by %s, all by %s; all recorded in %s",
		f.startAnswered.Round(time.Millisecond), each[0].Round(time.Millisecond), each[len(each)/2].Round(time.Millisecond),
		f.allRunning.Round(time.Millisecond), f.allRecorded.Round(time.Millisecond))
	res.FanoutRunningMS, res.FanoutRecordedMS = msOf(f.allRunning), msOf(f.allRecorded)
	for i, mm := range ms {
		if st, err := ReadProc(mm.Pid()); err == nil {
			res.PerMaster[i].PeakRSSAfterMiB = MiB(st.PeakRSS)
			res.MasterPeakRSSAfterMiB = max(res.MasterPeakRSSAfterMiB, MiB(st.PeakRSS))
		}
	}
	if len(ms) == 1 {
		res.PerMaster = nil
	}
	if res.PollsHeld > 0 {
		res.MasterKiBPerTarget = round3(res.MasterRSSMiB * 1024 / float64(res.PollsHeld))
	}
	return res, nil
}

// Budgets of several masters on one PostgreSQL catalog.
const (
	budgetSharedTargets  = 20000
	budgetSharedFanoutMS = 2000
)

// Table writes the fleet figures beside their budgets.
func (r *FleetResult) Table(w io.Writer) error {
	if r.Masters > 1 {
		return r.sharedTable(w)
	}
	l := r.limits()
	fan := figure{name: fmt.Sprintf("START fanned out to %d targets → all running", r.Targets), measured: fmt.Sprintf("%s ms", ms3(r.FanoutRunningMS)),
		budget: "≤ 2 s (10,000 targets)", result: verdict(l[3])}
	held := figure{name: "targets held by one master", measured: fmt.Sprintf("%d (%d polls held; enlisted and connected in %.0f s)", r.Targets, r.PollsHeld, r.EnlistS),
		budget: "≥ 10,000", result: verdict(l[0])}
	rss := figure{name: "master RSS, all targets connected", measured: fmt.Sprintf("%.0f MiB (peak %.0f MiB; %.0f MiB after the fan-out)", r.MasterRSSMiB, r.MasterPeakRSSMiB, r.MasterPeakRSSAfterMiB),
		budget: "≤ 1 GiB", result: verdict(l[1])}
	each := figure{name: "master RSS per target held", measured: fmt.Sprintf("%.1f KiB", r.MasterKiBPerTarget),
		budget: "≤ 50 KiB (10,000 targets)", result: verdict(l[2])}
	return writeTable(w, []string{
		fmt.Sprintf("muster bench fleet: %d targets long-polling with the default 60 s heartbeat (polls held 55 s); master measured over %.0f s", r.Targets, r.WindowS),
		"fleet: master process (catalog: " + r.Store + "); " + describeSims(r.Targets, r.SimProcesses) + "; TLS on 127.0.0.1",
		machine(),
	}, []figure{
		held,
		rss,
		each,
		{name: "master CPU, steady state", measured: fmt.Sprintf("%.1f%% of one core", r.MasterCPUPercent)},
		{name: "master open files, threads, goroutines", measured: fmt.Sprintf("%d, %d, %d", r.MasterOpenFiles, r.MasterThreads, r.MasterGoroutines)},
		{name: "master Go heap in use, stacks", measured: fmt.Sprintf("%.0f MiB, %.0f MiB", r.MasterHeapInuseMiB, r.MasterStackInuseMiB)},
		fan,
		{name: fmt.Sprintf("START fanned out to %d targets → all recorded on master", r.Targets), measured: fmt.Sprintf("%s ms", ms3(r.FanoutRecordedMS))},
	})
}

// sharedTable writes the figures of several masters on one catalog.
func (r *FleetResult) sharedTable(w io.Writer) error {
	l := r.limits()
	held := figure{name: fmt.Sprintf("targets held by %d masters on one PostgreSQL catalog", r.Masters),
		measured: fmt.Sprintf("%d (%d polls held; enlisted and connected in %.0f s)", r.Targets, r.PollsHeld, r.EnlistS),
		budget:   "20,000 by 2 masters", result: verdict(l[0])}
	var peak []string
	for i, m := range r.PerMaster {
		peak = append(peak, fmt.Sprintf("master %d: %d polls, %.0f MiB (peak %.0f; %.0f after the fan-out), %.1f%% CPU",
			i+1, m.PollsHeld, m.RSSMiB, m.PeakRSSMiB, m.PeakRSSAfterMiB, m.CPUPercent))
	}
	rss := figure{name: "each master's RSS, all targets connected", measured: strings.Join(peak, "; "),
		budget: "≤ 1 GiB each", result: verdict(l[1])}
	fan := figure{name: fmt.Sprintf("START through master 1 fanned out to %d targets → all running", r.Targets), measured: fmt.Sprintf("%s ms", ms3(r.FanoutRunningMS)),
		budget: "≤ 2 s", result: verdict(l[2])}
	return writeTable(w, []string{
		fmt.Sprintf("muster bench fleet: %d targets long-polling %d masters on one PostgreSQL catalog (polls spread evenly); measured over %.0f s", r.Targets, r.Masters, r.WindowS),
		"fleet: master processes; " + describeSims(r.Targets, r.SimProcesses) + "; TLS on 127.0.0.1",
		machine(),
	}, []figure{held, rss, fan,
		{name: fmt.Sprintf("START fanned out to %d targets → all recorded", r.Targets), measured: fmt.Sprintf("%s ms", ms3(r.FanoutRecordedMS))},
	})
}

func (r *FleetResult) limits() []limit {
	if r.Masters > 1 {
		full := r.Targets >= budgetSharedTargets && r.Masters == 2
		return []limit{
			atLeast("polls_held", "targets", float64(r.PollsHeld), budgetSharedTargets, "polls held").at(full, "20,000 targets, 2 masters"),
			atMost("master_peak_rss_after_fanout_mib", "peak RSS", r.MasterPeakRSSAfterMiB, budgetFleetRSSMiB, "MiB").at(full, "20,000 targets, 2 masters"),
			atMost("fanout_all_running_ms", "all running", r.FanoutRunningMS, budgetSharedFanoutMS, "ms").at(full, "20,000 targets, 2 masters"),
		}
	}
	full := r.Targets >= budgetFleetTargets
	return []limit{
		atLeast("polls_held", "targets", float64(r.PollsHeld), budgetFleetTargets, "polls held").at(full, "10,000 targets"),
		atMost("master_peak_rss_mib", "peak RSS", r.MasterPeakRSSMiB, budgetFleetRSSMiB, "MiB").at(full, "10,000 targets"),
		atMost("master_rss_kib_per_target", "RSS per target", r.MasterKiBPerTarget, budgetFleetKiBPerTarget, "KiB").at(full, "10,000 targets"),
		atMost("fanout_all_running_ms", "all running", r.FanoutRunningMS, budgetFleetFanoutRunning, "ms").at(full, "10,000 targets"),
	}
}

// profileWindow has each master, under `bench serve-master`, profile its
// CPU from now until n more runs are running (SIGUSR2 begins and ends the
// window's profile), so the fan-out's profile holds the fan-out. stop waits
// for the window to end.
func profileWindow(ctx context.Context, ms []*Master, rec *recorder, n int) (stop func()) {
	toggle := func() {
		for _, m := range ms {
			m.cmd.Process.Signal(syscall.SIGUSR2)
		}
	}
	rec.mu.Lock()
	from := len(rec.starts)
	rec.mu.Unlock()
	toggle()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		rec.wait(ctx, "the fan-out's runs running", 10*time.Minute, func() bool { return len(rec.starts) >= from+n })
		toggle()
	}()
	return func() { cancel(); <-done }
}
