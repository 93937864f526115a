package bench

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/musterhq/muster"
)

// AgentResult is the agent scenario's report: what an idle target daemon
// costs its server.
type AgentResult struct {
	Scenario   string  `json:"scenario"`
	TargetMode string  `json:"target_mode"`
	Jobs       int     `json:"jobs"` // held, with schedules not due in the window
	WindowS    float64 `json:"window_s"`
	RSSMiB     float64 `json:"rss_mib"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// What the resident set holds: the process's own memory (heap,
	// stacks), and the pages of mapped files, most of them the binary's
	// code and tables, which are clean, shared with every process running
	// the same binary, and counted whole by each.
	RSSAnonMiB float64 `json:"rss_anon_mib"`
	RSSFileMiB float64 `json:"rss_file_mib"`
	CPUPercent float64 `json:"cpu_percent"` // of one core
	OpenFiles  int     `json:"open_files"`
	Threads    int     `json:"threads"`
	Verdict
}

// budgetAgentRSSMiB is the idle target's memory budget.
const budgetAgentRSSMiB = 20

func idleAgent(ctx context.Context, e *env) (Result, error) {
	if e.o.Mode == ModeSim {
		return nil, fmt.Errorf("--mode sim: the agent scenario measures a real target process")
	}
	jobs, window := or(e.o.Jobs, 10), or(e.o.Duration, time.Minute)
	m, err := e.startMaster(ctx)
	if err != nil {
		return nil, err
	}
	targets, err := e.startProcessTargets(ctx, m, 1)
	if err != nil {
		return nil, err
	}
	t := targets[0]
	var defs []muster.Job
	for i := range jobs {
		j := shellJob(fmt.Sprintf("nightly-%02d", i+1), "echo nightly", []string{t.Name})
		j.Schedules = []muster.Schedule{{Cron: "0 0 1 1 *"}} // midnight on New Year's Day
		defs = append(defs, j)
	}
	if err := applyJobs(ctx, m, defs...); err != nil {
		return nil, err
	}
	e.progress("target holds %d jobs; measuring it idle for %s", jobs, window)
	after, cpu, err := Watch(ctx, t.Pid(), window)
	if err != nil {
		return nil, err
	}
	return &AgentResult{Scenario: "agent", TargetMode: ModeProcess, Jobs: jobs, WindowS: window.Seconds(),
		RSSMiB: MiB(after.RSS), PeakRSSMiB: MiB(after.PeakRSS), RSSAnonMiB: MiB(after.RSSAnon), RSSFileMiB: MiB(after.RSSFile), CPUPercent: cpu,
		OpenFiles: after.OpenFiles, Threads: after.Threads}, nil
}

// Table writes the agent figures beside their budgets.
func (r *AgentResult) Table(w io.Writer) error {
	return writeTable(w, []string{
		fmt.Sprintf("muster bench agent: one idle target holding %d scheduled jobs (none due), measured for %.0f s", r.Jobs, r.WindowS),
		"fleet: master process; " + describeMode(r.TargetMode, 1) + "; TLS on 127.0.0.1",
		machine(),
	}, []figure{
		{name: "idle target RSS", measured: fmt.Sprintf("%.1f MiB (peak %.1f MiB; anonymous %.1f, mapped files %.1f)", r.RSSMiB, r.PeakRSSMiB, r.RSSAnonMiB, r.RSSFileMiB), budget: fmt.Sprintf("≤ %d MiB", budgetAgentRSSMiB),
			result: verdict(r.limits()[0])},
		{name: "idle target CPU", measured: fmt.Sprintf("%.3f%% of one core", r.CPUPercent), budget: "≈ 0 (taken as ≤ 0.5% of a core)",
			result: verdict(r.limits()[1])},
		{name: "idle target open files, threads", measured: fmt.Sprintf("%d, %d", r.OpenFiles, r.Threads)},
	})
}

func (r *AgentResult) limits() []limit {
	return []limit{
		atMost("rss_mib", "RSS", r.RSSMiB, budgetAgentRSSMiB, "MiB"),
		atMost("cpu_percent", "CPU", r.CPUPercent, 0.5, "%"),
	}
}
