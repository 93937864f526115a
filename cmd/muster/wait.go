package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
)

// refusalCheck is how often a wait asks whether targets took their STARTs,
// while some runs are not recorded: a START a target refuses creates no
// run, so the runs alone would never tell.
const refusalCheck = 2 * time.Second

// printStarted says, for each run of a start, whether it started: a target
// whose latest INSERT of the job failed does not hold the job, and its
// START will be refused. It returns those targets.
func printStarted(ctx context.Context, w io.Writer, c *httpapi.Client, res muster.StartResult) ([]string, error) {
	held, err := holdings(ctx, c, res.Job)
	if err != nil {
		return nil, err
	}
	targets, err := c.Targets(ctx, muster.StatusSuspectedOffline)
	if err != nil {
		return nil, err
	}
	offline := map[string]string{}
	now := time.Now()
	for _, t := range targets {
		offline[t.Name] = silenceText(t, now)
	}
	var unheld []string
	for _, r := range res.Runs {
		h := held[r.Target]
		switch {
		case h.missing:
			fmt.Fprintf(w, "not started on %s: %s; the START posted to it (seq %d) will be refused\n", r.Target, h.text, r.Seq)
			unheld = append(unheld, r.Target)
		case r.Queued:
			fmt.Fprintf(w, "queued %s for %s: run %s (the job's max_parallel_targets holds the START on the master until a run ends)\n", res.Job, r.Target, r.RunID)
		default:
			fmt.Fprintf(w, "started %s on %s: run %s\n", res.Job, r.Target, r.RunID)
			if h.text != "" {
				fmt.Fprintf(w, "  note: %s\n", h.text)
			}
			if s := offline[r.Target]; s != "" {
				fmt.Fprintf(w, "  note: %s; it runs the START when it next polls, unless the START expires first (at %s)\n",
					s, res.ExpiresAt.Local().Format("15:04:05"))
			}
		}
	}
	return unheld, nil
}

// holding is what a target holds of a job, as its INSERTs show.
type holding struct {
	missing bool   // its latest INSERT failed and none before it was applied
	text    string // why, or a note on the version it holds
}

// holdings reads, from the download list, what each target holds of a job:
// the newest INSERT of the job not superseded decides. Downloaded or
// pending, the target holds (or will hold) the job as it is; failed or
// deleted, it holds an older version if an earlier INSERT was applied, and
// else none.
func holdings(ctx context.Context, c *httpapi.Client, job string) (map[string]holding, error) {
	list, err := c.DownloadList(ctx, httpapi.DownloadListFilter{Job: job, Operation: string(muster.OpInsert), Limit: 100000})
	if err != nil {
		return nil, err
	}
	byTarget := map[string][]muster.Instruction{}
	for _, in := range list {
		byTarget[in.Target] = append(byTarget[in.Target], in)
	}
	out := map[string]holding{}
	for target, ins := range byTarget {
		slices.SortFunc(ins, func(a, b muster.Instruction) int { return int(b.Seq - a.Seq) })
		i := slices.IndexFunc(ins, func(in muster.Instruction) bool { return in.Status != muster.InstructionSuperseded })
		if i < 0 {
			continue
		}
		latest := ins[i]
		var why string
		switch latest.Status {
		case muster.InstructionFailed:
			why = fmt.Sprintf("its INSERT of the job (seq %d) failed: %s", latest.Seq, latest.Error)
		case muster.InstructionDeleted:
			why = fmt.Sprintf("its INSERT of the job (seq %d) was deleted from the download list before it was applied", latest.Seq)
		default:
			continue
		}
		older := slices.ContainsFunc(ins[i+1:], func(in muster.Instruction) bool { return in.Status == muster.InstructionDownloaded })
		if older {
			out[target] = holding{text: fmt.Sprintf("%s runs an older version of %s: %s", target, job, why)}
		} else {
			out[target] = holding{missing: true, text: fmt.Sprintf("%s does not hold job %s: %s", target, job, why)}
		}
	}
	return out, nil
}

// waitForRuns follows the runs of a start until all are recorded finished
// or refused, prints each outcome, and returns the exit the runs call for:
// nil if all succeeded, 1 if any did not (naming the targets that refused
// their START, with their reasons), 2 if the timeout passed first.
func waitForRuns(ctx context.Context, w, errw io.Writer, c *httpapi.Client, res muster.StartResult, timeout time.Duration) error {
	sw, err := awaitRuns(ctx, c, res, time.Now().Add(timeout), nil, func(s string) { fmt.Fprintln(errw, s) })
	if err != nil {
		return err
	}
	failed, outstanding, refusals := sw.report(w)
	switch {
	case len(outstanding) > 0:
		return &exitError{code: 2, err: fmt.Errorf("timed out after %s; still waiting for %s", timeout, strings.Join(outstanding, ", "))}
	case len(refusals) > 0:
		return &exitError{code: 1, err: fmt.Errorf("%s", strings.Join(refusals, "; "))}
	case failed > 0:
		return &exitError{code: 1, err: fmt.Errorf("%d of %d runs did not succeed", failed, len(res.Runs))}
	}
	return nil
}

// startWatch is what is known of the runs of one start.
type startWatch struct {
	res    muster.StartResult
	runs   map[string]muster.Run // recorded runs by id
	starts *delivery             // the STARTs posted (queued ones have none yet)
	silent map[string]string     // target → how long it has not polled
}

// ended reports whether run r of the start needs no more waiting: recorded
// finished, or its START settled without creating a run.
func (sw *startWatch) ended(r muster.StartedRun) bool {
	if run, ok := sw.runs[r.RunID]; ok && run.Status.Finished() {
		return true
	}
	if r.Seq == 0 {
		return false
	}
	in, _ := sw.starts.state(instructionKey{r.Target, r.Seq})
	return in.Status != muster.InstructionPending && in.Status != muster.InstructionDownloaded && in.Status != ""
}

// skippedUnread reports whether a run of the start is recorded skipped
// without a step while its START is not known to be settled.
func (sw *startWatch) skippedUnread() bool {
	for _, r := range sw.res.Runs {
		run, ok := sw.runs[r.RunID]
		if !ok || r.Seq == 0 || run.Status != muster.RunSkipped || len(run.Steps) > 0 {
			continue
		}
		if _, settled := sw.starts.settled[instructionKey{r.Target, r.Seq}]; !settled {
			return true
		}
	}
	return false
}

func (sw *startWatch) countEnded() int {
	n := 0
	for _, r := range sw.res.Runs {
		if sw.ended(r) {
			n++
		}
	}
	return n
}

// awaitRuns waits until every run of a start is recorded finished, or its
// target refused its START, or the deadline. progress, if set, hears how
// many runs have ended whenever that may have changed; warn hears, once per
// target, that a target is not collecting its START, and, once each time,
// that the master stopped answering (the wait goes on across its restart).
func awaitRuns(ctx context.Context, c *httpapi.Client, res muster.StartResult, deadline time.Time, progress func(int), warn func(string)) (*startWatch, error) {
	var posted []muster.Instruction
	for _, r := range res.Runs {
		if r.Seq > 0 {
			posted = append(posted, muster.Instruction{Target: r.Target, Seq: r.Seq, Job: res.Job, Operation: muster.OpStart, Status: muster.InstructionPending})
		}
	}
	sw := &startWatch{res: res, runs: map[string]muster.Run{}, starts: newDelivery(c, posted)}
	outage := &masterOutage{warn: warn}
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return sw, nil
		}
		// Wait on the runs that can still happen; while some are not
		// recorded, come back often to see whether their STARTs were
		// refused.
		var refs []muster.RunRef
		unrecorded := false
		for _, r := range res.Runs {
			if _, ok := sw.runs[r.RunID]; !ok && !sw.ended(r) {
				unrecorded = true
			}
			if !sw.ended(r) || sw.runs[r.RunID].Status.Finished() {
				refs = append(refs, muster.RunRef{Target: r.Target, RunID: r.RunID})
			}
		}
		hold := min(left, httpapi.MaxRunWait-5*time.Second)
		if unrecorded {
			hold = min(hold, refusalCheck)
		}
		runs, err := c.Runs(ctx, refs, hold)
		for _, r := range runs {
			sw.runs[r.RunID] = r
		}
		if err == nil && unrecorded && !sw.starts.done() {
			// The master may stop between these calls as well.
			if err = sw.starts.check(ctx); err == nil {
				var silent map[string]string
				if silent, err = sw.starts.silence(ctx); err == nil {
					sw.silent = silent
					if warn != nil {
						sw.starts.warnSilent(warn, sw.silent)
					}
				}
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err() // interrupted: not the master's doing
		}
		down, err := outage.seen(err)
		if err != nil {
			return nil, err
		}
		if progress != nil {
			progress(sw.countEnded())
		}
		if sw.countEnded() == len(res.Runs) {
			// A run recorded skipped before its START was read settled may
			// be the master's record of a START refused: the START says
			// why, and whether the target refused it.
			if sw.skippedUnread() && !sw.starts.done() {
				if err := sw.starts.check(ctx); err != nil {
					return nil, err
				}
			}
			return sw, nil
		}
		if down {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Second): // the master is restarting: try again
			}
		}
	}
}

// masterOutage is what a command that waits knows of the master's
// answering: it goes on across a restart of the master (or a spell of the
// network), saying once that the master does not answer, and once that it
// does again.
type masterOutage struct {
	warn func(string) // nil: say nothing
	down bool
}

// seen takes the error of a round of calls to the master. It returns
// whether the master is down (EUNAVAILABLE: try again in a while), and any
// other error, which ends the wait.
func (o *masterOutage) seen(err error) (down bool, _ error) {
	switch {
	case err == nil:
		if o.down && o.warn != nil {
			o.warn("the master answers again")
		}
		o.down = false
		return false, nil
	case muster.ErrorCode(err) != muster.EUNAVAILABLE:
		return false, err
	}
	if !o.down && o.warn != nil {
		o.warn(fmt.Sprintf("the master does not answer; waiting for it (%s)", muster.ErrorMessage(err)))
	}
	o.down = true
	return true, nil
}

// report prints each ended run of a start, and returns how many did not
// succeed, which targets are still outstanding, and the refusals of the
// targets that would not run their START.
func (sw *startWatch) report(w io.Writer) (failed int, outstanding, refusals []string) {
	job := sw.res.Job
	for _, s := range sw.res.Runs {
		r, recorded := sw.runs[s.RunID]
		start, _ := sw.starts.state(instructionKey{s.Target, s.Seq})
		// The master records a START that was refused, superseded or
		// deleted as a run skipped: the START says more.
		settled := start.Status == muster.InstructionFailed || start.Status == muster.InstructionSuperseded || start.Status == muster.InstructionDeleted
		switch {
		case recorded && r.Status.Finished() && !(settled && r.Status == muster.RunSkipped):
			msg := ""
			if r.Message != "" {
				msg = ": " + r.Message
			}
			fmt.Fprintf(w, "%s on %s: %s in %s%s\n", job, s.Target, r.Status, muster.Took(r.DurationMS, r.Status.Finished()), msg)
			if r.Status != muster.RunSucceeded {
				failed++
			}
		case sw.ended(s):
			fmt.Fprintf(w, "%s on %s: not run: %s\n", job, s.Target, settledText(start))
			failed++
			if start.Status == muster.InstructionFailed {
				refusals = append(refusals, fmt.Sprintf("%s refused the START of %s: %s", s.Target, job, start.Error))
			}
		case recorded:
			outstanding = append(outstanding, fmt.Sprintf("%s (run %s: %s)", s.Target, s.RunID, runStatus(r)))
		case s.Seq == 0:
			outstanding = append(outstanding, fmt.Sprintf("%s (run %s: queued on the master by max_parallel_targets)", s.Target, s.RunID))
		case start.Status == muster.InstructionPending && sw.silent[s.Target] != "":
			outstanding = append(outstanding, fmt.Sprintf("%s (run %s: the START is not collected: %s)", s.Target, s.RunID, sw.silent[s.Target]))
		default:
			outstanding = append(outstanding, fmt.Sprintf("%s (run %s: not yet recorded)", s.Target, s.RunID))
		}
	}
	return failed, outstanding, refusals
}
