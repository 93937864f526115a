package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
)

func newRolloutCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Show the rollouts that start jobs in waves",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newRolloutListCmd())
	return cmd
}

func newRolloutListCmd() *cobra.Command {
	var cf clientFlags
	var waves bool
	cmd := &cobra.Command{
		Use:   "list JOB [--waves]",
		Short: "List a job's rollouts, newest first, with their progress",
		Long: `List a job's rollouts (muster job start --batch), newest first: each one's
state (running, done, halted or cancelled, with why), the wave posted last
of how many, and how many runs were started, succeeded and failed. With
--waves, each target of each rollout too, by wave, with how its run stands.
With -o json, everything, targets included.`,
		Example: `  muster rollout list deploy
  muster rollout list deploy --waves`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return query(cmd, &cf, func(c *httpapi.Client) ([]muster.Rollout, error) {
				ros, err := c.Rollouts(cmd.Context(), args[0])
				if err == nil && len(ros) == 0 {
					// None: say so if there is no such job either (a
					// mistyped name, or a job deleted with its
					// rollouts), as job history does.
					if _, err := c.Job(cmd.Context(), args[0]); muster.ErrorCode(err) == muster.ENOTFOUND {
						return nil, err
					}
				}
				return ros, err
			}, func(w io.Writer, ros []muster.Rollout) error {
				return printRollouts(w, ros, waves)
			})
		},
	}
	cf.register(cmd)
	cf.registerOutput(cmd)
	cmd.Flags().BoolVar(&waves, "waves", false, "show each target of each rollout, by wave")
	return cmd
}

// printRollouts prints rollouts as a table, or with waves each rollout
// and its targets.
func printRollouts(w io.Writer, ros []muster.Rollout, waves bool) error {
	if !waves {
		t := newTable(w, "ID", "STATE", "WAVE", "STARTED", "SUCCEEDED", "FAILED", "BATCH", "MAX FAILURES", "CREATED", "BY", "REASON")
		for _, r := range ros {
			t.row(strconv.FormatInt(r.ID, 10), string(r.State), fmt.Sprintf("%d/%d", r.Wave, r.Waves), strconv.Itoa(r.Started),
				strconv.Itoa(r.Succeeded), strconv.Itoa(r.Failed), r.Batch, strconv.Itoa(r.MaxFailures),
				r.CreatedAt.Local().Format("2006-01-02 15:04:05"), r.CreatedBy, dash(r.Reason))
		}
		return t.flush()
	}
	for _, r := range ros {
		fmt.Fprintf(w, "rollout %d: %s at wave %d/%d, %d started, %d succeeded, %d failed%s\n", r.ID, r.State, r.Wave, r.Waves,
			r.Started, r.Succeeded, r.Failed, map[bool]string{true: " (" + r.Reason + ")", false: ""}[r.Reason != ""])
		for wave := 1; wave <= r.Waves; wave++ {
			fmt.Fprintf(w, "  wave %d:\n", wave)
			for _, t := range r.WaveTargets(wave) {
				fmt.Fprintf(w, "    %s  %s  %s\n", t.Target, t.Status, dash(t.Message))
			}
		}
	}
	return nil
}

// rolloutFlags are job start's --group, --batch and --max-failures.
type rolloutFlags struct {
	group       string
	batch       string
	maxFailures int
}

// rolloutPoll is how often the CLI reads a rollout it follows.
const rolloutPoll = 500 * time.Millisecond

// run starts a job on a group's members, or in waves: the master stores the
// rollout and posts each wave when the previous one has finished, halting
// it when more runs than --max-failures have failed. run follows it and
// reports each wave; the rollout goes on if run is interrupted.
func (f rolloutFlags) run(ctx context.Context, w io.Writer, c *httpapi.Client, job string, body httpapi.StartBody, timeout time.Duration) error {
	spec := muster.RolloutSpec{Batch: f.batch, MaxFailures: f.maxFailures}
	if spec.Batch == "" {
		spec.Batch = "100%" // --group alone: one wave
	}
	if _, err := spec.WaveSize(1); err != nil {
		return fmt.Errorf("--batch: %s", muster.ErrorMessage(err))
	}
	if spec.MaxFailures < 0 {
		return fmt.Errorf("--max-failures: %d is negative; give 0 (halt at the first failure) or more", spec.MaxFailures)
	}
	if f.group != "" {
		targets, err := f.targets(ctx, c, job, body.Targets)
		if err != nil {
			return err
		}
		body.Targets = targets
	}
	body.Rollout = &spec
	res, err := c.StartJob(ctx, job, body)
	if err != nil {
		return err
	}
	if res.Rollout == nil {
		return fmt.Errorf("the master answered the start of %s without a rollout", job)
	}
	ro := *res.Rollout
	fmt.Fprintf(w, "rollout %d of %s: %d target(s) in %d wave(s) of %d\n", ro.ID, job, len(ro.Targets), ro.Waves, ro.WaveSize)
	deadline := time.Now().Add(timeout)
	for wave := 1; wave <= ro.Waves; wave++ {
		if ro, err = followRollout(ctx, c, ro, deadline, nil, func(r muster.Rollout) bool { return r.Wave >= wave || !r.Active() }); err != nil {
			return err
		}
		if ro.Wave < wave {
			break // it ended, or the time is up, before this wave
		}
		label := fmt.Sprintf("wave %d/%d", wave, ro.Waves)
		targets := ro.WaveTargets(wave)
		names := make([]string, len(targets))
		for i, t := range targets {
			names[i] = t.Target
		}
		fmt.Fprintf(w, "%s: %s\n", label, strings.Join(names, ", "))
		bar, finish := progressBar(w, label, len(targets))
		ro, err = followRollout(ctx, c, ro, deadline, bar, func(r muster.Rollout) bool { return waveEnded(r, wave) })
		finish()
		if err != nil {
			return err
		}
		if outstanding := reportWave(w, ro, wave); len(outstanding) > 0 {
			return &exitError{code: 2, err: fmt.Errorf("timed out after %s; still waiting for %s; not started: %s",
				timeout, strings.Join(outstanding, ", "), dash(strings.Join(waiting(ro), ", ")))}
		}
	}
	// The last wave's end ends the rollout, at once or, for a START that
	// expired unrun, at the master's next look.
	if ro, err = followRollout(ctx, c, ro, deadline, nil, func(r muster.Rollout) bool { return !r.Active() }); err != nil {
		return err
	}
	switch ro.State {
	case muster.RolloutHalted:
		// The master's reason: more runs failed than allowed, or a target
		// of the next wave was deleted or taken out of the job.
		reason := ro.Reason
		if reason == "" { // a master that records none
			reason = fmt.Sprintf("%d run(s) failed, more than --max-failures %d", ro.Failed, ro.MaxFailures)
		}
		return &exitError{code: 1, err: fmt.Errorf("stopped after wave %d/%d: %s; not started: %s",
			ro.Wave, ro.Waves, reason, dash(strings.Join(waiting(ro), ", ")))}
	case muster.RolloutCancelled:
		return &exitError{code: 1, err: fmt.Errorf("rollout %d cancelled after wave %d/%d: %s; not started: %s",
			ro.ID, ro.Wave, ro.Waves, ro.Reason, dash(strings.Join(waiting(ro), ", ")))}
	case muster.RolloutRunning:
		return &exitError{code: 2, err: fmt.Errorf("timed out after %s; rollout %d is still running", timeout, ro.ID)}
	}
	if ro.Failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d runs did not succeed", ro.Failed, len(ro.Targets))}
	}
	fmt.Fprintf(w, "rollout of %s done: %d target(s) in %d wave(s)\n", job, len(ro.Targets), ro.Waves)
	return nil
}

// followRollout reads a rollout until done says it is where the caller
// waits for, or the deadline passes, telling progress (if set) how many
// runs of the current wave have ended.
func followRollout(ctx context.Context, c *httpapi.Client, ro muster.Rollout, deadline time.Time, progress func(int), done func(muster.Rollout) bool) (muster.Rollout, error) {
	for !done(ro) && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ro, ctx.Err()
		case <-time.After(rolloutPoll):
		}
		next, err := c.Rollout(ctx, ro.Job, ro.ID)
		switch {
		case muster.ErrorCode(err) == muster.EUNAVAILABLE:
			continue // the master is restarting: the rollout goes on
		case muster.ErrorCode(err) == muster.ENOTFOUND:
			// Deleting a job deletes its rollouts: say that, not that
			// the job has no such rollout.
			if _, jerr := c.Job(ctx, ro.Job); muster.ErrorCode(jerr) == muster.ENOTFOUND {
				return ro, &exitError{code: 1, err: fmt.Errorf("job %q was deleted during rollout %d, at wave %d/%d, and the rollout with it: no further wave starts; not started: %s",
					ro.Job, ro.ID, ro.Wave, ro.Waves, dash(strings.Join(waiting(ro), ", ")))}
			}
			return ro, err
		case err != nil:
			return ro, err
		}
		ro = next
		if progress != nil {
			n := 0
			for _, t := range ro.WaveTargets(ro.Wave) {
				if t.Ended() {
					n++
				}
			}
			progress(n)
		}
	}
	return ro, nil
}

// waveEnded reports whether every run of a rollout's wave has ended.
func waveEnded(ro muster.Rollout, wave int) bool {
	for _, t := range ro.WaveTargets(wave) {
		if !t.Ended() {
			return false
		}
	}
	return true
}

// reportWave prints each ended run of a wave, and returns the targets of
// the wave still outstanding.
func reportWave(w io.Writer, ro muster.Rollout, wave int) (outstanding []string) {
	w = forTerminal(w, false) // a run's message is a target's text
	for _, t := range ro.WaveTargets(wave) {
		switch {
		case t.Status == muster.RolloutNotRun:
			fmt.Fprintf(w, "%s on %s: not run: %s\n", ro.Job, t.Target, t.Message)
		case t.Ended():
			msg := ""
			if t.Message != "" {
				msg = ": " + t.Message
			}
			fmt.Fprintf(w, "%s on %s: %s in %s%s\n", ro.Job, t.Target, t.Status, muster.Took(t.DurationMS, true), msg)
		default:
			outstanding = append(outstanding, fmt.Sprintf("%s (run %s: %s)", t.Target, t.RunID, t.Status))
		}
	}
	return outstanding
}

// waiting returns the targets of a rollout's waves not posted.
func waiting(ro muster.Rollout) []string {
	var out []string
	for _, t := range ro.Targets {
		if t.Status == muster.RolloutWaiting {
			out = append(out, t.Target)
		}
	}
	return out
}

// jobTargets returns the targets a job runs on, sorted.
func jobTargets(j muster.JobStatus) []string {
	var out []string
	for _, o := range j.Outcomes {
		out = append(out, o.Target)
	}
	slices.Sort(out)
	return out
}

// listOrNone joins names with commas, or says none.
func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// targets returns the job's targets the rollout covers: those in the group
// (if one is given), or those named, or all of them, sorted.
func (f rolloutFlags) targets(ctx context.Context, c *httpapi.Client, job string, named []string) ([]string, error) {
	j, err := c.Job(ctx, job)
	if err != nil {
		return nil, err
	}
	var targets []string
	for _, o := range j.Outcomes {
		targets = append(targets, o.Target)
	}
	// Target names are case-insensitive, as the master takes them.
	want := make([]string, len(named))
	for i, n := range named {
		want[i] = muster.NormalizeTargetName(n)
		if !slices.Contains(targets, want[i]) {
			return nil, fmt.Errorf("--target: job %q does not run on %q; it runs on %s", job, n, listOrNone(jobTargets(j)))
		}
	}
	if len(want) > 0 {
		targets = want
	}
	if f.group != "" {
		groups, err := c.Groups(ctx)
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(groups, func(g muster.Group) bool { return g.Name == f.group })
		if i < 0 {
			return nil, fmt.Errorf("--group: no group named %q", f.group)
		}
		members := groups[i].Targets
		if len(want) > 0 {
			// Named with the group, each must be in it: one left out
			// would not start, the others starting as if it had not
			// been asked for.
			for _, t := range want {
				if !slices.Contains(members, t) {
					return nil, fmt.Errorf("--target: %s is not in group %s, whose members are %s", t, f.group, listOrNone(members))
				}
			}
		}
		targets = slices.DeleteFunc(targets, func(t string) bool { return !slices.Contains(members, t) })
	}
	if len(targets) == 0 {
		if f.group != "" {
			return nil, fmt.Errorf("job %q runs on none of the targets chosen (--group %s); it runs on %s", job, f.group, listOrNone(jobTargets(j)))
		}
		return nil, fmt.Errorf("job %q runs on no target", job)
	}
	slices.Sort(targets)
	return slices.Compact(targets), nil
}

// progressBar shows a wave's progress on a terminal; elsewhere it shows
// nothing. It returns the function that moves it and the one that ends it.
func progressBar(w io.Writer, label string, total int) (func(done int), func()) {
	if f, ok := w.(*os.File); !ok || !isTerminal(f) {
		return nil, func() {}
	}
	last := -1
	draw := func(done int) {
		if done == last {
			return
		}
		last = done
		fmt.Fprint(w, "\r"+barLine(label, done, total, 40))
	}
	draw(0)
	return draw, func() { fmt.Fprintln(w) }
}

// barLine is one line of a progress bar: the label, done of total, a bar
// of width cells and the percentage.
func barLine(label string, done, total, width int) string {
	done = min(max(done, 0), total)
	filled, pct := width, 100
	if total > 0 {
		filled, pct = done*width/total, done*100/total
	}
	return fmt.Sprintf("%s %d/%d [%s%s] %3d %%", label, done, total,
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled), pct)
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
