package faults

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agent"
	"github.com/musterhq/muster/internal/bench"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/testenv"
)

// T7. The master is killed with SIGKILL over and over while STARTs are
// dispatched to three targets. Every START is sent with an idempotency key
// and resent with the same key until the master answers, as `muster job
// start` does. Every run must then have happened exactly once, by the
// steps' own record, and be on the master once.
func TestMasterKilledDuringDispatches(t *testing.T) {
	p := plans()
	ctx, cancel := context.WithTimeout(context.Background(), p.dispatchBound)
	defer cancel()
	f := newFleet(t)
	for i := range 3 {
		f.addTarget(fmt.Sprintf("web%d", i+1), f.master.URL)
	}
	// One job per dispatch: a START for a job that is still running is
	// recorded as skipped by design, and this test is about delivery.
	jobs := make([]muster.Job, p.dispatches)
	for i := range jobs {
		jobs[i] = f.effectJob(fmt.Sprintf("d%04d", i+1), f.targets[i%3].Name, "")
	}
	f.apply(ctx, jobs...)

	var kills atomic.Int64
	stop := make(chan struct{})
	nemesis := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				nemesis <- nil
				return
			case <-time.After(uniform(p.killMin, p.killMax)):
			}
			if err := f.master.Kill(); err != nil {
				nemesis <- err
				return
			}
			kills.Add(1)
			if err := f.master.Restart(ctx); err != nil {
				nemesis <- err
				return
			}
		}
	}()

	ids := make([]muster.RunRef, len(jobs))
	var accepted []time.Duration // start request → the master accepted it
	for i, j := range jobs {
		key := fmt.Sprintf("fault-t7-%d", i)
		t0 := time.Now()
		var res muster.StartResult
		for {
			var err error
			res, err = f.master.Client.StartJob(ctx, j.Name, httpapi.StartBody{IdempotencyKey: key})
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("dispatch %d of %d: %v", i+1, len(jobs), err)
			}
			sleep(ctx, 100*time.Millisecond)
		}
		accepted = append(accepted, time.Since(t0))
		ids[i] = res.Refs()[0]
		sleep(ctx, p.dispatchPace)
	}
	close(stop)
	if err := <-nemesis; err != nil {
		t.Fatalf("nemesis: %v", err)
	}
	healed := time.Now()
	runs, at, err := bench.WaitRuns(ctx, f.master.Client, ids, time.Until(deadline(ctx)))
	if err != nil {
		t.Fatal(err)
	}

	lost, duplicated := checkOnce(t, ids, runs, executions(f.readEffects()))
	if kills.Load() == 0 {
		t.Error("the master was never killed; the test proves nothing")
	}
	s := bench.Summarize(accepted)
	report(t, map[string]any{
		"dispatches": len(ids), "targets": 3, "master_kills": kills.Load(), "lost": lost, "duplicated": duplicated,
		"start_accepted_p50_ms": s.P50, "start_accepted_p99_ms": s.P99, "start_accepted_max_ms": s.Max,
		"all_recorded_after_last_restart_ms": ms(at.Sub(healed)),
	})
}

// deadline is ctx's deadline.
func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// T8. A target is killed with SIGKILL in the middle of a run, again and
// again. Each time it must start again from its local state, record the
// interrupted run as abandoned, and leave none of its processes behind;
// the step must not run again.
func TestTargetKilledMidRun(t *testing.T) {
	p, ctx, f, tg := withTarget(t)
	f.apply(ctx, f.effectJob("long", tg.Name, "sleep 60 & sleep 60"), f.effectJob("quick", tg.Name, ""))

	var ids []string
	survivors, startupFailures, leftAfterRestart := 0, 0, 0
	var abandonedAfter []time.Duration // restart → run recorded abandoned
	for i := range p.targetKills {
		res, err := f.master.Client.StartJob(ctx, "long", httpapi.StartBody{})
		if err != nil {
			t.Fatal(err)
		}
		id := res.Runs[0].RunID
		ids = append(ids, id)
		// The step's shell and its two sleeps.
		f.eventually(ctx, "the step's processes", func() bool { return len(testenv.RunProcesses(id)) >= 3 })
		sleep(ctx, uniform(0, 300*time.Millisecond))
		if err := tg.Kill(); err != nil {
			t.Fatal(err)
		}
		survivors += len(testenv.RunProcesses(id))
		restarted := time.Now()
		if err := tg.Start(); err != nil {
			t.Fatal(err)
		}
		f.eventually(ctx, fmt.Sprintf("kill %d: run %s recorded abandoned", i+1, id), func() bool {
			if !tg.Running() {
				return true // reported below
			}
			runs, err := f.master.Client.Runs(ctx, []muster.RunRef{{RunID: id}}, 0)
			return err == nil && len(runs) == 1 && runs[0].Status == muster.RunAbandoned
		})
		if !tg.Running() {
			startupFailures++
			t.Errorf("kill %d: the target did not start again (exit code %d):\n%s", i+1, tg.ExitCode(), tail(tg.Log(), 20))
			break
		}
		abandonedAfter = append(abandonedAfter, time.Since(restarted))
		pids := testenv.RunProcesses(id)
		leftAfterRestart += len(pids)
		if len(pids) > 0 {
			t.Errorf("kill %d: processes of the abandoned run %s survive: %v", i+1, id, pids)
		}
	}
	if startupFailures == 0 {
		// The target carries on.
		res, err := f.master.Client.StartJob(ctx, "quick", httpapi.StartBody{})
		if err != nil {
			t.Fatal(err)
		}
		if runs, _, err := bench.WaitRuns(ctx, f.master.Client, res.Refs()[:1], time.Minute); err != nil || runs[0].Status != muster.RunSucceeded {
			t.Errorf("a run after the kills: %v %v", runs, err)
		}
		ran := executions(f.readEffects())
		for _, id := range ids {
			if ran[id] != 1 {
				t.Errorf("the interrupted run %s ran %d times, want once", id, ran[id])
			}
		}
	}
	s := bench.Summarize(abandonedAfter)
	tracking, _ := agent.ProcessTracking()
	report(t, map[string]any{
		"kills": len(ids), "startup_failures": startupFailures, "process_tracking": tracking,
		"step_processes_orphaned_by_the_kill": survivors, "left_after_restart": leftAfterRestart,
		"restart_to_abandoned_recorded_p50_ms": s.P50, "restart_to_abandoned_recorded_max_ms": s.Max,
	})
}

// T9. A target is cut off from its master by a fault proxy, once dropping
// every connection (and refusing new ones), once stalling them (a black
// hole), each for the plan's cut. Its schedule must keep running, and
// after the heal every run it made must reach the master, once.
func TestTargetCutOff(t *testing.T) {
	p := plans()
	ctx, cancel := context.WithTimeout(context.Background(), 2*p.cut+p.perTestWallBounds)
	defer cancel()
	f := newFleet(t)
	proxy, err := NewProxy(strings.TrimPrefix(f.master.URL, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	tg := f.addTarget("web1", "https://"+proxy.Addr())
	figures := cutOff(ctx, t, p, f, tg, []cut{
		{"drop", proxy.Drop, proxy.Heal},
		{"stall", proxy.Stall, proxy.Heal},
	})
	figures["proxy_connections"] = proxy.Accepted()
	report(t, figures)
}

// T9 again, with the cut made by the kernel instead of a proxy: the target
// runs in a network namespace of its own, joined to the master's by a
// veth pair. Once its end of the link goes down (its route to the master
// goes with it: new connections fail at once, open ones wait for the route
// to return); once the master's end (the target's link loses its carrier:
// packets vanish, nothing is refused, and the connections resume after the
// heal); once the target's address changes (the connections it had are
// dead on both sides, and nothing says so: it must notice by itself, which
// the target's dead-peer bound makes take about 20 s).
func TestTargetPartitioned(t *testing.T) {
	p := plans()
	ctx, cancel := context.WithTimeout(context.Background(), 3*p.cut+p.perTestWallBounds)
	defer cancel()
	n := newNetns(t)
	f := newFleetOn(t, n.hostIP+":0")
	tg := f.addTarget("web1", f.master.URL, "ip", "netns", "exec", n.name)
	renumber, renumbered := n.renumber()
	report(t, cutOff(ctx, t, p, f, tg, []cut{
		{"target_link_down", n.linkDown(n.nsIf), n.linkUp(n.nsIf)},
		{"carrier_lost", n.linkDown(n.hostIf), n.linkUp(n.hostIf)},
		{"renumbered", renumber, renumbered},
	}))
}

// cut is one way of cutting a target off from its master, and of healing it.
type cut struct {
	name      string
	cut, heal func()
}

// cutOff runs a job on the target every few seconds, cuts the target off
// the master in each way for the plan's cut, and heals it. The schedule
// must run through every cut, and in the end every run the steps recorded
// must be on the master once, and no other. It returns the figures.
func cutOff(ctx context.Context, t *testing.T, p plan, f *fleet, tg *bench.TargetProcess, cuts []cut) map[string]any {
	t.Helper()
	tick := f.effectJob("tick", tg.Name, "")
	tick.Schedules = []muster.Schedule{{Name: "tick", Cron: p.tickCron}}
	f.apply(ctx, tick)
	f.eventually(ctx, "a first scheduled run", func() bool { return len(f.readEffects()) > 0 })

	figures := map[string]any{"cut_s": p.cut.Seconds(), "schedule": p.tickCron}
	for _, c := range cuts {
		cutAt := time.Now()
		c.cut()
		sleep(ctx, p.cut)
		healAt := time.Now()
		c.heal()
		during := 0
		var ids []muster.RunRef
		for _, e := range f.readEffects() {
			if e.scheduledAt.After(cutAt) && e.scheduledAt.Before(healAt) {
				during++
			}
			ids = append(ids, muster.RunRef{Target: tg.Name, RunID: e.runID})
		}
		if during == 0 {
			t.Errorf("%s: no scheduled run while the target was cut off", c.name)
		}
		// Every run made so far reaches the master.
		f.eventually(ctx, c.name+": every run made during the cut on the master", func() bool {
			runs, err := f.master.Client.Runs(ctx, ids, 0)
			return err == nil && len(runs) == len(ids)
		})
		figures[c.name+"_runs_during_cut"] = during
		figures[c.name+"_heal_to_all_on_master_ms"] = ms(time.Since(healAt))
	}

	// Stop the schedule, let the spool drain, and compare the steps' own
	// record with the master's.
	tick.Enabled = false
	f.apply(ctx, tick)
	f.eventually(ctx, "the spool to drain", func() bool {
		tgt, err := f.master.Client.Target(ctx, tg.Name)
		return err == nil && tgt.SpoolDepth == 0 && tgt.LastPoll != nil && time.Since(*tgt.LastPoll) < 10*time.Second
	})
	effects := f.readEffects()
	ran := executions(effects)
	var byID map[string]muster.Run
	var count map[string]int
	f.eventually(ctx, "every run on the master", func() bool {
		byID, count = f.history(ctx, "tick")
		return len(byID) >= len(ran)
	})
	duplicated, missing := 0, 0
	for id, n := range ran {
		if n > 1 {
			duplicated++
		}
		if count[id] != 1 {
			missing++
			t.Errorf("run %s ran %d time(s) but is on the master %d times", id, n, count[id])
		}
	}
	for id, r := range byID {
		if ran[id] == 0 && r.Status != muster.RunSkipped {
			t.Errorf("run %s (%s) is on the master but never ran", id, r.Status)
		}
	}
	if duplicated > 0 {
		t.Errorf("%d runs ran more than once", duplicated)
	}
	figures["runs"] = len(ran)
	figures["duplicated"] = duplicated
	figures["missing_on_master"] = missing
	return figures
}

// T10. The target is killed with SIGKILL at the instant its schedule fires
// (between 50 ms before and 50 ms after), and started again at once, over
// and over. No fire may run twice, and none may be lost silently: each is
// run (late if need be), or recorded as skipped or abandoned.
func TestRestartAtFireTime(t *testing.T) {
	p, ctx, f, tg := withTarget(t)
	const every = 2 * time.Second
	job := f.effectJob("fire", tg.Name, "")
	job.Schedules = []muster.Schedule{{Name: "every-2s", Cron: "*/2 * * * * *"}}
	f.apply(ctx, job)
	f.eventually(ctx, "a first fire", func() bool { return len(f.readEffects()) > 0 })
	first := f.readEffects()[0].scheduledAt

	var offsets []time.Duration
	fire := time.Now().Truncate(every)
	for range p.fireRestarts {
		// The next fire at least 50 ms away, one restart per fire.
		fire = fire.Add(every)
		if soonest := time.Now().Add(every + 50*time.Millisecond).Truncate(every); soonest.After(fire) {
			fire = soonest
		}
		offset := uniform(-50*time.Millisecond, 50*time.Millisecond)
		sleep(ctx, time.Until(fire.Add(offset)))
		if err := tg.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := tg.Start(); err != nil {
			t.Fatal(err)
		}
		offsets = append(offsets, offset)
	}
	sleep(ctx, 2*every) // two fires in peace
	job.Enabled = false
	f.apply(ctx, job)
	last := time.Now().Truncate(every).Add(-every)

	// Every fire is on the master, finished, or covered by a skipped run
	// before it; a target that restarted late may still be uploading the
	// skipped run that stands for what it missed. What is not there within
	// the bound is reported below as lost.
	byID := map[string]muster.Run{}
	accounted := func() bool {
		byID, _ = f.history(ctx, "fire")
		covered := false
		for at := first; !at.After(last); at = at.Add(every) {
			r, ok := byID[muster.ScheduledRunID(tg.UID, "fire", "every-2s", at)]
			switch {
			case !ok && !covered:
				return false
			case ok && !r.Status.Finished():
				return false
			case ok:
				covered = r.Status == muster.RunSkipped
			}
		}
		return true
	}
	bound, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	for !accounted() && bound.Err() == nil {
		sleep(bound, 50*time.Millisecond)
	}
	effects := f.readEffects()
	ran := executions(effects)
	perFire := map[time.Time]int{}
	for _, e := range effects {
		perFire[e.scheduledAt]++
	}
	var fires, skipped, abandoned, lost, duplicated int
	var late []time.Duration // scheduled time → step started, of fires that ran
	coveredBySkip := false
	for at := first; !at.After(last); at = at.Add(every) {
		fires++
		id := muster.ScheduledRunID(tg.UID, "fire", "every-2s", at)
		r, ok := byID[id]
		switch {
		case !ok && coveredBySkip:
			// Counted in the skipped run that stands for several missed fires.
		case !ok:
			lost++
			t.Errorf("the fire at %s was lost: no run on the master and no skipped run before it", at.Format(time.RFC3339))
		case r.Status == muster.RunSkipped:
			skipped++
			coveredBySkip = true
		default:
			coveredBySkip = false
			if r.Status == muster.RunAbandoned {
				abandoned++
			} else if r.Status != muster.RunSucceeded {
				t.Errorf("the fire at %s: %s %q", at.Format(time.RFC3339), r.Status, r.Message)
			}
			if r.Status == muster.RunSucceeded && ran[id] != 1 {
				t.Errorf("the fire at %s succeeded but its step ran %d times", at.Format(time.RFC3339), ran[id])
			}
			if len(r.Steps) > 0 {
				late = append(late, r.Steps[0].StartedAt.Sub(at))
			}
		}
		if perFire[at] > 1 {
			duplicated++
			t.Errorf("the fire at %s ran %d times", at.Format(time.RFC3339), perFire[at])
		}
	}
	slices.Sort(offsets)
	lateness := bench.Summarize(late)
	report(t, map[string]any{
		"restarts": p.fireRestarts, "fires": fires, "ran": lateness.Count, "lateness_p50_ms": lateness.P50, "lateness_max_ms": lateness.Max,
		"recorded_skipped":   skipped,
		"recorded_abandoned": abandoned, "lost_silently": lost, "duplicated": duplicated,
		"kill_offset_min_ms": ms(offsets[0]), "kill_offset_max_ms": ms(offsets[len(offsets)-1]),
	})
}

// T15. A step writes 1 GiB. The target keeps the head and the tail of it
// within output_limit (1 MiB by default), and its memory and both data
// directories stay bounded.
func TestHugeOutput(t *testing.T) {
	p, ctx, f, tg := withTarget(t)
	flood := f.effectJob("flood", tg.Name, fmt.Sprintf("yes 0123456789abcdef | head -c %d\necho done", p.outputBytes))
	f.apply(ctx, flood)
	targetDisk, masterDisk := bench.DirSize(tg.Dir), bench.DirSize(f.master.Dir)
	before, err := bench.ReadProc(tg.Pid())
	if err != nil {
		t.Fatal(err)
	}

	t0 := time.Now()
	res, err := f.master.Client.StartJob(ctx, "flood", httpapi.StartBody{})
	if err != nil {
		t.Fatal(err)
	}
	runs, _, err := bench.WaitRuns(ctx, f.master.Client, res.Refs()[:1], time.Until(deadline(ctx)))
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	after, err := bench.ReadProc(tg.Pid())
	if err != nil {
		t.Fatal(err)
	}
	r := runs[0]
	if r.Status != muster.RunSucceeded || len(r.Steps) != 1 {
		t.Fatalf("run %s: %s %q", r.RunID, r.Status, r.Message)
	}
	out := r.Steps[0].Output
	const limit = 1 << 20
	if len(out) > limit+200 {
		t.Errorf("stored output is %d bytes, over the 1 MiB limit", len(out))
	}
	if !strings.Contains(out, "0123456789abcdef") || !strings.HasSuffix(out, "done\n") {
		t.Errorf("the head or the tail of the output is missing")
	}
	if !strings.Contains(out, "bytes of output dropped") {
		t.Errorf("no line says how much output was dropped")
	}
	peak := bench.MiB(after.PeakRSS)
	if peak > p.outputPeakRSSMiB {
		t.Errorf("the target's resident set peaked at %.0f MiB, over %.0f MiB", peak, p.outputPeakRSSMiB)
	}
	targetGrew, masterGrew := bench.MiB(bench.DirSize(tg.Dir)-targetDisk), bench.MiB(bench.DirSize(f.master.Dir)-masterDisk)
	if targetGrew > p.outputDiskMiB || masterGrew > p.outputDiskMiB {
		t.Errorf("the data directories grew by %.0f MiB (target) and %.0f MiB (master), over %.0f MiB", targetGrew, masterGrew, p.outputDiskMiB)
	}
	report(t, map[string]any{
		"output_mib": p.outputBytes >> 20, "stored_output_bytes": len(out), "took_ms": ms(took),
		"target_rss_before_mib": bench.MiB(before.RSS), "target_peak_rss_mib": peak,
		"target_dir_grew_mib": targetGrew, "master_dir_grew_mib": masterGrew, "race_detector": testenv.Race,
	})
}

// TestStepTimeoutKillsChildren is T15's second half: a step that leaves
// children behind, one of them in a session of its own, and outlives its
// timeout must be timed out with every process it started.
func TestStepTimeoutKillsChildren(t *testing.T) {
	_, ctx, f, tg := withTarget(t)
	f.apply(ctx, muster.Job{Name: "hang", Enabled: true, Targets: []string{tg.Name}, Steps: []muster.Step{{
		Name: "main", Shell: "setsid sleep 1000 & sleep 1000 & sleep 1000", Timeout: muster.Duration(2 * time.Second),
	}}})
	t0 := time.Now()
	res, err := f.master.Client.StartJob(ctx, "hang", httpapi.StartBody{})
	if err != nil {
		t.Fatal(err)
	}
	runs, _, err := bench.WaitRuns(ctx, f.master.Client, res.Refs()[:1], time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if runs[0].Status != muster.RunTimedOut {
		t.Errorf("run %s, want timed_out", runs[0].Status)
	}
	if pids := testenv.RunProcesses(runs[0].RunID); len(pids) > 0 {
		t.Errorf("processes of the timed-out step survive: %v", pids)
	}
	report(t, map[string]any{"timeout_s": 2, "start_to_recorded_ms": ms(time.Since(t0))})
}
