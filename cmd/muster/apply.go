package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/jobfile"
	"github.com/musterhq/muster/internal/jsonhttp"
)

func newApplyCmd() *cobra.Command {
	var cf clientFlags
	var paths []string
	var req httpapi.ApplyRequest
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "apply -f FILE [--dry-run] [--prune] [--wait [--timeout 5m]]",
		Short: "Create or update jobs from a file",
		Long: `Create or update the jobs in FILE (YAML; "-" reads standard input), by name.
Give -f several times to apply several files as one: all or nothing, a job
defined in two of them is a mistake, and --prune keeps the jobs of every file.

The master applies the whole file or nothing, and posts each affected target
the instructions it needs in the same transaction: INSERT for a new or changed
job, UPDATE when only enabled or description changed, DELETE where a job no
longer runs. A job that has not changed posts nothing. Every mistake in the
file is reported at once, at FILE:LINE:COL, and nothing is applied; unknown
targets and invalid schedules are errors that name the job and the rule.
What only the master can check (that a target or a group exists, that your
key reaches it) is reported at its FILE:LINE:COL too.

  jobs:
    - name: hello
      description: say hello
      enabled: true                # default
      targets: [web1, web2]
      steps:
        - name: greet
          shell: echo "hello from $MUSTER_TARGET"   # run by /bin/sh -c
        - name: list
          command: [ls, -l, /tmp]                   # argv, no shell
      schedules:
        - cron: "0 2 * * *"        # 5 fields, or 6 with seconds first

A target may still refuse what is posted to it: a job naming a connection or
a proxy it does not have, a time zone it does not know. Without --wait, apply
returns once the master has posted the instructions, without waiting for the
targets. With --wait, it waits until every target has applied or refused its
instruction, and exits 1 naming each target that refused and why (2 if
--timeout passes first, naming the targets that have not polled; 130 if
interrupted, when what was posted stays posted).

With --dry-run nothing changes and the differences are printed. With --prune,
jobs on the master that are not in FILE are deleted.`,
		Example: `  muster apply -f jobs.yaml --dry-run
  muster apply -f jobs.yaml --wait`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := cf.format()
			if err != nil {
				return err
			}
			if wait && req.DryRun {
				return errors.New("--wait: a dry run posts nothing to wait for")
			}
			if err := checkTimeout(timeout); err != nil {
				return err
			}
			files, err := readJobFiles(cmd.InOrStdin(), paths)
			if err != nil {
				return err
			}
			if req.Jobs, err = files.jobs(); err != nil {
				return err
			}
			if err := files.checkSize(req); err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			res, err := c.Apply(cmd.Context(), req)
			if err != nil {
				return files.place(err)
			}
			if !wait {
				return reportApplied(cmd.Context(), cmd, format, c, req.Jobs, res, false, timeout)
			}
			// The signals are taken before the first line is printed, which
			// a script may wait for before it interrupts.
			ctx, in := interruptible(cmd.Context())
			err = reportApplied(ctx, cmd, format, c, req.Jobs, res, true, timeout)
			return in.end(err, "stopped waiting; what was posted stays posted, and the targets apply it when they poll: `muster downloadlist --pending` shows what they have not")
		},
	}
	cf.register(cmd)
	cf.registerOutput(cmd)
	f := cmd.Flags()
	f.StringArrayVarP(&paths, "file", "f", nil, "the job file (required); give it several times to apply several files as one")
	f.BoolVar(&req.DryRun, "dry-run", false, "show what would change, change nothing")
	f.BoolVar(&req.Prune, "prune", false, "delete jobs that are not in the file")
	f.BoolVar(&wait, "wait", false, "wait until every target has applied or refused what was posted to it")
	timeout = 5 * time.Minute
	f.Var((*duration)(&timeout), "timeout", "with --wait, how long to wait")
	cmd.MarkFlagRequired("file")
	return cmd
}

// jobFile is a job file as read, for placing in it what the master
// refuses.
type jobFile struct {
	name string // as in messages: the path, or "stdin"
	src  []byte
}

// jobFiles are the files of one apply.
type jobFiles []jobFile

// readJobFiles reads the files of paths ("-" for standard input, once).
func readJobFiles(stdin io.Reader, paths []string) (jobFiles, error) {
	var files jobFiles
	for i, path := range paths {
		r, name := stdin, "stdin"
		if path == "-" {
			if slices.Contains(paths[:i], "-") {
				return nil, errors.New("-f: standard input (-) is given twice")
			}
		} else {
			f, err := os.Open(path)
			if err != nil {
				return nil, fmt.Errorf("-f: %w", err)
			}
			defer f.Close()
			if fi, err := f.Stat(); err == nil && fi.IsDir() {
				return nil, fmt.Errorf("-f: %s is a directory, not a job file", path)
			}
			r, name = f, path
		}
		src, err := io.ReadAll(io.LimitReader(r, jobfile.MaxSize+1))
		if err != nil {
			return nil, fmt.Errorf("-f: %w", err)
		}
		files = append(files, jobFile{name: name, src: src})
	}
	return files, nil
}

// jobs reads and checks every file, and returns their jobs in the order
// of the files; or every mistake of every file, a job defined in two of
// them among them.
func (files jobFiles) jobs() ([]muster.Job, error) {
	var all []muster.Job
	var mistakes []string
	defined := map[string]int{} // the file that defines a job, by name
	for i, f := range files {
		jobs, err := jobfile.Read(f.name, bytes.NewReader(f.src))
		if err != nil {
			if muster.ErrorCode(err) != muster.EINVALID {
				return nil, err
			}
			mistakes = append(mistakes, muster.ErrorMessage(err))
			continue
		}
		for _, j := range jobs {
			if first, dup := defined[j.Name]; dup {
				firstLine, _, _ := jobfile.Defined(files[first].src, j.Name)
				line, col, _ := jobfile.Defined(f.src, j.Name)
				mistakes = append(mistakes, fmt.Sprintf("%s:%d:%d: job %q is already defined in %s on line %d",
					f.name, line, max(col, 1), j.Name, files[first].name, firstLine))
				continue
			}
			defined[j.Name] = i
		}
		all = append(all, jobs...)
	}
	if len(mistakes) > 0 {
		return nil, muster.Errorf(muster.EINVALID, "%s", strings.Join(mistakes, "\n"))
	}
	return all, nil
}

// checkSize refuses files that each pass jobfile's check of what one apply
// may send, but that come to more together, as req sends them.
func (files jobFiles) checkSize(req httpapi.ApplyRequest) error {
	if len(files) < 2 {
		return nil // checked, and placed in the file, as it was read
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if jsonhttp.Cost(body) <= httpapi.MaxApplyBody {
		return nil
	}
	return muster.Errorf(muster.EINVALID, "the files come to more than %d MiB as sent to the master (in JSON, each mapping and list counting %d bytes more), the most one apply may send: apply them in parts, fewer files at a time (without --prune)",
		httpapi.MaxApplyBody>>20, jsonhttp.ValueCost)
}

// place puts before what the master refused the place in the files it
// speaks of, FILE:LINE:COL, as the mistakes found before sending them are
// shown: the master checks what needs the fleet (targets and groups that
// exist, what the key may reach).
func (files jobFiles) place(err error) error {
	for _, f := range files {
		if placed := placeInFile(f.name, f.src, err); placed != err {
			return placed
		}
	}
	return err
}

// placeInFile puts before what the master refused in a job file the
// place in the file it speaks of, or returns err as it is when the file
// has no such place.
func placeInFile(name string, src []byte, err error) error {
	var e *muster.Error
	if !errors.As(err, &e) || e.Code == muster.EINTERNAL || e.Code == muster.EUNAVAILABLE {
		return err
	}
	line, col, ok := jobfile.Locate(src, e.Message)
	if !ok {
		return err
	}
	return &muster.Error{Code: e.Code, Message: fmt.Sprintf("%s:%d:%d: %s", name, line, max(col, 1), e.Message), Err: e.Err}
}

// reportApplied prints what an apply changed, and the warnings on it; with
// wait, it then waits until every target has applied or refused what was
// posted to it.
func reportApplied(ctx context.Context, cmd *cobra.Command, format string, c *httpapi.Client, jobs []muster.Job, res muster.ApplyResult, wait bool, timeout time.Duration) error {
	// What the master and the targets say is escaped on a terminal (a
	// refusal is a target's text).
	errw := forTerminal(cmd.ErrOrStderr(), false)
	for i, ch := range res.Changes {
		for _, warning := range ch.Warnings {
			fmt.Fprintln(errw, "warning: "+warning)
		}
		if i < len(jobs) && len(ch.LeftOut) > 0 {
			// What runs nowhere is judged by the targets applied.
			jobs[i].Targets = slices.DeleteFunc(slices.Clone(jobs[i].Targets), func(n string) bool {
				return slices.Contains(ch.LeftOut, muster.NormalizeTargetName(n))
			})
		}
	}
	if err := warnRunsNowhere(ctx, errw, c, jobs); err != nil {
		return err
	}
	w := forTerminal(cmd.OutOrStdout(), false)
	if err := printAs(w, format, res, func(w io.Writer) error {
		printApply(w, res, wait)
		return nil
	}); err != nil {
		return err
	}
	if format != outputTable {
		w = errw // what follows is for a person
	}
	if !wait {
		return nil
	}
	var posted []muster.Instruction
	for _, ch := range res.Changes {
		posted = append(posted, ch.Posted...)
	}
	return awaitApplied(ctx, w, errw, c, posted, timeout)
}

// warnRunsNowhere warns of jobs that run on no target: they name none and
// no group, or only groups without members.
func warnRunsNowhere(ctx context.Context, w io.Writer, c *httpapi.Client, jobs []muster.Job) error {
	var groups []muster.Group
	for _, j := range jobs {
		switch {
		case len(j.Targets) > 0:
		case len(j.Groups) == 0:
			fmt.Fprintf(w, "warning: job %s names no targets and no groups, so it runs nowhere; add targets: or groups:\n", j.Name)
		default:
			if groups == nil {
				var err error
				if groups, err = c.Groups(ctx); err != nil {
					return err
				}
			}
			members := 0
			for _, g := range groups {
				if slices.Contains(j.Groups, g.Name) {
					members += len(g.Targets)
				}
			}
			if members == 0 {
				fmt.Fprintf(w, "warning: job %s runs nowhere for now: its groups (%s) have no members; add some with muster group add\n",
					j.Name, strings.Join(j.Groups, ", "))
			}
		}
	}
	return nil
}

// awaitApplied follows the instructions an apply posted until every target
// has applied or refused its own, and returns the exit that calls for: nil
// if all were applied, 1 naming each target that refused, 2 if the timeout
// passed first.
func awaitApplied(ctx context.Context, w, errw io.Writer, c *httpapi.Client, posted []muster.Instruction, timeout time.Duration) error {
	d := newDelivery(c, posted)
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var silent map[string]string
	warn := func(s string) { fmt.Fprintln(errw, s) }
	outage := &masterOutage{warn: warn}
	for {
		// The wait goes on across a restart of the master.
		err := d.check(ctx)
		if err == nil && !d.done() {
			var s map[string]string
			if s, err = d.silence(ctx); err == nil {
				silent = s
				d.warnSilent(warn, silent)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err() // interrupted: not the master's doing
		}
		if _, err := outage.seen(err); err != nil {
			return err
		}
		if d.done() || !time.Now().Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	var refused, waiting []string
	applied := 0
	for _, in := range posted {
		cur, _ := d.state(keyOf(in))
		switch cur.Status {
		case muster.InstructionDownloaded:
			applied++
		case muster.InstructionPending:
			text := fmt.Sprintf("%s (%s %s, seq %d, not applied yet", in.Target, in.Operation, in.Job, in.Seq)
			if s := silent[in.Target]; s != "" {
				text += ": " + s
			}
			waiting = append(waiting, text+")")
		default:
			fmt.Fprintln(w, settledText(cur))
			if cur.Status == muster.InstructionFailed {
				refused = append(refused, in.Target)
			}
		}
	}
	if applied > 0 {
		fmt.Fprintf(w, "%d of %d instruction(s) applied by their targets\n", applied, len(posted))
	}
	slices.Sort(refused)
	refused = slices.Compact(refused)
	switch {
	case len(refused) > 0:
		return &exitError{code: 1, err: fmt.Errorf("refused by %s; see muster downloadlist --errors, and docs/runbooks/unblock.md", strings.Join(refused, ", "))}
	case len(waiting) > 0:
		return &exitError{code: 2, err: fmt.Errorf("timed out after %s; still waiting for %s", timeout, strings.Join(waiting, ", "))}
	}
	return nil
}

// actionMark is the mark printApply puts before a job an apply changed.
func actionMark(action string) string {
	switch action {
	case muster.ActionCreate:
		return "+"
	case muster.ActionUpdate:
		return "~"
	case muster.ActionDelete:
		return "-"
	case muster.ActionUnchanged:
		return "="
	}
	return ""
}

// printApply prints what an apply changed; waiting says whether the
// command goes on to wait for the targets.
func printApply(w io.Writer, res muster.ApplyResult, waiting bool) {
	for _, c := range res.Changes {
		line := fmt.Sprintf("%s %s", actionMark(c.Action), c.Job)
		switch c.Action {
		case muster.ActionUnchanged:
			line += ": unchanged"
		case muster.ActionDelete:
			line += ": deleted"
		default:
			line += fmt.Sprintf(" (version %d)", c.Version)
		}
		if len(c.Instructions) > 0 {
			line += ": " + strings.Join(c.Instructions, ", ")
		}
		fmt.Fprintln(w, line)
		if res.DryRun && c.Action != muster.ActionUnchanged {
			for _, d := range c.Diff {
				fmt.Fprintln(w, "    "+d)
			}
		}
	}
	if res.DryRun {
		fmt.Fprintf(w, "dry run: nothing changed; %d instruction(s) would be posted\n", res.Posted)
		return
	}
	switch {
	case res.Posted == 0:
		fmt.Fprintln(w, "0 instruction(s) posted")
	case waiting:
		fmt.Fprintf(w, "%d instruction(s) posted; waiting for the targets to apply them\n", res.Posted)
	default:
		fmt.Fprintf(w, "%d instruction(s) posted; not waiting for the targets to apply them (--wait does)\n", res.Posted)
	}
}
