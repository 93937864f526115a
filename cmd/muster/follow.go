package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
)

// followWait is how long one request of a follower is held for a change.
const followWait = httpapi.MaxRunWait - 5*time.Second

func newJobLogsCmd() *cobra.Command {
	var cf clientFlags
	var follow, raw bool
	cmd := &cobra.Command{
		Use:   "logs RUN-ID [-f]",
		Short: "Print a run's output, step by step; with -f, follow it as it runs",
		Long: `Print the output of each step attempt of a run (the RUN-ID that job start,
job history and job show print), then its outcome.

With -f, follow a running run: output is printed as the target uploads it
(about once a second while a step runs), then the outcome once the run ends.
The exit status is 0 if the run succeeded, 1 if it did not, and 130 (143 for
SIGTERM) if following was interrupted: the run itself goes on.

On a terminal, control characters in the output (escape sequences, carriage
returns) are printed as escapes such as \x1b, so that what a step printed
cannot drive the terminal; --raw prints them as they are. Redirected to a
file or a pipe, the output is always as the step wrote it.`,
		Example: `  muster job logs 5f0c2a4e-7d4b-8c1e-9a3f-0b1c2d3e4f50
  muster job logs 5f0c2a4e-7d4b-8c1e-9a3f-0b1c2d3e4f50 -f`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			if !follow {
				_, err := followRun(cmd.Context(), forTerminal(cmd.OutOrStdout(), raw), cmd.ErrOrStderr(), c, args[0], false)
				return err
			}
			ctx, in := interruptible(cmd.Context())
			r, err := followRun(ctx, forTerminal(cmd.OutOrStdout(), raw), forTerminal(cmd.ErrOrStderr(), false), c, args[0], true)
			goesOn := fmt.Sprintf("stopped following run %s, which is not recorded yet", args[0])
			if r.RunID != "" {
				goesOn = fmt.Sprintf("stopped following run %s; it goes on: `muster job stop %s --target %s` stops it", r.RunID, r.Job, r.Target)
			}
			return in.end(err, goesOn)
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the run until it ends")
	cmd.Flags().BoolVar(&raw, "raw", false, "print control characters as they are, even on a terminal")
	return cmd
}

// followRun prints a run's output and outcome; with follow, as the run
// goes on, until it ends, saying once on note while the run is not
// recorded yet, and while the master does not answer (following goes on
// across its restart). It returns the run as it last read it.
func followRun(ctx context.Context, w, note io.Writer, c *httpapi.Client, runID string, follow bool) (last muster.Run, _ error) {
	p := newOutputPrinter(w, "")
	tag := ""
	noted := false
	outage := &masterOutage{warn: func(s string) { fmt.Fprintln(note, s) }}
	for {
		wait := followWait
		if tag == "" || !follow {
			wait = 0
		}
		runs, newTag, changed, err := c.WatchRuns(ctx, httpapi.RunsFilter{Runs: []muster.RunRef{{RunID: runID}}}, tag, wait)
		if err != nil && (!follow || ctx.Err() != nil) {
			return last, err
		}
		if down, err := outage.seen(err); err != nil {
			return last, err
		} else if down {
			if err := pause(ctx); err != nil {
				return last, err
			}
			continue
		}
		tag = newTag
		if !changed {
			continue
		}
		if len(runs) == 0 {
			if !follow {
				return last, muster.Errorf(muster.ENOTFOUND, "no run %s is recorded (a START not yet run is recorded when its target runs it)", runID)
			}
			if !noted {
				noted = true
				fmt.Fprintf(note, "run %s is not recorded yet; waiting for its target to run it (check the id if no START gave it)\n", runID)
			}
			continue
		}
		r := runs[0]
		last = r
		p.print(r)
		if r.Status.Finished() {
			fmt.Fprintln(w, outcomeLine(r))
			if r.Status != muster.RunSucceeded {
				return r, &exitError{code: 1, err: fmt.Errorf("run %s on %s %s", r.RunID, r.Target, r.Status)}
			}
			return r, nil
		}
		if !follow {
			fmt.Fprintf(w, "run %s on %s is still %s; follow it with -f\n", r.RunID, r.Target, runStatus(r))
			return r, nil
		}
	}
}

// followLimit is how many of a job's newest runs a follower of its
// history watches, besides those back to the oldest it follows.
const followLimit = 20

// followHistory prints a job's runs as they start, their output as it is
// written, and their outcomes, until ctx ends, saying on note while the
// master does not answer (following goes on across its restart). Every
// run is printed, however many start at once, and a run it follows is
// followed to its end, however many start after it.
func followHistory(ctx context.Context, w, note io.Writer, c *httpapi.Client, job, target string) error {
	printers := map[muster.RunRef]*outputPrinter{} // runs followed, not ended
	done := map[muster.RunRef]bool{}               // runs ended, or already ended at first
	tag := ""
	first := true
	limit := followLimit
	outage := &masterOutage{warn: func(s string) { fmt.Fprintln(note, s) }}
	for {
		wait := followWait
		if first {
			wait = 0
		}
		runs, newTag, changed, err := c.WatchRuns(ctx, httpapi.RunsFilter{Job: job, Target: target, Limit: limit}, tag, wait)
		if err == nil && changed {
			runs, err = readBeyond(ctx, c, job, target, runs, limit, printers, func(r muster.Run) bool {
				ref := r.Ref()
				return first && !r.Status.Finished() || !first && !done[ref] && printers[ref] == nil
			})
		}
		if ctx.Err() != nil {
			return nil
		}
		if down, err := outage.seen(err); err != nil {
			return err
		} else if down {
			if err := pause(ctx); err != nil {
				return nil
			}
			continue
		}
		tag = newTag
		if !changed {
			continue
		}
		// Oldest first, so output reads in order.
		for i := len(runs) - 1; i >= 0; i-- {
			r := runs[i]
			ref := r.Ref()
			if done[ref] {
				continue
			}
			if first && r.Status.Finished() {
				done[ref] = true // history already shown
				continue
			}
			p, ok := printers[ref]
			if !ok {
				p = newOutputPrinter(w, r.Target+" | ")
				printers[ref] = p
				fmt.Fprintf(w, "run %s on %s (%s, started %s)\n", r.RunID, r.Target, r.Trigger, r.StartedAt.Local().Format("2006-01-02 15:04:05"))
			}
			p.print(r)
			if r.Status.Finished() {
				fmt.Fprintln(w, outcomeLine(r))
				done[ref] = true
				delete(printers, ref)
			}
		}
		limit = watchLimit(runs, printers)
		first = false
	}
}

// readBeyond returns a job's newest runs, runs (read with limit), and the
// older ones a follower must print too: while the oldest run read is one
// it has not printed yet (unprinted), the history's pages beyond it; and
// then the runs it follows (followed) found in neither, by their ids.
func readBeyond(ctx context.Context, c *httpapi.Client, job, target string, runs []muster.Run, limit int, followed map[muster.RunRef]*outputPrinter, unprinted func(muster.Run) bool) ([]muster.Run, error) {
	if len(runs) == limit && unprinted(runs[len(runs)-1]) {
		// The runs are read again from the newest, a page at a time: a
		// cursor is the history's, not that of the runs watched.
		runs = runs[:0]
		for cursor := ""; ; {
			page, next, err := c.HistoryPage(ctx, job, target, followPage, cursor)
			if err != nil {
				return nil, err
			}
			runs = append(runs, page...)
			if next == "" || len(page) == 0 || !unprinted(page[len(page)-1]) {
				break
			}
			cursor = next
		}
	}
	read := map[muster.RunRef]bool{}
	for _, r := range runs {
		read[r.Ref()] = true
	}
	var missing []muster.RunRef
	for ref := range followed {
		if !read[ref] {
			missing = append(missing, ref)
		}
	}
	if len(missing) == 0 {
		return runs, nil
	}
	older, err := c.Runs(ctx, missing, 0)
	if err != nil {
		return nil, err
	}
	// Older than every run read, they come last, the oldest last.
	slices.SortFunc(older, func(a, b muster.Run) int { return b.StartedAt.Compare(a.StartedAt) })
	return append(runs, older...), nil
}

// followPage is how many runs each page of readBeyond reads.
const followPage = 100

// watchLimit is how many of a job's newest runs a follower watches next:
// followLimit more than reach back to the oldest run it follows (so that
// its output and its end wake the follower), at most as many as the
// master gives.
func watchLimit(runs []muster.Run, followed map[muster.RunRef]*outputPrinter) int {
	limit := followLimit
	for i, r := range runs {
		if followed[r.Ref()] != nil {
			limit = max(limit, i+1+followLimit)
		}
	}
	return min(limit, httpapi.MaxRunsLimit)
}

// outcomeLine says how a run ended.
func outcomeLine(r muster.Run) string {
	msg := ""
	if r.Message != "" {
		msg = ": " + r.Message
	}
	return fmt.Sprintf("run %s on %s: %s in %s%s", r.RunID, r.Target, r.Status, muster.Took(r.DurationMS, r.Status.Finished()), msg)
}

// outputPrinter prints the output of a run's step attempts as it grows,
// each part once.
type outputPrinter struct {
	w       io.Writer
	prefix  string
	printed map[string]string // attempt → output printed so far
	ended   map[string]bool   // attempts whose end was printed
}

func newOutputPrinter(w io.Writer, prefix string) *outputPrinter {
	return &outputPrinter{w: w, prefix: prefix, printed: map[string]string{}, ended: map[string]bool{}}
}

// print prints what is new in each attempt's output since the last call.
func (p *outputPrinter) print(r muster.Run) {
	for _, s := range r.Steps {
		key := fmt.Sprintf("%s#%d", s.Name, s.Attempt)
		old, seen := p.printed[key]
		if !seen {
			fmt.Fprintf(p.w, "%s== step %s (attempt %d) ==\n", p.prefix, s.Name, s.Attempt)
		}
		p.write(newOutput(old, s.Output))
		p.printed[key] = s.Output
		if s.Status != muster.AttemptRunning && !p.ended[key] {
			p.ended[key] = true
			if s.Output != "" && !strings.HasSuffix(s.Output, "\n") {
				fmt.Fprintln(p.w)
			}
			code := ""
			if s.ExitCode != nil {
				code = fmt.Sprintf(", exit %d", *s.ExitCode)
			}
			fmt.Fprintf(p.w, "%s== step %s (attempt %d): %s%s, %s ==\n", p.prefix, s.Name, s.Attempt, s.Status, code, muster.Took(s.DurationMS, s.Status != muster.AttemptRunning))
		}
	}
}

// write prints text, each line with the prefix.
func (p *outputPrinter) write(text string) {
	if text == "" {
		return
	}
	if p.prefix == "" {
		io.WriteString(p.w, text)
		return
	}
	for _, line := range strings.SplitAfter(text, "\n") {
		if line != "" {
			io.WriteString(p.w, p.prefix+line)
		}
	}
}

// newOutput returns the part of an attempt's output not printed yet. The
// output grows at its end; once it is over the target's output limit, the
// target keeps its first and last parts with a line between saying how
// much was dropped, so its end moves: what follows the last printed bytes
// is printed, or, when those bytes were dropped too, a note and all that is
// kept after the first part.
func newOutput(printed, now string) string {
	if strings.HasPrefix(now, printed) {
		return now[len(printed):]
	}
	anchor := printed[max(0, len(printed)-256):]
	if i := strings.Index(now, anchor); anchor != "" && i >= 0 {
		return now[i+len(anchor):]
	}
	common := 0
	for common < len(printed) && common < len(now) && printed[common] == now[common] {
		common++
	}
	return "\n[muster: the target dropped part of this output (it keeps the first and last parts); what it kept since follows]\n" + now[common:]
}

// pause waits a second before a follower asks a master that does not
// answer again, or returns ctx's error.
func pause(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Second):
		return nil
	}
}
