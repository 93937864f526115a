package bench

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/musterhq/muster"
)

// ScheduleResult is the schedule scenario's report: jobs due every second
// on one target, each fire's lateness (the step process's start, as the
// target recorded it, minus the scheduled time it was given in
// MUSTER_SCHEDULED_AT), and every fire of the window accounted for.
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
}

// budgetLatenessP99 is the budget for scheduled start lateness, in ms.
const budgetLatenessP99 = 10

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
	targets, err := e.startProcessTargets(ctx, m, 1)
	if err != nil {
		return nil, err
	}
	var defs []muster.Job
	for i := range jobs {
		j := shellJob(fmt.Sprintf("tick-%02d", i+1), "echo $MUSTER_SCHEDULED_AT", []string{targets[0].Name})
		j.Schedules = []muster.Schedule{{Name: "every-second", Cron: "* * * * * *"}}
		defs = append(defs, j)
	}
	if err := applyJobs(ctx, m, defs...); err != nil {
		return nil, err
	}
	from := time.Now().Add(2 * time.Second).Truncate(time.Second)
	to := from.Add(window)
	e.progress("%d jobs due every second; measuring fires from %s to %s", jobs, from.Format(time.TimeOnly), to.Format(time.TimeOnly))
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
	res := &ScheduleResult{Scenario: "schedule", Targets: 1, Jobs: jobs, DurationS: window.Seconds(), TargetMode: ModeProcess,
		Expected: jobs * int(window/time.Second)}
	var late []time.Duration
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
				return nil, fmt.Errorf("run %s of %s: MUSTER_SCHEDULED_AT %q: %v", r.RunID, j.Name, r.Steps[0].Output, err)
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
		}
		res.Fired += len(seen)
	}
	res.Missed = res.Expected - res.Fired
	res.Lateness = Summarize(late)
	return res, nil
}

// Table writes the schedule figures beside their budgets.
func (r *ScheduleResult) Table(w io.Writer) error {
	counts := verdict(atMost("missed", float64(r.Missed), 0, "fires"), atMost("duplicates", float64(r.Duplicates), 0, "fires"))
	return writeTable(w, []string{
		fmt.Sprintf("muster bench schedule: %d jobs due every second (cron `* * * * * *`) on one target for %.0f s; lateness = step process started − MUSTER_SCHEDULED_AT", r.Jobs, r.DurationS),
		"fleet: master process; " + describeMode(r.TargetMode, r.Targets) + "; TLS on 127.0.0.1",
		machine(),
	}, []figure{
		{name: "scheduled start lateness", measured: dist(r.Lateness), budget: "p99 ≤ 10 ms",
			result: verdict(atMost("p99", r.Lateness.P99, budgetLatenessP99, "ms"))},
		{name: "fires expected / ran", measured: fmt.Sprintf("%d / %d", r.Expected, r.Fired)},
		{name: "missed, duplicate, skipped fires", measured: fmt.Sprintf("%d, %d, %d", r.Missed, r.Duplicates, r.Skipped), budget: "0 missed, 0 duplicate", result: counts},
	})
}
