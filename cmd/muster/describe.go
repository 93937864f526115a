package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/schedule"
)

// printJob describes a job as it behaves: its settings, each step with its
// flow, each schedule in words, and where it runs and why.
func printJob(w io.Writer, j muster.JobStatus) error {
	overrideEnables, overrideSchedules := false, false
	for _, o := range j.Overrides {
		overrideEnables = overrideEnables || (o.Enabled != nil && *o.Enabled)
		overrideSchedules = overrideSchedules || (o.Schedules != nil && len(*o.Schedules) > 0)
	}
	state := "enabled"
	switch {
	case !j.Enabled && overrideEnables:
		state = "disabled, but enabled on some targets by their overrides (below)"
	case !j.Enabled:
		state = "disabled: its schedules do not fire"
	}
	fmt.Fprintf(w, "job %s (version %d, %s)\n", j.Name, j.Version, state)
	if j.Description != "" {
		fmt.Fprintf(w, "  %s\n", j.Description)
	}
	if j.Category != "" {
		fmt.Fprintf(w, "category: %s\n", j.Category)
	}
	fmt.Fprintf(w, "created: %s\nchanged: %s\n", madeBy(j.CreatedAt, j.CreatedBy), madeBy(j.UpdatedAt, j.UpdatedBy))
	zone := "each target's own time zone"
	if j.TimeZone != "" {
		zone = j.TimeZone
	}
	timeout := "none"
	if j.Timeout > 0 {
		timeout = j.Timeout.Short() + ", then the run is ended and recorded timed_out"
	}
	misfire := "skip (recorded as one skipped run)"
	if j.Misfire == muster.MisfireRunOnce {
		misfire = "run_once (the latest missed fire runs once, late)"
	}
	fmt.Fprintf(w, "time zone: %s\nrun timeout: %s\nmissed fires: %s\n", zone, timeout, misfire)
	if j.MaxParallelTargets > 0 {
		fmt.Fprintf(w, "started by hand: on at most %d target(s) at once; the other STARTs wait on the master\n", j.MaxParallelTargets)
	}
	if len(j.Env) > 0 {
		fmt.Fprintf(w, "env: %s\n", envText(j.Env))
	}
	for _, t := range slices.Sorted(maps.Keys(j.TargetEnv)) {
		fmt.Fprintf(w, "env on %s: %s\n", t, envText(j.TargetEnv[t]))
	}

	fmt.Fprintln(w, "steps:")
	for i, s := range j.Steps {
		printStep(w, j.Steps, i, s)
	}

	if len(j.Schedules) == 0 && overrideSchedules {
		fmt.Fprintln(w, "schedules: none of the job's own; overrides give some targets schedules (below)")
	} else if len(j.Schedules) == 0 {
		fmt.Fprintln(w, "schedules: none; the job runs only when started (muster job start)")
	} else {
		fmt.Fprintf(w, "schedules (in %s):\n", zone)
		for _, s := range j.Schedules {
			fmt.Fprintf(w, "  %s: %s\n", s.Name, schedule.Describe(s))
		}
	}

	fmt.Fprintln(w, "targets:")
	if len(j.Outcomes) == 0 {
		switch {
		case len(j.Targets) == 0 && len(j.Groups) == 0:
			fmt.Fprintln(w, "  none: the job names no targets and no groups, so it runs nowhere")
		default:
			fmt.Fprintf(w, "  none: its group(s) %s have no enlisted members, so it runs nowhere for now\n", strings.Join(j.Groups, ", "))
		}
		return nil
	}
	now := time.Now()
	t := newTable(w, "  TARGET", "VIA", "LAST STATUS", "STARTED", "DURATION", "MESSAGE")
	for _, o := range j.Outcomes {
		status, dur := "never run", "-"
		if o.LastStatus != "" {
			status, dur = string(o.LastStatus), muster.Took(o.LastDurationMS, o.LastStatus.Finished())
		}
		t.row("  "+o.Target, viaText(o.Via), status, ago(o.LastStartedAt, now), dur, dash(o.LastMessage))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(j.Overrides) > 0 {
		printOverrides(w, j)
	}
	return nil
}

// printOverrides lists a job's overrides, then what each of its targets
// gets where that differs from the job, and which override gives it.
func printOverrides(w io.Writer, j muster.JobStatus) {
	fmt.Fprintln(w, "overrides (a target gets the job's value, then its groups' overrides in this order, then target_env, then its own):")
	for _, o := range j.Overrides {
		var parts []string
		for _, c := range overrideChanges(o) {
			parts = append(parts, c.field+": "+c.value)
		}
		fmt.Fprintf(w, "  %s: %s\n", o.Subject(), strings.Join(parts, "; "))
	}
	fmt.Fprintln(w, "what each target gets, where it differs from the job:")
	for _, out := range j.Outcomes {
		var groups []string
		for _, v := range out.Via {
			if g, ok := strings.CutPrefix(v, "group:"); ok {
				groups = append(groups, g)
			}
		}
		// Field by field, the last override to set it wins.
		var order []string
		won := map[string]string{}
		set := func(field, value, why string) {
			if _, ok := won[field]; !ok {
				order = append(order, field)
			}
			won[field] = value + " (" + why + ")"
		}
		overrides := j.OverridesFor(out.Target, groups)
		own := len(overrides) > 0 && overrides[len(overrides)-1].Target == out.Target
		for i, o := range overrides {
			if own && i == len(overrides)-1 {
				break
			}
			for _, c := range overrideChanges(o) {
				set(c.field, c.value, o.Subject())
			}
		}
		for _, k := range slices.Sorted(maps.Keys(j.TargetEnv[out.Target])) {
			set("env "+k, strconv.Quote(j.TargetEnv[out.Target][k]), "target_env")
		}
		if own {
			o := overrides[len(overrides)-1]
			for _, c := range overrideChanges(o) {
				set(c.field, c.value, "its own override")
			}
		}
		if len(order) == 0 {
			fmt.Fprintf(w, "  %s: the job as defined\n", out.Target)
			continue
		}
		fmt.Fprintf(w, "  %s:\n", out.Target)
		for _, f := range order {
			fmt.Fprintf(w, "    %s: %s\n", f, won[f])
		}
	}
}

type overrideChange struct{ field, value string }

// overrideChanges lists what an override sets, one field each, in words.
func overrideChanges(o muster.Override) []overrideChange {
	var out []overrideChange
	if o.Enabled != nil {
		out = append(out, overrideChange{"enabled", map[bool]string{true: "yes", false: "no: its schedules do not fire"}[*o.Enabled]})
	}
	if o.Schedules != nil {
		if len(*o.Schedules) == 0 {
			out = append(out, overrideChange{"schedules", "none; it runs only when started"})
		}
		var parts []string
		for _, s := range *o.Schedules {
			parts = append(parts, s.Name+": "+schedule.Describe(s))
		}
		if len(parts) > 0 {
			out = append(out, overrideChange{"schedules", strings.Join(parts, "; ")})
		}
	}
	if o.Timeout != nil {
		out = append(out, overrideChange{"run timeout", durationOrNone(*o.Timeout)})
	}
	for _, k := range slices.Sorted(maps.Keys(o.Env)) {
		out = append(out, overrideChange{"env " + k, strconv.Quote(o.Env[k])})
	}
	for _, name := range slices.Sorted(maps.Keys(o.Steps)) {
		so := o.Steps[name]
		if so.Timeout != nil {
			out = append(out, overrideChange{"step " + name + " timeout", durationOrNone(*so.Timeout)})
		}
		if so.Connection != nil {
			out = append(out, overrideChange{"step " + name + " connection", strconv.Quote(*so.Connection)})
		}
		if so.RunAs != nil {
			proxy := "the daemon's own user"
			if *so.RunAs != "" {
				proxy = "the target's proxy " + strconv.Quote(*so.RunAs)
			}
			out = append(out, overrideChange{"step " + name + " runs as", proxy})
		}
	}
	return out
}

func durationOrNone(d muster.Duration) string {
	if d <= 0 {
		return "none"
	}
	return d.Short()
}

// madeBy says when, and by which API key, a job was made or changed.
func madeBy(at time.Time, by string) string {
	s := at.Local().Format("2006-01-02 15:04:05")
	if by != "" {
		s += " by " + by
	}
	return s
}

// printStep describes one step: what it runs, what comes after it, and
// everything that changes how it runs.
func printStep(w io.Writer, steps []muster.Step, i int, s muster.Step) {
	var what string
	switch s.Kind() {
	case muster.StepShell:
		what = "shell: " + s.Shell
	case muster.StepCommand:
		what = "command: " + strings.Join(quoteArgs(s.Command), " ")
	case muster.StepSQL:
		what = fmt.Sprintf("sql on connection %q: %s", s.Connection, s.SQL)
	}
	fmt.Fprintf(w, "  %d. %s: %s\n", i+1, s.Name, strings.ReplaceAll(strings.TrimSpace(what), "\n", "\n       "))
	last := i == len(steps)-1
	fmt.Fprintf(w, "       on success: %s; on failure: %s\n",
		flowText(steps, s.SuccessAction(), last, true), flowText(steps, s.FailureAction(), last, false))
	retry := "no retries"
	if s.Retry != nil && s.Retry.Attempts > 0 {
		retry = fmt.Sprintf("retried up to %d time(s)", s.Retry.Attempts)
		if s.Retry.Interval > 0 {
			retry += ", " + s.Retry.Interval.Short() + " apart"
		}
	}
	timeout := "no timeout"
	if s.Timeout > 0 {
		timeout = "timeout " + s.Timeout.Short()
	}
	details := []string{retry, timeout}
	if s.RunAs != "" {
		details = append(details, fmt.Sprintf("runs as the target's proxy %q", s.RunAs))
	}
	if s.Workdir != "" {
		details = append(details, "in "+s.Workdir)
	}
	if len(s.Params) > 0 {
		details = append(details, "params "+strings.Join(s.Params, ", "))
	}
	if len(s.Env) > 0 {
		details = append(details, "env "+envText(s.Env))
	}
	fmt.Fprintf(w, "       %s\n", strings.Join(details, "; "))
}

// flowText says what a flow action does, as SQL Server Agent words its step
// actions ("Go to the next step", "Quit the job reporting failure").
func flowText(steps []muster.Step, action string, last, success bool) string {
	if target, ok := strings.CutPrefix(action, muster.ActionGoto); ok {
		n := slices.IndexFunc(steps, func(s muster.Step) bool { return s.Name == target })
		return fmt.Sprintf("go to step %d (%s)", n+1, target)
	}
	switch action {
	case muster.ActionQuitSuccess:
		return "end the run, succeeded"
	case muster.ActionQuitFailure:
		return "end the run, failed"
	}
	if !last {
		return "go to the next step"
	}
	if success {
		return "end the run, succeeded (the last step)"
	}
	return "end the run, failed (the last step)"
}

// viaText says why a job runs on a target: "named in targets", "group web".
func viaText(via []string) string {
	parts := make([]string, len(via))
	for i, v := range via {
		if g, ok := strings.CutPrefix(v, "group:"); ok {
			parts[i] = "group " + g
		} else {
			parts[i] = "named in " + v
		}
	}
	return dash(strings.Join(parts, ", "))
}

// envText renders variables as K=V pairs in name order.
func envText(env map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(env)) {
		parts = append(parts, k+"="+strconv.Quote(env[k]))
	}
	return strings.Join(parts, " ")
}

// quoteArgs quotes the arguments of a command that a reader could not tell
// apart otherwise.
func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$\\") {
			out[i] = strconv.Quote(a)
		} else {
			out[i] = a
		}
	}
	return out
}
