package agent

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/schedule"
)

// misfireGrace is how late a scheduled fire may still run. A target that
// restarts at the instant a schedule is due runs that fire late rather than
// losing it; fires missed for longer follow the job's misfire policy.
const misfireGrace = 5 * time.Second

// recordLead is how long before they are due the fires of one instant are
// recorded: their transaction (a few milliseconds for fifty fires) is done
// by the time they are due, and their steps spawn at once then, instead of
// after it. A fire is recorded early only if its job is not running (the
// job's run may end before the fire is due, and the fire then runs, where
// recorded early it would be skipped) and the target is not paused.
const recordLead = 25 * time.Millisecond

// wallClockCheck is the longest the scheduler sleeps while a fire is ahead.
// It sleeps on the monotonic clock, but fires are due by the wall clock: a
// wall clock stepped forward during a long sleep (NTP, a resumed VM) would
// make a fire late by up to the sleep. Reading the wall clock again every
// minute bounds that, for a wakeup a minute; a fire the step went past
// runs at that wakeup, late but not missed (see run).
const wallClockCheck = time.Minute

// startSyncWait bounds how long a starting target waits to hear from its
// master before its schedules fire: what changed while it was down (a job
// disabled, deleted or changed, the target paused) applies to its first
// fires, at-start ones included. A master that cannot be reached does not
// hold them longer: a refused connection at once, a silent master after
// this. Fires due meanwhile run late, not missed.
const startSyncWait = 10 * time.Second

// clockCorrection is how far back a wall clock must be stepped for the
// step to count as a correction (cron's rule, and its 3 hours): the marks
// of fires recorded before it are then as wrong as the clock was, and
// schedules go on from the corrected time. A smaller step back does not
// run again the fires that ran (see run).
const clockCorrection = 3 * time.Hour

// maxMissedScan bounds how many missed fires are counted after a long
// outage of a frequent schedule.
const maxMissedScan = 1_000_000

// entry is one schedule of one held job, with its next fire.
type entry struct {
	job    muster.Job
	sched  muster.Schedule
	plan   *schedule.Plan
	next   time.Time     // scheduled time of the next fire
	jitter time.Duration // fixed delay added to every fire of this target
	// late is set when a load found next already past due and judged that
	// it runs (catchUp): it is not judged missed again when it is fired.
	late bool
}

// due is when the entry's next fire should start.
func (e *entry) due() time.Time { return e.next.Add(e.jitter) }

// scheduler fires the schedules of the jobs this target holds, from its
// local copy and in its own time zone, whether or not the master is
// reachable.
type scheduler struct {
	m          *Main
	changed    chan struct{}
	started    time.Time // when the daemon started: the at-start fire time
	startFired bool
	// heard is closed once the poll loop has caught up with the master
	// after the daemon started, or failed to reach it (heardMaster).
	heard     chan struct{}
	heardOnce sync.Once
	// unrecorded holds, by job and schedule, fires the store refused to
	// record (its data directory full): they did not start, and are
	// recorded as skipped once the store takes writes again. failures
	// counts the attempts since, for the backoff.
	unrecorded map[[2]string]*unrecorded
	failures   int
	// refused counts the fires the store refused since the daemon started.
	refused atomic.Int64
}

// unrecorded is the fires of one schedule that could not be recorded.
type unrecorded struct {
	e           *entry
	first, last time.Time
	count       int
	cause       error
}

func newScheduler(m *Main) *scheduler {
	return &scheduler{m: m, changed: make(chan struct{}, 1), started: m.cfg.Now(), heard: make(chan struct{}),
		unrecorded: map[[2]string]*unrecorded{}}
}

// heardMaster tells the scheduler that the target has applied what its
// master had for it when it started, or could not reach the master: the
// schedules may fire.
func (s *scheduler) heardMaster() { s.heardOnce.Do(func() { close(s.heard) }) }

// jobsChanged tells the scheduler to reload the jobs.
func (s *scheduler) jobsChanged() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// run fires schedules until ctx is canceled. The first load, as the
// daemon starts, only counts the fires missed while it was down (the poll
// loop waits for it: see runUntil); nothing fires until the target has
// heard from its master (heardMaster) or startSyncWait has passed, so that
// a job disabled meanwhile does not run. Then at-start schedules fire,
// once in a daemon's life (run again after a failed defect, they do not
// fire twice). Schedules that cannot be read (the store failing) are read
// again, with backoff, until they are; the schedules read before fire
// meanwhile. It closes loaded (if not nil) once its first load has been
// tried, whether it succeeded or failed.
func (s *scheduler) run(ctx context.Context, loaded chan<- struct{}) {
	var entries []*entry
	stale, failures := true, 0 // whether entries lag the store, and how many loads failed since
	var retryIn time.Duration
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	looked, lookedMono := s.m.cfg.Now(), time.Now() // the clocks at the last look at the fires
	synced := s.startFired                          // whether schedules may fire
	var syncTimeout <-chan time.Time
	if !synced {
		t := time.NewTimer(max(startSyncWait-s.m.cfg.Now().Sub(s.started), 0))
		defer t.Stop()
		syncTimeout = t.C
	}
	for {
		if stale {
			atStart := synced && !s.startFired
			read, err := s.load(ctx, atStart)
			if err == nil {
				if atStart {
					s.dropLate(ctx, entries, read)
				}
				entries, stale, failures = read, false, 0
				s.startFired = s.startFired || atStart
			} else if ctx.Err() != nil {
				return
			} else {
				failures++
				retryIn = s.m.backoff(failures)
				logFailure(s.m.log, failures, "load schedules", err, retryIn)
			}
			if loaded != nil {
				close(loaded)
				loaded = nil
			}
		}
		if !synced {
			// The poll loop is catching up with the master: changes it
			// applies meanwhile are loaded once it has.
			select {
			case <-ctx.Done():
				return
			case <-s.heard:
			case <-syncTimeout:
				s.m.log.Warn("the target has not caught up with its master since it started; schedules fire from its copy as it stands",
					"waited", startSyncWait)
			}
			synced, stale = true, true
			continue
		}
		wait := time.Hour
		if len(entries) > 0 {
			now := s.m.cfg.Now()
			first := s.wakeAt(entries[0], now)
			for _, e := range entries[1:] {
				first = minTime(first, s.wakeAt(e, now))
			}
			wait = min(max(first.Sub(now), 0), wallClockCheck)
		}
		if len(s.unrecorded) > 0 {
			wait = min(wait, s.m.backoff(s.failures))
		}
		if stale {
			wait = min(wait, retryIn)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-s.changed:
			stale = true
			continue
		case <-timer.C:
		}
		s.recordUnrecorded(ctx)
		now, mono := s.m.cfg.Now(), time.Now()
		// How much more the wall clock moved than the monotonic clock
		// since the last look: a step, forward or back.
		step := now.Sub(looked) - mono.Sub(lookedMono)
		looked, lookedMono = now, mono
		if step < -clockCorrection {
			// The wall clock was corrected backward: the fires to wait for
			// are those after the corrected time (load).
			stale = true
			continue
		}
		// A wall clock stepped forward since the last look (by how much more
		// it moved than the monotonic clock) makes the fires it stepped
		// over late by the step, not missed: the target was running. The
		// first of them fires now; any more are missed at the next wake.
		grace := misfireGrace + max(step, 0)
		var due []firing
		for _, e := range entries {
			if e.next.IsZero() || s.recordAt(e).After(now) {
				continue
			}
			if now.Sub(e.due()) > grace && !e.late {
				// The process was stopped or starved: treat as missed.
				e.next = s.catchUp(ctx, e, e.next, now, grace)
			}
		}
		// Of the fires not yet due, only those of the first instant are
		// recorded now: they launch together when it comes, and those of
		// a later instant in their own turn.
		var launchAt time.Time
		for _, e := range entries {
			if !e.next.IsZero() && !s.recordAt(e).After(now) && e.due().After(now) && (launchAt.IsZero() || e.due().Before(launchAt)) {
				launchAt = e.due()
			}
		}
		for _, e := range entries {
			if e.next.IsZero() || s.recordAt(e).After(now) || e.due().After(now) && !e.due().Equal(launchAt) {
				continue
			}
			due = append(due, firing{e: e, at: e.next})
			e.next, e.late = s.nextAfter(e, e.next), false
		}
		s.fireAt(ctx, due, launchAt)
		entries = dropFinished(entries)
	}
}

// recordAt is when the entry's next fire is to be recorded: recordLead
// before it is due, or when it is due if its job is running or the target
// paused.
func (s *scheduler) recordAt(e *entry) time.Time {
	if s.m.paused.Load() || s.m.exec.isRunning(e.job.Name) {
		return e.due()
	}
	return e.due().Add(-recordLead)
}

// wakeAt is when to look again at the entry's next fire: recordLead
// before it is due, when its job may well have ended the run that runs
// now, and from then on when it is to be recorded.
func (s *scheduler) wakeAt(e *entry, now time.Time) time.Time {
	if t := e.due().Add(-recordLead); t.After(now) {
		return t
	}
	return s.recordAt(e)
}

func dropFinished(entries []*entry) []*entry {
	out := entries[:0]
	for _, e := range entries {
		if !e.next.IsZero() {
			out = append(out, e)
		}
	}
	return out
}

func (s *scheduler) nextAfter(e *entry, t time.Time) time.Time {
	next, ok := e.plan.Next(t)
	if !ok {
		return time.Time{}
	}
	return next
}

// load reads the held jobs and computes each enabled schedule's next fire
// from where it last fired. Fires missed while the target was not running
// (or the scheduler not loaded) are handled here: the latest runs late if it
// is within misfireGrace, the rest are recorded as one skipped run so that
// no fire is lost silently. At start, at_start schedules fire.
func (s *scheduler) load(ctx context.Context, atStart bool) ([]*entry, error) {
	if hook := s.m.testHooks.beforeLoad; hook != nil {
		if err := hook(); err != nil {
			return nil, err
		}
	}
	now := s.m.cfg.Now()
	if err := s.correctClock(ctx, now); err != nil && ctx.Err() == nil {
		// The marks stay ahead in the store (a full disk): they are
		// passed over below, and moved back at the next load.
		s.m.log.Error("the marks a wall clock set back left ahead cannot be moved back", muster.LogErr, err)
	}
	jobs, err := s.m.store.scheduledJobs(ctx)
	if err != nil {
		return nil, err
	}
	grace := misfireGrace
	if atStart {
		// Fires due while the target waited to hear from its master are
		// late by the wait, not missed.
		grace += max(now.Sub(s.started), 0)
	}
	var entries []*entry
	for _, hj := range jobs {
		if hj.err != nil {
			// One job's bad row costs that job its schedules, not the
			// others theirs.
			s.m.log.Error("job cannot be scheduled", muster.LogJob, hj.job.Name, muster.LogErr, hj.err)
			continue
		}
		if !hj.job.Enabled {
			continue
		}
		loc, err := s.m.jobLocation(hj.job)
		if err != nil {
			s.m.log.Error("job cannot be scheduled", muster.LogJob, hj.job.Name, muster.LogErr, err)
			continue
		}
		for _, sc := range hj.job.Schedules {
			plan, err := schedule.Compile(sc, loc)
			if err != nil {
				s.m.log.Error("schedule cannot be compiled", muster.LogJob, hj.job.Name, "schedule", sc.Name, muster.LogErr, err)
				continue
			}
			if plan.AtStart() {
				if atStart {
					s.fire(ctx, &entry{job: hj.job, sched: sc, plan: plan}, s.started, "")
				}
				continue
			}
			e := &entry{job: hj.job, sched: sc, plan: plan,
				jitter: schedule.TargetJitter(s.m.enl.Name, hj.job.Name, sc.Name, sc.Jitter.Std())}
			// Fires before the job (or this version of it) arrived, or
			// before the last recorded fire, are not misfires.
			base := hj.updatedAt
			if last := hj.lastFire[sc.Name]; last.After(base) {
				base = last
			}
			if base.After(now.Add(clockCorrection)) {
				base = now // set by a wall clock since set back (correctClock)
			}
			e.next = s.catchUp(ctx, e, s.nextAfter(e, base), now, grace)
			e.late = !e.next.IsZero() && e.due().Before(now)
			if !e.next.IsZero() {
				entries = append(entries, e)
			}
		}
	}
	return entries, nil
}

// dropLate records as skipped the missed fires that the daemon's first
// load found late and meant to run (catchUp), before, and that the load
// after it had heard from the master, after, no longer runs: their job was
// disabled, deleted or changed on the master while the target was down.
// Each was a missed fire; it is not lost silently.
func (s *scheduler) dropLate(ctx context.Context, before, after []*entry) {
	kept := make(map[[2]string]time.Time, len(after))
	for _, e := range after {
		kept[[2]string{e.job.Name, e.sched.Name}] = e.next
	}
	var fs []firing
	for _, e := range before {
		if !e.late {
			continue
		}
		if next, ok := kept[[2]string{e.job.Name, e.sched.Name}]; ok && !next.After(e.next) {
			continue // still to run
		}
		fs = append(fs, firing{e: e, at: e.next, skip: fmt.Sprintf(
			"the scheduled fire of %s, missed while the target was not running, is not run: its job changed on the master meanwhile (disabled, deleted or given a new version)",
			e.next.In(s.m.loc).Format(time.RFC3339))})
	}
	s.fireAll(ctx, fs)
}

// correctClock moves back to now the marks (when each schedule last fired,
// when each job was received) that a wall clock since corrected backward
// set ahead of it, if any is more than clockCorrection ahead: fires are
// then counted from now, neither missed nor held until the clock is back
// where it was.
func (s *scheduler) correctClock(ctx context.Context, now time.Time) error {
	var ahead int
	ns, ms := now.UnixNano(), now.UnixMilli()
	err := s.m.store.read.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM schedule_state WHERE last_fire > ?)
		+ (SELECT COUNT(*) FROM jobs WHERE updated_at > ?)`, now.Add(clockCorrection).UnixNano(), now.Add(clockCorrection).UnixMilli()).Scan(&ahead)
	if err != nil || ahead == 0 {
		return err
	}
	s.m.log.Warn("the wall clock was set back; schedules fire from the corrected time", "marks_ahead", ahead)
	return s.m.store.update(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE schedule_state SET last_fire = ? WHERE last_fire > ?`, ns, ns); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE jobs SET updated_at = ? WHERE updated_at > ?`, ms, ms)
		return err
	})
}

// catchUp handles fires that are already past due, starting at next: the
// latest runs late if it is within grace (or whatever its age, with the
// job's misfire policy run_once), the others are recorded as one skipped
// run. It returns the fire to wait for (possibly past due, to run at
// once).
func (s *scheduler) catchUp(ctx context.Context, e *entry, next, now time.Time, grace time.Duration) time.Time {
	var first, prev, latest time.Time
	count := 0
	for !next.IsZero() && next.Add(e.jitter).Before(now) && count < maxMissedScan {
		if count == 0 {
			first = next
		}
		prev, latest = latest, next
		count++
		next = s.nextAfter(e, next)
	}
	switch {
	case count == 0:
		return next
	case count == maxMissedScan:
		s.recordMissed(ctx, e, first, latest, count)
		return s.nextAfter(e, now)
	case now.Sub(latest.Add(e.jitter)) <= grace || e.job.Misfire == muster.MisfireRunOnce:
		if count > 1 {
			s.recordMissed(ctx, e, first, prev, count-1)
		}
		return latest
	}
	s.recordMissed(ctx, e, first, latest, count)
	return next
}

// recordMissed writes one skipped run standing for count missed fires, and
// moves the schedule's last fire past them.
func (s *scheduler) recordMissed(ctx context.Context, e *entry, first, last time.Time, count int) {
	policy := e.job.Misfire
	if policy == "" {
		policy = muster.MisfireSkip
	}
	msg := fmt.Sprintf("%d scheduled fire(s) missed while the target was not running, from %s to %s; misfire policy: %s",
		count, first.In(s.m.loc).Format(time.RFC3339), last.In(s.m.loc).Format(time.RFC3339), policy)
	// The first missed fire's id stands for them all; the last moves the
	// schedule's mark so they are not counted again.
	s.fireAll(ctx, []firing{{e: e, at: first, last: last, count: count, skip: msg}})
}

// firing is one scheduled time of one schedule to record: a run, or, with
// skip set, a skipped run saying so, which may stand for count fires, up
// to last.
type firing struct {
	e     *entry
	at    time.Time
	last  time.Time
	count int
	skip  string
}

// through is the last scheduled time the firing stands for.
func (f firing) through() time.Time {
	if f.last.IsZero() {
		return f.at
	}
	return f.last
}

// fires is how many scheduled fires the firing stands for.
func (f firing) fires() int { return max(f.count, 1) }

// fire records (and launches) the run of one scheduled time. With
// skipMessage set, the run is recorded as skipped with that message
// instead of run.
func (s *scheduler) fire(ctx context.Context, e *entry, at time.Time, skipMessage string) {
	s.fireAll(ctx, []firing{{e: e, at: at, skip: skipMessage}})
}

// fireAll records the runs of fires due together in one transaction, so
// that fifty jobs due the same second cost one commit, not fifty, and then
// launches them. The run id comes from (job, schedule, scheduled time), and
// each schedule's last fire is moved in the same transaction, so a fire is
// recorded once whatever restarts or replays happen.
func (s *scheduler) fireAll(ctx context.Context, fs []firing) { s.fireAt(ctx, fs, time.Time{}) }

// errStoppedBeforeDue ends a run recorded ahead of its fire when the
// daemon stops before the fire is due: its step never starts.
var errStoppedBeforeDue = errors.New("the target daemon stopped before the fire was due")

// fireAt is fireAll for fires recorded ahead of their instant, launchAt
// (zero: due now): their runs are launched when it comes. If the daemon
// stops before, they end canceled, their steps never started.
func (s *scheduler) fireAt(ctx context.Context, fs []firing, launchAt time.Time) {
	if len(fs) == 0 {
		return
	}
	m := s.m
	var started []*activeRun
	err := m.store.update(ctx, func(tx *sql.Tx) error {
		for _, f := range fs {
			ar, err := s.record(ctx, tx, f)
			if ar != nil {
				started = append(started, ar)
			}
			if err != nil {
				return err
			}
		}
		// Their steps are not armed (armed.go): fifty forks beside the
		// commit made the fires later, not sooner (lateness p50 20 → 28 ms).
		return m.exec.trim(ctx, tx)
	})
	if err != nil {
		for _, ar := range started {
			m.exec.forget(ar)
		}
		if len(s.unrecorded) == 0 {
			m.log.Error("scheduled runs could not be recorded and do not start; they are recorded as skipped once the store takes writes again",
				muster.LogJob, fs[0].e.job.Name, "schedule", fs[0].e.sched.Name, "fires", len(fs), muster.LogErr, err)
		}
		s.failed(fs, err)
		return
	}
	if len(started) > 0 {
		// Switched on again once they have spawned (burst.go).
		m.exec.gc.hold()
	}
	if d := launchAt.Sub(m.cfg.Now()); d > 0 && len(started) > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			for _, ar := range started {
				ar.cancel(errStoppedBeforeDue)
			}
		}
	}
	// The uploader is woken now, but waits until the runs have spawned
	// (burst.go).
	m.exec.startBurst(started)
	for _, ar := range started {
		m.exec.launch(ar)
	}
	m.wakeUploader()
}

// record writes one fire's run in tx and returns it if it is to be launched.
func (s *scheduler) record(ctx context.Context, tx *sql.Tx, f firing) (*activeRun, error) {
	m := s.m
	if m.paused.Load() && f.skip == "" {
		// A paused target fires nothing; the schedule moves on, so these
		// fires are not counted as missed when it resumes.
		return nil, setLastFire(ctx, tx, f.e.job.Name, f.e.sched.Name, f.at)
	}
	run := muster.Run{
		Job:     f.e.job.Name,
		Target:  m.enl.Name,
		RunID:   muster.ScheduledRunID(m.enl.UID, f.e.job.Name, f.e.sched.Name, f.at),
		Trigger: muster.TriggerSchedule + ":" + f.e.sched.Name,
		// A fire recorded ahead of its instant starts then.
		StartedAt: maxTime(m.now(), f.at.Add(f.e.jitter).In(m.loc)),
		Steps:     []muster.StepAttempt{},
	}
	if f.e.plan.AtStart() {
		run.Trigger = muster.TriggerStartup + ":" + f.e.sched.Name
	}
	if done, err := runExists(ctx, tx, run.RunID); err != nil || done {
		return nil, err
	}
	if err := setLastFire(ctx, tx, f.e.job.Name, f.e.sched.Name, f.through()); err != nil {
		return nil, err
	}
	if f.skip != "" {
		run.Message = f.skip
		return nil, m.exec.recordSkipped(ctx, tx, run)
	}
	started, err := m.exec.begin(ctx, tx, f.e.job, run)
	if started != nil {
		// In the schedule's zone (the job's, or its CRON_TZ), which
		// MUSTER_SCHEDULED_AT is written in.
		started.scheduledAt = f.at.In(f.e.plan.Location())
	}
	return started, err
}

// failed keeps fires the store refused to record, by schedule, to be
// recorded as skipped when it takes writes again.
func (s *scheduler) failed(fs []firing, cause error) {
	for _, f := range fs {
		key := [2]string{f.e.job.Name, f.e.sched.Name}
		u, ok := s.unrecorded[key]
		if !ok {
			u = &unrecorded{e: f.e, first: f.at, cause: cause}
			s.unrecorded[key] = u
		}
		u.first = minTime(u.first, f.at)
		u.last = maxTime(u.last, f.through())
		u.count += f.fires()
		s.refused.Add(int64(f.fires()))
	}
}

// recordUnrecorded records the fires the store refused as one skipped run
// per schedule, in one transaction, once the store takes writes again.
func (s *scheduler) recordUnrecorded(ctx context.Context) {
	if len(s.unrecorded) == 0 {
		return
	}
	var fs []firing
	for _, u := range s.unrecorded {
		msg := fmt.Sprintf("%d scheduled fire(s) from %s to %s could not start: the target could not record them (%v)",
			u.count, u.first.In(s.m.loc).Format(time.RFC3339), u.last.In(s.m.loc).Format(time.RFC3339), u.cause)
		fs = append(fs, firing{e: u.e, at: u.first, last: u.last, count: u.count, skip: msg})
	}
	err := s.m.store.update(ctx, func(tx *sql.Tx) error {
		for _, f := range fs {
			if _, err := s.record(ctx, tx, f); err != nil {
				return err
			}
		}
		return s.m.exec.trim(ctx, tx)
	})
	if err != nil {
		s.failures++
		return
	}
	fires := 0
	for _, f := range fs {
		fires += f.count
	}
	s.m.log.Info("scheduled fires that could not start are recorded as skipped", "fires", fires, "after_failures", s.failures)
	clear(s.unrecorded)
	s.failures = 0
	s.m.wakeUploader()
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func setLastFire(ctx context.Context, tx *sql.Tx, job, sched string, at time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO schedule_state (job, schedule, last_fire) VALUES (?, ?, ?)
		ON CONFLICT (job, schedule) DO UPDATE SET last_fire = MAX(last_fire, excluded.last_fire)`, job, sched, at.UnixNano())
	return err
}

// heldJob is a job with what the scheduler needs to know about it.
type heldJob struct {
	job       muster.Job
	updatedAt time.Time
	lastFire  map[string]time.Time // by schedule name
	err       error                // why its stored definition cannot be read; job holds its name alone then
}

// scheduledJobs returns the held jobs that have schedules. A job whose
// stored definition cannot be decoded is returned with its name and err.
func (s *store) scheduledJobs(ctx context.Context) ([]heldJob, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT j.name, j.version, j.definition, j.updated_at, st.schedule, st.last_fire
		FROM jobs j LEFT JOIN schedule_state st ON st.job = j.name ORDER BY j.name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []heldJob
	for rows.Next() {
		var name, def string
		var version, updated int64
		var sched sql.NullString
		var last sql.NullInt64
		if err := rows.Scan(&name, &version, &def, &updated, &sched, &last); err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].job.Name != name {
			var j muster.Job
			var bad error
			if err := json.Unmarshal([]byte(def), &j); err != nil {
				j, bad = muster.Job{Name: name}, fmt.Errorf("stored definition: %w", err)
			}
			j.Version = version
			out = append(out, heldJob{job: j, updatedAt: time.UnixMilli(updated), lastFire: map[string]time.Time{}, err: bad})
		}
		if sched.Valid {
			out[len(out)-1].lastFire[sched.String] = time.Unix(0, last.Int64)
		}
	}
	return out, rows.Err()
}
