package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
)

// rolloutFlags are job start's --group, --batch and --max-failures.
type rolloutFlags struct {
	group       string
	batch       string
	maxFailures int
}

// run starts a job on a group's members, or in waves: each wave starts
// when the previous one has finished, and the rollout stops when more runs
// than --max-failures have failed.
func (f rolloutFlags) run(ctx context.Context, w io.Writer, c *httpapi.Client, job string, body httpapi.StartBody, timeout time.Duration) error {
	targets, err := f.targets(ctx, c, job, body.Targets)
	if err != nil {
		return err
	}
	size := len(targets)
	if f.batch != "" {
		if size, err = waveSize(f.batch, len(targets)); err != nil {
			return err
		}
	}
	key := httpapi.NewIdempotencyKey()
	deadline := time.Now().Add(timeout)
	waves := (len(targets) + size - 1) / size
	failed := 0
	for i := range waves {
		wave := targets[i*size : min((i+1)*size, len(targets))]
		rest := targets[min((i+1)*size, len(targets)):]
		b := body
		b.Targets, b.IdempotencyKey = wave, fmt.Sprintf("%s-wave-%d", key, i+1)
		res, err := c.StartJob(ctx, job, b)
		if err != nil {
			return err
		}
		label := fmt.Sprintf("wave %d/%d", i+1, waves)
		fmt.Fprintf(w, "%s: %s\n", label, strings.Join(wave, ", "))
		bar, finish := progressBar(w, label, len(wave))
		sw, err := awaitRuns(ctx, c, res, deadline, bar, func(s string) { fmt.Fprintln(w, s) })
		finish()
		if err != nil {
			return err
		}
		n, outstanding, _ := sw.report(w)
		failed += n
		if len(outstanding) > 0 {
			return &exitError{code: 2, err: fmt.Errorf("timed out after %s; still waiting for %s; not started: %s",
				timeout, strings.Join(outstanding, ", "), dash(strings.Join(rest, ", ")))}
		}
		if failed > f.maxFailures {
			return &exitError{code: 1, err: fmt.Errorf("stopped after %s: %d run(s) failed, more than --max-failures %d; not started: %s",
				label, failed, f.maxFailures, dash(strings.Join(rest, ", ")))}
		}
	}
	if failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d runs did not succeed", failed, len(targets))}
	}
	fmt.Fprintf(w, "rollout of %s done: %d target(s) in %d wave(s)\n", job, len(targets), waves)
	return nil
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
	if len(named) > 0 {
		targets = slices.DeleteFunc(targets, func(t string) bool { return !slices.Contains(named, t) })
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
		targets = slices.DeleteFunc(targets, func(t string) bool { return !slices.Contains(members, t) })
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("job %q runs on none of the targets chosen", job)
	}
	slices.Sort(targets)
	return targets, nil
}

// waveSize reads --batch: a number of targets, or a percentage of n,
// rounded up, and at least one.
func waveSize(batch string, n int) (int, error) {
	if pct, ok := strings.CutSuffix(batch, "%"); ok {
		p, err := strconv.ParseFloat(pct, 64)
		if err != nil || p <= 0 || p > 100 {
			return 0, fmt.Errorf("--batch: %q is not a percentage from 0 to 100", batch)
		}
		return max(1, int(math.Ceil(p/100*float64(n)))), nil
	}
	size, err := strconv.Atoi(batch)
	if err != nil || size < 1 {
		return 0, fmt.Errorf("--batch: %q is not a number of targets or a percentage such as 25%%", batch)
	}
	return size, nil
}

// progressBar shows a wave's progress on a terminal; elsewhere it shows
// nothing. It returns the function that moves it and the one that ends it.
func progressBar(w io.Writer, label string, total int) (func(done int), func()) {
	if f, ok := w.(*os.File); !ok || !isTerminal(f) {
		return nil, func() {}
	}
	p := mpb.New(mpb.WithOutput(w), mpb.WithWidth(40))
	bar := p.AddBar(int64(total),
		mpb.PrependDecorators(decor.Name(label+" "), decor.CountersNoUnit("%d/%d")),
		mpb.AppendDecorators(decor.Percentage()))
	return func(done int) { bar.SetCurrent(int64(done)) }, func() {
		bar.SetTotal(-1, true)
		p.Wait()
	}
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
