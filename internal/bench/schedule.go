package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/musterhq/muster"
)

// ScheduleResult is the schedule scenario's report: jobs due every second,
// spread over the targets (target processes on this machine, sharing the
// fire rate), each fire's lateness (the step process's start, as the target
// recorded it, minus the scheduled time it was given in
// MUSTER_SCHEDULED_AT), every fire of the window accounted for, and the
// spawn floor measured in the same window.
type ScheduleResult struct {
	Scenario   string  `json:"scenario"`
	Targets    int     `json:"targets"`
	Jobs       int     `json:"jobs"`
	DurationS  float64 `json:"duration_s"`
	TargetMode string  `json:"target_mode"`
	Lateness   Summary `json:"lateness"`
	// Expected fires in the window (jobs × seconds); Fired distinct ones
	// that ran; Missed expected ones that did not; Duplicates fires that
	// ran more than once; Skipped runs recorded as skipped.
	Expected   int `json:"expected"`
	Fired      int `json:"fired"`
	Missed     int `json:"missed"`
	Duplicates int `json:"duplicates"`
	Skipped    int `json:"skipped"`
	// NoOutput counts runs whose step printed no scheduled time that could
	// be read (so their fires count as missed); NoOutputRun describes the
	// first.
	NoOutput    int    `json:"no_output,omitempty"`
	NoOutputRun string `json:"no_output_run,omitempty"`
	// SpawnFloor is what this machine allows at best: the same number of
	// `/bin/sh -c` processes started at once by this process, at the same
	// rate (once a second, half a second after each fire, so that the
	// machine's noise falls on both alike, for the whole window), as
	// lateness from the planned instant to each Start returning.
	SpawnFloor Summary `json:"spawn_floor"`
	Verdict
}

// Budgets of scheduled start lateness, as multiples of the spawn floor:
// its p99 on one target; its p50 and p99 with several target processes
// sharing the machine.
const (
	budgetLatenessFloorTimes      = 1.2
	budgetLatenessFloorTimesFleet = 1.5
)

func schedules(ctx context.Context, e *env) (Result, error) {
	if e.o.Mode == ModeSim {
		return nil, fmt.Errorf("--mode sim: simulated targets do not run schedules; the schedule scenario uses a real target process")
	}
	jobs, window := or(e.o.Jobs, 50), or(e.o.Duration, time.Minute).Truncate(time.Second)
	if window < time.Second {
		window = time.Second
	}
	m, err := e.startMaster(ctx)
	if err != nil {
		return nil, err
	}
	n := or(e.o.Targets, 1)
	targets, err := e.startProcessTargets(ctx, m, n)
	if err != nil {
		return nil, err
	}
	var defs []muster.Job
	for i := range jobs {
		j := shellJob(fmt.Sprintf("tick-%02d", i+1), scheduleScript, []string{targets[i%n].Name})
		j.Schedules = []muster.Schedule{{Name: "every-second", Cron: "* * * * * *"}}
		defs = append(defs, j)
	}
	if err := applyJobs(ctx, m, defs...); err != nil {
		return nil, err
	}
	from := time.Now().Add(2 * time.Second).Truncate(time.Second)
	to := from.Add(window)
	e.progress("%d jobs due every second on %d target(s); measuring fires from %s to %s", jobs, n, from.Format(time.TimeOnly), to.Format(time.TimeOnly))
	// The spawn floor runs through the window, between the fires.
	sp := spawnFloor(ctx, from.Add(time.Second/2), int(window/time.Second), jobs)
	if sp.err != nil {
		return nil, sp.err
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(time.Until(to.Add(2 * time.Second))):
	}
	for i := range defs {
		defs[i].Enabled = false
	}
	if err := applyJobs(ctx, m, defs...); err != nil {
		return nil, err
	}
	res := &ScheduleResult{Scenario: "schedule", Targets: n, SpawnFloor: Summarize(sp.late), Jobs: jobs, DurationS: window.Seconds(), TargetMode: ModeProcess,
		Expected: jobs * int(window/time.Second)}
	var late []time.Duration
	samples := sp.samples
	for _, j := range defs {
		var runs []muster.Run
		// Wait until the runs of the window have all been uploaded
		// finished: the last fires may still be on their way.
		err := waitUntil(ctx, "the runs of "+j.Name, time.Minute, 200*time.Millisecond, func() (bool, error) {
			var err error
			runs, err = m.Client.History(ctx, j.Name, "", 10000)
			if err != nil {
				return false, err
			}
			for _, r := range runs {
				if !r.Status.Finished() {
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			return nil, err
		}
		seen := map[time.Time]bool{}
		for _, r := range runs {
			if r.Status == muster.RunSkipped {
				if !r.StartedAt.Before(from) && r.StartedAt.Before(to.Add(time.Second)) {
					res.Skipped++
				}
				continue
			}
			if len(r.Steps) == 0 {
				continue
			}
			at, err := time.Parse(time.RFC3339, strings.TrimSpace(r.Steps[0].Output))
			if err != nil {
				// Its fire cannot be told: it counts as missed, and the
				// report says what the run was.
				res.NoOutput++
				if res.NoOutputRun == "" {
					res.NoOutputRun = fmt.Sprintf("run %s of %s: %s %q, step %s %q, output %q", r.RunID, j.Name, r.Status, r.Message, r.Steps[0].Status, r.Steps[0].Message, r.Steps[0].Output)
				}
				continue
			}
			if at.Before(from) || !at.Before(to) {
				continue
			}
			if seen[at] {
				res.Duplicates++
				continue
			}
			seen[at] = true
			late = append(late, r.Steps[0].StartedAt.Sub(at))
			samples = append(samples, lateSample{kind: "fire", name: j.Name, at: at, late: r.Steps[0].StartedAt.Sub(at)})
		}
		res.Fired += len(seen)
	}
	res.Missed = res.Expected - res.Fired
	res.Lateness = Summarize(late)
	if e.o.Dir != "" {
		if err := writeSamples(filepath.Join(e.dir, scheduleSamplesFile), samples); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// scheduleSamplesFile is where, with --dir, the schedule scenario keeps
// every sample it summarized, fires and floor alike, one a line, so that
// the seconds of the worst ones can be told.
const scheduleSamplesFile = "schedule-samples.csv"

// lateSample is one fire's lateness, or one spawn of the floor's.
type lateSample struct {
	kind string // "fire" or "floor"
	name string // the job, or the floor's spawn number
	at   time.Time
	late time.Duration
}

// writeSamples writes samples as CSV: kind, name, the planned instant in
// Unix nanoseconds, the lateness in milliseconds.
func writeSamples(path string, samples []lateSample) error {
	var b strings.Builder
	b.WriteString("kind,name,at_unix_ns,late_ms\n")
	for _, s := range samples {
		fmt.Fprintf(&b, "%s,%s,%d,%.3f\n", s.kind, s.name, s.at.UnixNano(), float64(s.late)/float64(time.Millisecond))
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// Table writes the schedule figures beside their budgets.
func (r *ScheduleResult) Table(w io.Writer) error {
	l := r.limits()
	late, counts := l[:len(l)-2], l[len(l)-2:]
	budget := fmt.Sprintf("p99 ≤ %.3g × floor p99 (%s ms)", r.floorTimes(), ms3(r.floorTimes()*r.SpawnFloor.P99))
	if r.Targets > 1 {
		budget = fmt.Sprintf("p50, p99 ≤ %.3g × floor's (%s, %s ms)", r.floorTimes(), ms3(r.floorTimes()*r.SpawnFloor.P50), ms3(r.floorTimes()*r.SpawnFloor.P99))
	}
	return writeTable(w, []string{
		fmt.Sprintf("muster bench schedule: %d jobs due every second (cron `* * * * * *`) on %d target(s) for %.0f s; lateness = step process started − MUSTER_SCHEDULED_AT", r.Jobs, r.Targets, r.DurationS),
		"fleet: master process; " + describeMode(r.TargetMode, r.Targets) + "; TLS on 127.0.0.1",
		machine(),
	}, []figure{
		{name: "scheduled start lateness", measured: dist(r.Lateness), budget: budget, result: verdict(late...)},
		{name: fmt.Sprintf("spawn floor: %d `/bin/sh -c` started at once, each second", r.Jobs), measured: dist(r.SpawnFloor)},
		{name: "fires expected / ran", measured: fmt.Sprintf("%d / %d", r.Expected, r.Fired)},
		{name: "missed, duplicate, skipped fires", measured: fmt.Sprintf("%d, %d, %d", r.Missed, r.Duplicates, r.Skipped), budget: "0 missed, 0 duplicate", result: verdict(counts...)},
		{name: "runs without a readable MUSTER_SCHEDULED_AT", measured: or(r.NoOutputRun, "none")},
	})
}

// scheduleScript is each scheduled job's step: it prints the scheduled time
// the target gave it.
const scheduleScript = "echo $MUSTER_SCHEDULED_AT"

func (r *ScheduleResult) limits() []limit {
	l := []limit{overFloor("lateness.p99_ms", "p99", r.Lateness.P99, r.SpawnFloor.P99, r.floorTimes(), "ms")}
	if r.Targets > 1 {
		l = append([]limit{overFloor("lateness.p50_ms", "p50", r.Lateness.P50, r.SpawnFloor.P50, r.floorTimes(), "ms")}, l...)
	}
	return append(l,
		atMost("missed", "missed", float64(r.Missed), 0, "fires"),
		atMost("duplicates", "duplicates", float64(r.Duplicates), 0, "fires"))
}

// floorTimes is the multiple of the spawn floor lateness may reach.
func (r *ScheduleResult) floorTimes() float64 {
	if r.Targets > 1 {
		return budgetLatenessFloorTimesFleet
	}
	return budgetLatenessFloorTimes
}

// spawned is what spawnFloor measured.
type spawned struct {
	late    []time.Duration
	samples []lateSample
	err     error
}

// spawnFloor starts n `/bin/sh -c` processes at once, each in a goroutine
// of its own, at first and then once a second, ticks times, as a target
// starts the steps of fires due together; each lateness is from the
// planned instant to its Start returning. It returns when the last has
// exited.
func spawnFloor(ctx context.Context, first time.Time, ticks, n int) spawned {
	var sp spawned
	for k := range ticks {
		at := first.Add(time.Duration(k) * time.Second)
		select {
		case <-ctx.Done():
			return spawned{err: ctx.Err()}
		case <-time.After(time.Until(at)):
		}
		late, errs := make([]time.Duration, n), make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				cmd := exec.Command("/bin/sh", "-c", scheduleScript)
				cmd.Env = append(os.Environ(), "MUSTER_SCHEDULED_AT="+at.UTC().Format(time.RFC3339))
				cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
				cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
				if errs[i] = cmd.Start(); errs[i] != nil {
					return
				}
				late[i] = time.Since(at)
				errs[i] = cmd.Wait()
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return spawned{err: fmt.Errorf("spawn floor: %w", err)}
		}
		sp.late = append(sp.late, late...)
		for i, l := range late {
			sp.samples = append(sp.samples, lateSample{kind: "floor", name: strconv.Itoa(i + 1), at: at, late: l})
		}
	}
	return sp
}
