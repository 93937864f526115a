package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
)

// OutputResult is the output scenario's report: what a run whose steps
// print a lot costs the target that runs it.
type OutputResult struct {
	Scenario   string `json:"scenario"`
	TargetMode string `json:"target_mode"`
	Steps      int    `json:"steps"`
	StepBytes  int64  `json:"step_bytes"` // printed by each step
	// Took is from the start request to the finished run recorded on the
	// master.
	TookS float64 `json:"took_s"`
	// PeakRSSMiB is the target process's high-water mark (VmHWM), from its
	// start to the end of the run.
	PeakRSSMiB float64 `json:"target_peak_rss_mib"`
	// TargetDirGrewMiB and MasterDirGrewMiB are the growth of the data
	// directories (their regular files, write-ahead logs included) over
	// the run.
	TargetDirGrewMiB float64 `json:"target_dir_grew_mib"`
	MasterDirGrewMiB float64 `json:"master_dir_grew_mib"`
	// StoredOutputBytes is the output the master holds for the run, all
	// steps together.
	StoredOutputBytes int64 `json:"stored_output_bytes"`
	Verdict
}

// Budgets of the output figures, for a run of 40 steps of 5 MiB.
const (
	budgetOutputTookS   = 15
	budgetOutputRSSMiB  = 200
	budgetOutputDiskMiB = 40
)

// output runs one job on one target process: Runs steps (default 40), each
// printing Size bytes (default 5 MiB) as fast as it can.
func output(ctx context.Context, e *env) (Result, error) {
	if e.o.Mode == ModeSim {
		return nil, fmt.Errorf("--mode sim: the output scenario measures a real target process")
	}
	steps, size := or(e.o.Runs, 40), or(e.o.Size, 5<<20)
	if steps > muster.MaxSteps {
		return nil, fmt.Errorf("--runs: a job has at most %d steps, not %d", muster.MaxSteps, steps)
	}
	m, err := e.startMaster(ctx)
	if err != nil {
		return nil, err
	}
	targets, err := e.startProcessTargets(ctx, m, 1)
	if err != nil {
		return nil, err
	}
	t := targets[0]
	j := muster.NewJob()
	j.Name, j.Targets = "output", []string{t.Name}
	for i := range steps {
		j.Steps = append(j.Steps, muster.Step{Name: fmt.Sprintf("print-%03d", i+1),
			Shell: fmt.Sprintf("yes 0123456789abcdef | head -c %d", size)})
	}
	if err := applyJobs(ctx, m, j); err != nil {
		return nil, err
	}
	targetBefore, masterBefore := DirSize(t.Dir), DirSize(m.Dir)
	e.progress("one run of %d steps printing %d bytes each", steps, size)
	t0 := time.Now()
	started, err := m.Client.StartJob(ctx, j.Name, httpapi.StartBody{})
	if err != nil {
		return nil, err
	}
	runs, at, err := WaitRuns(ctx, m.Client, started.Refs()[:1], 10*time.Minute)
	if err != nil {
		return nil, err
	}
	took := at.Sub(t0)
	stats, err := ReadProc(t.Pid())
	if err != nil {
		return nil, err
	}
	r := runs[0]
	if r.Status != muster.RunSucceeded || len(r.Steps) != steps {
		return nil, fmt.Errorf("run %s: %s with %d of %d steps: %q", r.RunID, r.Status, len(r.Steps), steps, r.Message)
	}
	var stored int64
	for _, a := range r.Steps {
		stored += int64(len(a.Output))
	}
	return &OutputResult{Scenario: "output", TargetMode: ModeProcess, Steps: steps, StepBytes: size, TookS: took.Seconds(),
		PeakRSSMiB: MiB(stats.PeakRSS), TargetDirGrewMiB: MiB(DirSize(t.Dir) - targetBefore),
		MasterDirGrewMiB: MiB(DirSize(m.Dir) - masterBefore), StoredOutputBytes: stored}, nil
}

// Table writes the output figures beside their budgets.
func (r *OutputResult) Table(w io.Writer) error {
	budget := func(s string) string {
		if r.Steps == 40 && r.StepBytes == 5<<20 {
			return s
		}
		return s + " (for 40 × 5 MiB)"
	}
	return writeTable(w, []string{
		fmt.Sprintf("muster bench output: one run of %d steps, each printing %.1f MiB (`yes | head -c`)", r.Steps, MiB(r.StepBytes)),
		"fleet: master process; " + describeMode(r.TargetMode, 1) + "; TLS on 127.0.0.1",
		machine(),
	}, []figure{
		{name: "start request → run recorded on master", measured: fmt.Sprintf("%.1f s", r.TookS), budget: budget("< 15 s"),
			result: verdict(r.limits()[0])},
		{name: "target peak RSS (VmHWM)", measured: fmt.Sprintf("%.0f MiB", r.PeakRSSMiB), budget: budget("< 200 MiB"),
			result: verdict(r.limits()[1])},
		{name: "target data directory growth", measured: fmt.Sprintf("%.1f MiB", r.TargetDirGrewMiB), budget: budget("< 40 MiB"),
			result: verdict(r.limits()[2])},
		{name: "master data directory growth", measured: fmt.Sprintf("%.1f MiB", r.MasterDirGrewMiB)},
		{name: "output the master holds for the run", measured: fmt.Sprintf("%.1f MiB", MiB(r.StoredOutputBytes))},
	})
}

// DirSize is the bytes of the regular files under dir.
func DirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func (r *OutputResult) limits() []limit {
	full := r.Steps == 40 && r.StepBytes == 5<<20
	return []limit{
		atMost("took_s", "time", r.TookS, budgetOutputTookS, "s").at(full, "40 steps of 5 MiB"),
		atMost("target_peak_rss_mib", "peak RSS", r.PeakRSSMiB, budgetOutputRSSMiB, "MiB").at(full, "40 steps of 5 MiB"),
		atMost("target_dir_grew_mib", "growth", r.TargetDirGrewMiB, budgetOutputDiskMiB, "MiB").at(full, "40 steps of 5 MiB"),
	}
}
