package catalog

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/musterhq/muster"
)

// Events are an outbox: each is written in the transaction that records its
// cause, under a key that makes raising it again a no-op, and the
// dispatcher later matches it against the alerts (see DispatchEvents).

// raise records e unless an event with the same key exists, and reports
// whether it is new.
func (tx *tx) raise(key string, e muster.Event) (bool, error) {
	if e.Severity == 0 {
		e.Severity = e.Name.Severity()
	}
	if e.At.IsZero() {
		e.At = tx.now
	}
	e.Message = muster.TruncateMessage(e.Message)
	ok, err := tx.RaiseEvent(tx.ctx, key, e, tx.now)
	if ok {
		tx.c.Events = true
	}
	return ok, err
}

// runEvents raises the events a stored run report implies, in the upload's
// transaction: run_failed when the run ended failed, timed out or
// abandoned, step_failed for each failed step attempt. Each is raised once
// per run (or attempt), however often the run is uploaded.
func (tx *tx) runEvents(target TargetIdentity, r muster.Run) error {
	for i, s := range r.Steps {
		var what string
		switch s.Status {
		case muster.AttemptFailed:
			what = "failed"
		case muster.AttemptTimedOut:
			what = "timed out"
		case muster.AttemptRetry:
			what = "failed and will be retried"
		default:
			continue
		}
		msg := fmt.Sprintf("step %q (attempt %d) of job %q %s on %s", s.Name, s.Attempt, r.Job, what, target.Name)
		if s.Message != "" {
			msg += ": " + s.Message
		}
		at := s.StartedAt.Add(time.Duration(s.DurationMS) * time.Millisecond)
		if _, err := tx.raise(fmt.Sprintf("step_failed/%d/%s/%d", target.ID, r.RunID, i), muster.Event{
			Name: muster.EventStepFailed, Source: muster.SourceMaster, Target: target.Name, Job: r.Job, RunID: r.RunID,
			Message: msg, At: at,
		}); err != nil {
			return err
		}
	}
	switch r.Status {
	case muster.RunFailed, muster.RunTimedOut, muster.RunAbandoned:
		msg := fmt.Sprintf("run of job %q on %s %s", r.Job, target.Name, r.Status)
		if r.Message != "" {
			msg += ": " + r.Message
		}
		_, err := tx.raise(fmt.Sprintf("run_failed/%d/%s", target.ID, r.RunID), muster.Event{
			Name: muster.EventRunFailed, Source: muster.SourceMaster, Target: target.Name, Job: r.Job, RunID: r.RunID,
			Message: msg, At: runEnd(r),
		})
		return err
	}
	return nil
}

// runEnd is when a finished run ended.
func runEnd(r muster.Run) time.Time {
	if r.FinishedAt != nil {
		return *r.FinishedAt
	}
	return r.StartedAt.Add(time.Duration(r.DurationMS) * time.Millisecond)
}

// MaxEventsPerForward bounds the events one forward carries.
const MaxEventsPerForward = 1000

// TargetEvent is an event a target forwards, with the id it gave it.
type TargetEvent struct {
	ID       int64
	Name     muster.EventName
	Severity muster.Severity
	Job      string
	RunID    string
	Message  string
	At       time.Time
}

// EventResult is the answer for one forwarded event.
type EventResult struct {
	ID    int64
	OK    bool
	Error string
}

// RecordTargetEvents records events a target forwarded. Each is kept once
// per (enlistment, target's id), so a repeated forward changes nothing. The
// answer is per event: one the master refuses is refused on its own.
func (c *Catalog) RecordTargetEvents(ctx context.Context, target TargetIdentity, events []TargetEvent) ([]EventResult, error) {
	results := make([]EventResult, len(events))
	err := c.update(ctx, func(tx *tx) error {
		for i, e := range events {
			results[i] = EventResult{ID: e.ID}
			if msg := checkTargetEvent(e); msg != "" {
				results[i].Error = msg
				continue
			}
			// A target names only jobs it was sent; the severity is the
			// event's own, not what the target says.
			if e.Job != "" {
				sent, err := tx.WasSent(ctx, target.ID, e.Job)
				if err != nil {
					return err
				}
				if !sent {
					results[i].Error = fmt.Sprintf("event %d: job %q was never sent to target %s", e.ID, e.Job, target.Name)
					continue
				}
			}
			if _, err := tx.raise(fmt.Sprintf("target/%s/%d", target.UID, e.ID), muster.Event{
				Name: e.Name, Severity: e.Name.Severity(), Source: muster.SourceTarget, Target: target.Name, Job: e.Job, RunID: e.RunID,
				Message: storable(e.Message), At: e.At,
			}); err != nil {
				return err
			}
			results[i].OK = true
		}
		return nil
	})
	return results, err
}

// checkTargetEvent returns why a forwarded event cannot be stored, or "".
func checkTargetEvent(e TargetEvent) string {
	switch {
	case e.ID < 1:
		return "id: must be 1 or more"
	case !e.Name.FromTarget():
		return fmt.Sprintf("event %d: %q is not an event a target raises", e.ID, e.Name)
	case !e.Severity.Valid():
		return fmt.Sprintf("event %d: severity: 1 to 4, not %d", e.ID, e.Severity)
	case len(e.Job) > muster.MaxNameLen:
		return fmt.Sprintf("event %d: job: at most %d characters", e.ID, muster.MaxNameLen)
	case strings.ContainsFunc(e.Job, unicode.IsControl):
		return fmt.Sprintf("event %d: job: %q has control characters", e.ID, e.Job)
	case len(e.RunID) > MaxRunIDLen:
		return fmt.Sprintf("event %d: run_id: at most %d characters", e.ID, MaxRunIDLen)
	case strings.ContainsFunc(e.RunID, unicode.IsControl):
		return fmt.Sprintf("event %d: run_id: %q has control characters", e.ID, e.RunID)
	case len(e.Message) > muster.MaxEventMessageLen:
		return fmt.Sprintf("event %d: message: at most %d bytes", e.ID, muster.MaxEventMessageLen)
	case e.At.IsZero():
		return fmt.Sprintf("event %d: at: required", e.ID)
	}
	return ""
}

// EventFilter selects events. Empty fields match any.
type EventFilter struct {
	Event       muster.EventName
	Target      string
	Job         string
	MinSeverity muster.Severity
	Limit       int // the newest this many; 100 when zero
	// Scope keeps only the events of its jobs, and those of no job on
	// targets in its groups.
	Scope muster.Scope
	// Cursor reads on after the page that named it as its next. Empty for
	// the newest.
	Cursor string
	// BeforeID bounds the events to those numbered below it; 0 for no
	// bound. The catalog sets it from Cursor for its store.
	BeforeID int64
}

// eventList names the events in their cursors.
const eventList = "events"

// FindEvents returns events, newest first.
func (c *Catalog) FindEvents(ctx context.Context, f EventFilter) ([]muster.Event, error) {
	events, _, err := c.FindEventsPage(ctx, f)
	return events, err
}

// FindEventsPage returns a page of events, newest first (by id, the order
// they were recorded in), and the cursor of the next page: empty when no
// event the filter selects is older than the page's last.
func (c *Catalog) FindEventsPage(ctx context.Context, f EventFilter) ([]muster.Event, string, error) {
	key, err := decodeCursor(eventList, f.Cursor, 1, 0)
	if err != nil {
		return nil, "", err
	}
	if key != nil {
		f.BeforeID = key[0]
	}
	f.Target = muster.NormalizeTargetName(f.Target)
	limit := cmp.Or(f.Limit, 100)
	f.Limit = limit + 1 // one more tells whether there is a next page
	events, err := c.store.FindEvents(ctx, f)
	if err != nil {
		return nil, "", err
	}
	events, next := pageOf(events, limit, eventList, func(e muster.Event) []int64 { return []int64{e.ID} })
	return events, next, nil
}

// DetectPresence raises target_offline for each active target that has
// stopped polling (by muster.DeriveStatus), and target_online for each that
// was offline and polls again: once per transition, remembered in the
// target's row. A poll counts from upSince at the earliest, so the master
// does not hold its own downtime against its targets (but a target already
// seen offline stays so until it polls). It returns how many
// events it raised.
func (c *Catalog) DetectPresence(ctx context.Context, upSince time.Time) (int, error) {
	rows, err := c.store.FindPresence(ctx)
	if err != nil {
		return 0, err
	}
	now := c.opts.Now()
	type change struct {
		row     PresenceRow
		offline bool
		last    time.Time
		every   int
	}
	var changes []change
	for _, r := range rows {
		ch := change{row: r, every: r.PollInterval}
		if r.LastPoll != nil {
			ch.last = *r.LastPoll
		}
		// A heartbeat this master has not written yet is the last poll,
		// unless the catalog has a later one: this master may have been
		// frozen with it, and the target polled another since.
		if hb, ok := c.beats.lookup(r.ID); ok && hb.At.After(ch.last) {
			ch.last, ch.every = hb.At, hb.PollInterval
		}
		state := muster.TargetState{LastPoll: ch.last, PollInterval: ch.every}
		if state.LastPoll.Before(upSince) && !r.SeenOffline {
			// A target seen offline before the master's start has not
			// polled since: it is still offline, not back.
			state.LastPoll = upSince
		}
		status, _ := muster.DeriveStatus(now, state)
		if ch.offline = status == muster.StatusSuspectedOffline; ch.offline != r.SeenOffline {
			changes = append(changes, ch)
		}
	}
	if len(changes) == 0 {
		return 0, nil
	}
	// The rows are written in id order, the order a post's counters and a
	// heartbeat flush take them in, so that this transaction and theirs
	// never each hold a row the other waits for.
	slices.SortFunc(changes, func(a, b change) int { return cmp.Compare(a.row.ID, b.row.ID) })
	raised := 0
	err = c.duty(ctx, func(tx *tx) error {
		raised = 0
		for _, ch := range changes {
			changed, err := tx.SetSeenOffline(ctx, ch.row.ID, ch.offline)
			if err != nil {
				return err
			}
			if !changed {
				continue // another scan got there first
			}
			name := ch.row.Name
			e := muster.Event{Name: muster.EventTargetOnline, Source: muster.SourceMaster, Target: name,
				Message: fmt.Sprintf("target %s polls again", name)}
			if ch.offline {
				e.Name = muster.EventTargetOffline
				e.Message = fmt.Sprintf("target %s has not polled for 3 × its poll interval (%ds); last poll %s", name, ch.every, pollText(ch.last))
			}
			if _, err := tx.raise(fmt.Sprintf("%s/%d/%d", e.Name, ch.row.ID, tx.now.UnixMilli()), e); err != nil {
				return err
			}
			raised++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return raised, nil
}

func pollText(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

// DetectNoSuccess raises no_success for each (job, target) a no_success
// alert watches that has had no successful run within the alert's window:
// once per stretch without success (the event's key holds the time the
// stretch began, so later scans find it raised). A stretch begins at the
// job's last success on the target or, before its first, when the job was
// first sent there; and no earlier than when the job last became enabled
// and scheduled, so that a job disabled for longer than the window is not
// reported as soon as it is enabled again. Only enabled jobs with a schedule are watched: a job
// that only runs when started by hand is not expected to succeed on its
// own. It returns how many events it raised.
func (c *Catalog) DetectNoSuccess(ctx context.Context) (int, error) {
	type watch struct {
		job, target string
		window      time.Duration
	}
	alerts, err := c.store.FindAlerts(ctx, "")
	if err != nil {
		return 0, err
	}
	watches := map[watch]bool{}
	for _, a := range alerts {
		if a.Event == muster.EventNoSuccess && a.Enabled {
			watches[watch{a.Job, a.Target, a.Window.Std()}] = true
		}
	}
	type due struct {
		key string
		e   muster.Event
	}
	now := c.opts.Now()
	var fresh []due
	defs := map[string]*muster.Job{} // decoded definitions with overrides, by job
	for w := range watches {
		rows, err := c.store.NoSuccessWatches(ctx, w.job, w.target)
		if err != nil {
			return 0, err
		}
		for _, r := range rows {
			if !scheduledOn(r, defs) {
				continue
			}
			since, what := r.SentAt, "since it was sent to the target"
			if r.SuccessAt != nil {
				since, what = r.SuccessAt, "since its last success"
			}
			if since != nil && r.WatchedSince != nil && r.WatchedSince.After(*since) {
				since, what = r.WatchedSince, "since it was last enabled with a schedule"
			}
			if since == nil || now.Sub(*since) <= w.window {
				continue
			}
			d := due{
				key: fmt.Sprintf("no_success/%d/%s/%d/%d", r.TargetID, r.Job, w.window.Milliseconds(), since.UnixMilli()),
				e: muster.Event{Name: muster.EventNoSuccess, Source: muster.SourceMaster, Target: r.Target, Job: r.Job,
					At: since.Add(w.window), Window: muster.Duration(w.window),
					Message: fmt.Sprintf("job %q has not succeeded on %s for %s, %s at %s", r.Job, r.Target, w.window,
						what, since.UTC().Format(time.RFC3339))},
			}
			// Most scans find only events already raised: check before
			// taking the write lock.
			exists, err := c.store.EventExists(ctx, d.key)
			if err != nil {
				return 0, err
			}
			if !exists {
				fresh = append(fresh, d)
			}
		}
	}
	if len(fresh) == 0 {
		return 0, nil
	}
	raised := 0
	err = c.duty(ctx, func(tx *tx) error {
		raised = 0
		for _, d := range fresh {
			ok, err := tx.raise(d.key, d.e)
			if err != nil {
				return err
			}
			if ok {
				raised++
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return raised, nil
}

// PruneEvents deletes the events raised before cutoff, with their
// notifications, once none of these is pending. It returns how many events
// it deleted.
func (c *Catalog) PruneEvents(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	err := c.update(ctx, func(tx *tx) error {
		var err error
		n, err = tx.PruneEvents(ctx, cutoff)
		return err
	})
	return n, err
}

// scheduledOn says whether a watched job is enabled and scheduled on the
// row's target: the row's job is enabled and scheduled on some target, and
// with overrides, maybe not this one. defs caches decoded definitions.
func scheduledOn(r NoSuccessRow, defs map[string]*muster.Job) bool {
	if !bytes.Contains(r.Definition, []byte(`"overrides"`)) {
		return true
	}
	j, ok := defs[r.Job]
	if !ok {
		var d muster.Job
		if json.Unmarshal(r.Definition, &d) == nil {
			j = &d
		}
		defs[r.Job] = j
	}
	if j == nil {
		return true
	}
	d := j.DefinitionFor(r.Target, r.Via)
	return d.Enabled && len(d.Schedules) > 0
}
