package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
)

// A target collects what is posted to it at once when it is connected: its
// held poll is woken by the post. An instruction still pending after
// silentAfter means the target is not connected, and the commands that
// wait say so.
const silentAfter = 3 * time.Second

// instructionKey names one instruction: sequence numbers are per target.
type instructionKey struct {
	target string
	seq    int64
}

func keyOf(in muster.Instruction) instructionKey { return instructionKey{in.Target, in.Seq} }

// delivery follows instructions posted to targets, through the download
// list, until each is settled: applied (downloaded), refused (failed, with
// the target's reason), or withdrawn (superseded or deleted before the
// target applied it).
type delivery struct {
	c       *httpapi.Client
	pending map[instructionKey]muster.Instruction
	settled map[instructionKey]muster.Instruction
	since   time.Time // when the instructions were posted (this clock)
	warned  map[string]bool
}

func newDelivery(c *httpapi.Client, posted []muster.Instruction) *delivery {
	d := &delivery{c: c, pending: map[instructionKey]muster.Instruction{}, settled: map[instructionKey]muster.Instruction{},
		since: time.Now(), warned: map[string]bool{}}
	for _, in := range posted {
		d.pending[keyOf(in)] = in
	}
	return d
}

// done reports whether every instruction is settled.
func (d *delivery) done() bool { return len(d.pending) == 0 }

// state returns what is known of an instruction: settled, or pending.
func (d *delivery) state(k instructionKey) (muster.Instruction, bool) {
	if in, ok := d.settled[k]; ok {
		return in, true
	}
	in, ok := d.pending[k]
	return in, ok
}

// check asks the master once for every instruction still pending: one
// listing per job (the newest entries, where they are), and one request
// per instruction that newer entries pushed out of it.
func (d *delivery) check(ctx context.Context) error {
	byJob := map[string][]muster.Instruction{}
	for _, in := range d.pending {
		byJob[in.Job] = append(byJob[in.Job], in)
	}
	for job, ins := range byJob {
		list, err := d.c.DownloadList(ctx, httpapi.DownloadListFilter{Job: job, Limit: min(100000, len(ins)+1000)})
		if err != nil {
			return err
		}
		found := map[instructionKey]muster.Instruction{}
		for _, in := range list {
			found[keyOf(in)] = in
		}
		for _, in := range ins {
			cur, ok := found[keyOf(in)]
			if !ok {
				one, err := d.c.DownloadList(ctx, httpapi.DownloadListFilter{Target: in.Target, Seq: in.Seq, Limit: 1})
				if err != nil {
					return err
				}
				if len(one) == 0 {
					// Gone from the download list: its target was
					// deleted, or the entry pruned after it settled.
					in.Status = muster.InstructionDeleted
					cur = in
				} else {
					cur = one[0]
				}
			}
			if cur.Status == muster.InstructionPending {
				d.pending[keyOf(in)] = cur
				continue
			}
			delete(d.pending, keyOf(in))
			d.settled[keyOf(in)] = cur
		}
	}
	return nil
}

// silence says, for each target with an instruction pending longer than
// silentAfter, how long it has not polled ("web1 has not polled for 40s");
// a target that has polled since is busy, not silent, and is left out.
func (d *delivery) silence(ctx context.Context) (map[string]string, error) {
	if time.Since(d.since) < silentAfter {
		return nil, nil
	}
	var names []string
	for _, in := range d.pending {
		if !slices.Contains(names, in.Target) {
			names = append(names, in.Target)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	targets, err := d.c.Targets(ctx, "")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	now := time.Now()
	for _, t := range targets {
		if !slices.Contains(names, t.Name) {
			continue
		}
		out[t.Name] = silenceText(t, now)
	}
	return out, nil
}

// silenceText says how long a target has not polled.
func silenceText(t muster.Target, now time.Time) string {
	var s string
	if t.LastPoll == nil {
		s = t.Name + " has never polled"
	} else {
		s = fmt.Sprintf("%s has not polled for %s", t.Name, muster.Duration(now.Sub(*t.LastPoll)).Rounded())
	}
	if t.Status == muster.StatusSuspectedOffline {
		s += " (suspected offline)"
	}
	return s
}

// warnSilent prints, once per target, that a target is not collecting
// what was posted to it.
func (d *delivery) warnSilent(warn func(string), silent map[string]string) {
	for target, text := range silent {
		if !d.warned[target] {
			d.warned[target] = true
			warn(fmt.Sprintf("waiting for %s: %s", target, text))
		}
	}
}

// settledText says what became of an instruction a target did not apply:
// "web1 refused INSERT report (seq 3): <the target's reason>".
func settledText(in muster.Instruction) string {
	what := fmt.Sprintf("%s %s (seq %d)", in.Operation, in.Job, in.Seq)
	switch in.Status {
	case muster.InstructionFailed:
		return fmt.Sprintf("%s refused %s: %s", in.Target, what, in.Error)
	case muster.InstructionSuperseded:
		return fmt.Sprintf("%s did not apply %s: a newer instruction for the job superseded it first", in.Target, what)
	case muster.InstructionDeleted:
		return fmt.Sprintf("%s did not apply %s: it was deleted from the download list first", in.Target, what)
	}
	return fmt.Sprintf("%s %s: %s", in.Target, what, in.Status)
}
