package bench

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
)

// IngestResult is the ingest scenario's report: finished runs uploaded by
// simulated targets in batches, as targets upload their spool, and how
// many a second the master accepted.
type IngestResult struct {
	Scenario string `json:"scenario"`
	// Backend is the master's catalog store. PostgreSQL is not yet a
	// catalog backend, so only SQLite is measured.
	Backend    string `json:"backend"`
	Targets    int    `json:"targets"` // uploading at once
	TargetMode string `json:"target_mode"`
	Runs       int    `json:"runs"`
	Batch      int    `json:"batch"`
	// RunsPerSecond is runs accepted (answered OK) per second of wall time.
	RunsPerSecond    float64 `json:"runs_per_s"`
	ElapsedS         float64 `json:"elapsed_s"`
	BatchLatency     Summary `json:"batch_latency"`
	MasterCPUPercent float64 `json:"master_cpu_percent"`
	// MasterCPUPerRun is the master's CPU time per accepted run, in
	// microseconds: what bounds ingest when the master has a core to
	// itself, and steadier than a rate measured on a shared machine.
	MasterCPUPerRun float64 `json:"master_cpu_us_per_run"`
	Verdict
}

// ingestBatch is how many runs one upload carries: what a target sends
// when it empties a full spool.
const ingestBatch = 500

// Budgets of history ingest in runs per second, by catalog.
const (
	budgetIngestSQLite   = 30000
	budgetIngestPostgres = 20000
)

func ingest(ctx context.Context, e *env) (Result, error) {
	if e.o.Mode == ModeProcess {
		return nil, fmt.Errorf("--mode process: the ingest scenario uploads from simulated targets")
	}
	n, total := or(e.o.Targets, 8), or(e.o.Runs, 200_000)
	m, err := e.startMaster(ctx)
	if err != nil {
		return nil, err
	}
	sims, err := e.startSimTargets(ctx, m, n, newRecorder())
	if err != nil {
		return nil, err
	}
	if err := applyJobs(ctx, m, shellJob("ingest", "true", targetNames(n))); err != nil {
		return nil, err
	}
	res := &IngestResult{Scenario: "ingest", Backend: storeName(e.o.Store), Targets: n, TargetMode: ModeSim, Runs: total, Batch: ingestBatch}
	e.progress("%d targets upload %d finished runs in batches of %d", n, total, ingestBatch)
	var next atomic.Int64 // runs handed out
	var mu sync.Mutex
	var lat []time.Duration
	before, err := ReadProc(m.Pid())
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	err = parallel(ctx, n, n, func(ctx context.Context, i int) error {
		s := sims[i]
		for {
			from := int(next.Add(ingestBatch)) - ingestBatch
			if from >= total {
				return nil
			}
			batch := syntheticRuns(s.name, from, min(ingestBatch, total-from), t0)
			t := time.Now()
			if err := s.upload(ctx, batch); err != nil {
				return err
			}
			mu.Lock()
			lat = append(lat, time.Since(t))
			mu.Unlock()
		}
	})
	if err != nil {
		return nil, err
	}
	elapsed := time.Since(t0)
	after, err := ReadProc(m.Pid())
	if err != nil {
		return nil, err
	}
	res.ElapsedS = elapsed.Seconds()
	res.RunsPerSecond = float64(total) / elapsed.Seconds()
	res.BatchLatency = Summarize(lat)
	res.MasterCPUPercent = CPUPercent(before, after, elapsed)
	res.MasterCPUPerRun = float64((after.CPU-before.CPU)/time.Microsecond) / float64(total)
	return res, nil
}

// syntheticRuns makes count finished runs of job "ingest", numbered from
// first, each with one step and a line of output.
func syntheticRuns(target string, first, count int, at time.Time) []agentproto.RunReport {
	out := make([]agentproto.RunReport, count)
	for i := range out {
		code := 0
		done := at.Add(12 * time.Millisecond)
		out[i] = agentproto.RunReport{Revision: 1, Run: agentproto.Run{
			Job: "ingest", Target: target, RunID: fmt.Sprintf("ingest-%09d", first+i), Status: muster.RunSucceeded,
			Trigger: muster.TriggerSchedule + ":every-minute", StartedAt: at, FinishedAt: &done, DurationMS: 12,
			Steps: []agentproto.StepAttempt{{Name: "main", Attempt: 1, Status: muster.AttemptSucceeded, ExitCode: &code,
				StartedAt: at, DurationMS: 11}},
		}, Output: []agentproto.OutputChunk{{Data: "backup of /var/lib/app done: 1523 files, 48 MiB\n"}}}
	}
	return out
}

// Table writes the ingest figures beside their budgets.
func (r *IngestResult) Table(w io.Writer) error {
	budget := r.limits()[0].bound
	return writeTable(w, []string{
		fmt.Sprintf("muster bench ingest: %d finished runs uploaded by %d targets at once, %d a batch (POST /agent/v1/runs)", r.Runs, r.Targets, r.Batch),
		"fleet: master process (catalog: " + r.Backend + "); " + describeMode(r.TargetMode, r.Targets) + "; TLS on 127.0.0.1",
		machine(),
	}, []figure{
		{name: "history ingest on the master (" + r.Backend + ")", measured: fmt.Sprintf("%.0f runs/s (%d runs in %.1f s)", r.RunsPerSecond, r.Runs, r.ElapsedS),
			budget: fmt.Sprintf("≥ %s runs/s", num(budget)), result: verdict(r.limits()...)},
		{name: fmt.Sprintf("upload of %d runs, round trip", r.Batch), measured: dist(r.BatchLatency)},
		{name: "master CPU while ingesting", measured: fmt.Sprintf("%.0f%% of one core; %.0f µs a run", r.MasterCPUPercent, r.MasterCPUPerRun)},
	})
}

func (r *IngestResult) limits() []limit {
	budget := float64(budgetIngestSQLite)
	if r.Backend == "postgres" {
		budget = budgetIngestPostgres
	}
	return []limit{atLeast("runs_per_s", "ingest", r.RunsPerSecond, budget, "runs/s")}
}
