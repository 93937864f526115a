package bench

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
)

// FanoutResult is the fanout scenario's report: one START of a job on
// every target, timed until every target runs it and until the master has
// every run recorded finished.
type FanoutResult struct {
	Scenario   string `json:"scenario"`
	Targets    int    `json:"targets"`
	Runs       int    `json:"runs"` // fan-outs measured
	TargetMode string `json:"target_mode"`
	// AllRunning and AllRecorded have one sample per fan-out.
	AllRunning  Summary `json:"all_running"`
	AllRecorded Summary `json:"all_recorded"`
	// StartToRunning has one sample per target per fan-out.
	StartToRunning Summary `json:"start_to_running"`
	// SimProcesses is how many processes held the simulated targets; 0
	// with target processes.
	SimProcesses int `json:"sim_processes,omitempty"`
	// Store is the catalog: sqlite or postgres.
	Store string `json:"store"`
	Verdict
}

// budgetFanoutRunning is the budget for a START fanned out to 1,000
// targets to have them all running, in milliseconds.
const (
	budgetFanoutRunningP50 = 150
	budgetFanoutRunning    = 1000
	budgetFanoutTargets    = 1000
)

func fanout(ctx context.Context, e *env) (Result, error) {
	n, reps := or(e.o.Targets, 100), or(e.o.Runs, 5)
	mode := e.o.Mode
	if mode == "" {
		mode = ModeProcess
		if n > 100 {
			mode = ModeSim
		}
	}
	m, err := e.startMaster(ctx)
	if err != nil {
		return nil, err
	}
	rec := newRecorder()
	procs := 0
	if mode == ModeProcess {
		_, err = e.startProcessTargets(ctx, m, n)
	} else {
		procs, _, err = e.startSimFleet(ctx, []*Master{m}, n, rec)
	}
	if err != nil {
		return nil, err
	}
	if err := applyJobs(ctx, m, shellJob("fanout", "true", targetNames(n))); err != nil {
		return nil, err
	}
	res := &FanoutResult{Scenario: "fanout", Targets: n, Runs: reps, TargetMode: mode, SimProcesses: procs, Store: storeName(e.o.Store)}
	var allRunning, allRecorded, each []time.Duration
	for i := range reps + 1 { // the first is a warm-up
		f, err := fanOnce(ctx, m, rec, mode, "fanout", n)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			continue
		}
		e.progress("fan-out %d of %d: all running in %s, all recorded in %s", i, reps, f.allRunning.Round(time.Microsecond), f.allRecorded.Round(time.Microsecond))
		allRunning, allRecorded = append(allRunning, f.allRunning), append(allRecorded, f.allRecorded)
		each = append(each, f.each...)
	}
	res.AllRunning, res.AllRecorded, res.StartToRunning = Summarize(allRunning), Summarize(allRecorded), Summarize(each)
	return res, nil
}

// fanned is what one fan-out measured.
type fanned struct {
	allRunning, allRecorded time.Duration
	startAnswered           time.Duration   // the START request → its answer
	each                    []time.Duration // start → running, per target
}

// fanOnce starts job on all its n targets and waits until every run is
// recorded finished. Runs are known running by the step start time each
// reports; recorded, by the master's answer to the final upload (simulated
// targets) or by the operator API's answer once all are finished.
func fanOnce(ctx context.Context, m *Master, rec *recorder, mode, job string, n int) (fanned, error) {
	t0 := time.Now()
	started, err := m.Client.StartJob(ctx, job, httpapi.StartBody{})
	if err != nil {
		return fanned{}, err
	}
	ids := make([]string, len(started.Runs))
	for i, r := range started.Runs {
		ids[i] = r.RunID
	}
	if len(ids) != n {
		return fanned{}, fmt.Errorf("the START went to %d targets, not %d", len(ids), n)
	}
	var f fanned
	f.startAnswered = time.Since(t0)
	if mode == ModeSim {
		next := 0 // ids before it are recorded: each is looked up once
		err := rec.wait(ctx, fmt.Sprintf("%d runs recorded", n), 10*time.Minute, func() bool {
			for ; next < len(ids); next++ {
				if _, ok := rec.finishes[ids[next]]; !ok {
					return false
				}
			}
			return true
		})
		if err != nil {
			return fanned{}, err
		}
		rec.mu.Lock()
		for _, id := range ids {
			f.each = append(f.each, rec.starts[id].Sub(t0))
			f.allRecorded = max(f.allRecorded, rec.finishes[id].Sub(t0))
		}
		rec.mu.Unlock()
	} else {
		runs, at, err := WaitRuns(ctx, m.Client, started.Refs(), 10*time.Minute)
		if err != nil {
			return fanned{}, err
		}
		f.allRecorded = at.Sub(t0)
		for _, r := range runs {
			if r.Status != muster.RunSucceeded || len(r.Steps) == 0 {
				return fanned{}, fmt.Errorf("run %s on %s: %s %q", r.RunID, r.Target, r.Status, r.Message)
			}
			f.each = append(f.each, r.Steps[0].StartedAt.Sub(t0))
		}
	}
	for _, d := range f.each {
		f.allRunning = max(f.allRunning, d)
	}
	return f, nil
}

// Table writes the fanout figures beside their budgets.
func (r *FanoutResult) Table(w io.Writer) error {
	running := figure{name: fmt.Sprintf("START fanned out to %d targets → all running", r.Targets), measured: dist(r.AllRunning),
		budget: "p50 ≤ 150 ms, max ≤ 1 s (1,000 targets)", result: verdict(r.limits()...)}
	return writeTable(w, []string{
		fmt.Sprintf("muster bench fanout: %d fan-out(s) of one START of `/bin/sh -c true` to every target, after one warm-up", r.Runs),
		"fleet: master process; " + describeTargets(r.TargetMode, r.Targets, r.SimProcesses) + "; TLS on 127.0.0.1",
		machine(),
	}, []figure{
		running,
		{name: fmt.Sprintf("START fanned out to %d targets → all recorded on master", r.Targets), measured: dist(r.AllRecorded)},
		{name: "start → running, each target", measured: dist(r.StartToRunning)},
	})
}

func (r *FanoutResult) limits() []limit {
	full := r.Targets >= budgetFanoutTargets
	return []limit{
		atMost("all_running.p50_ms", "p50", r.AllRunning.P50, budgetFanoutRunningP50, "ms").at(full, "1,000 targets"),
		atMost("all_running.max_ms", "max", r.AllRunning.Max, budgetFanoutRunning, "ms").at(full, "1,000 targets"),
	}
}
