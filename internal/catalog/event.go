package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
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
	res, err := tx.Exec(`INSERT INTO events (name, severity, source, target_name, job_name, run_id, message, at, window_ms,
			raised_at, dedupe_key)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING`,
		string(e.Name), int(e.Severity), e.Source, e.Target, e.Job, e.RunID, muster.TruncateMessage(e.Message), ms(e.At),
		e.Window.Std().Milliseconds(), ms(tx.now), key)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
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

// RecordTargetEvents records events a target forwarded. Each is kept once
// per (enlistment, target's id), so a repeated forward changes nothing. The
// answer is per event: one the master refuses is refused on its own.
func (db *DB) RecordTargetEvents(ctx context.Context, target TargetIdentity, events []agentproto.Event) ([]agentproto.EventResult, error) {
	results := make([]agentproto.EventResult, len(events))
	err := db.update(ctx, func(tx *tx) error {
		for i, e := range events {
			results[i].ID = e.ID
			if msg := checkTargetEvent(e); msg != "" {
				results[i].Error = msg
				continue
			}
			// A target names only jobs it was sent; the severity is the
			// event's own, not what the target says.
			if e.Job != "" {
				sent, err := tx.wasSent(target.ID, e.Job)
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
				Message: e.Message, At: e.At,
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
func checkTargetEvent(e agentproto.Event) string {
	switch {
	case e.ID < 1:
		return "id: must be 1 or more"
	case !e.Name.FromTarget():
		return fmt.Sprintf("event %d: %q is not an event a target raises", e.ID, e.Name)
	case !e.Severity.Valid():
		return fmt.Sprintf("event %d: severity: 1 to 4, not %d", e.ID, e.Severity)
	case len(e.Job) > muster.MaxNameLen:
		return fmt.Sprintf("event %d: job: at most %d characters", e.ID, muster.MaxNameLen)
	case len(e.RunID) > MaxRunIDLen:
		return fmt.Sprintf("event %d: run_id: at most %d characters", e.ID, MaxRunIDLen)
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
	Limit       int
}

// FindEvents returns events, newest first.
func (db *DB) FindEvents(ctx context.Context, f EventFilter) ([]muster.Event, error) {
	q := selectQuery{sql: `SELECT ` + eventColumns + ` FROM events e WHERE e.severity >= ?`, args: []any{int(f.MinSeverity)}}
	q.eq("e.name", string(f.Event))
	q.eq("e.target_name", f.Target)
	q.eq("e.job_name", f.Job)
	q.newest("e.id", f.Limit)
	return queryAll(ctx, db, q, func(row scanner) (muster.Event, error) { return scanEvent(row) })
}

// eventColumns are the columns scanEvent reads, of events aliased e.
const eventColumns = `e.id, e.name, e.severity, e.source, e.target_name, e.job_name, e.run_id, e.message, e.at, e.window_ms`

func scanEvent(row scanner, more ...any) (muster.Event, error) {
	var e muster.Event
	var at, window int64
	dest := append([]any{&e.ID, &e.Name, &e.Severity, &e.Source, &e.Target, &e.Job, &e.RunID, &e.Message, &at, &window}, more...)
	if err := row.Scan(dest...); err != nil {
		return e, err
	}
	e.At, e.Window = fromMS(at), muster.Duration(time.Duration(window)*time.Millisecond)
	return e, nil
}

// DetectPresence raises target_offline for each active target that has
// stopped polling (by muster.DeriveStatus), and target_online for each that
// was offline and polls again: once per transition, remembered in the
// target's row. A poll counts from upSince at the earliest, so the master
// does not hold its own downtime against its targets. It returns how many
// events it raised.
func (db *DB) DetectPresence(ctx context.Context, upSince time.Time) (int, error) {
	type change struct {
		id      int64
		name    string
		offline bool
		last    time.Time
		every   int
	}
	rows, err := db.read.QueryContext(ctx, `SELECT id, name, last_poll_at, poll_interval, seen_offline FROM targets WHERE state = 'active'`)
	if err != nil {
		return 0, err
	}
	now := db.opts.Now()
	var changes []change
	for rows.Next() {
		var c change
		var last sql.NullInt64
		var seen bool
		if err := rows.Scan(&c.id, &c.name, &last, &c.every, &seen); err != nil {
			rows.Close()
			return 0, err
		}
		if last.Valid {
			c.last = fromMS(last.Int64)
		}
		if hb, ok := db.beats.lookup(c.id); ok {
			c.last, c.every = hb.At, hb.PollInterval
		}
		state := muster.TargetState{LastPoll: c.last, PollInterval: c.every}
		if state.LastPoll.Before(upSince) {
			state.LastPoll = upSince
		}
		status, _ := muster.DeriveStatus(now, state)
		if c.offline = status == muster.StatusSuspectedOffline; c.offline != seen {
			changes = append(changes, c)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(changes) == 0 {
		return 0, err
	}
	raised := 0
	err = db.update(ctx, func(tx *tx) error {
		raised = 0
		for _, c := range changes {
			res, err := tx.Exec(`UPDATE targets SET seen_offline = ? WHERE id = ? AND seen_offline <> ? AND state = 'active'`, c.offline, c.id, c.offline)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue // another scan got there first
			}
			e := muster.Event{Name: muster.EventTargetOnline, Source: muster.SourceMaster, Target: c.name,
				Message: fmt.Sprintf("target %s polls again", c.name)}
			if c.offline {
				e.Name = muster.EventTargetOffline
				e.Message = fmt.Sprintf("target %s has not polled for 3 × its poll interval (%ds); last poll %s", c.name, c.every, pollText(c.last))
			}
			if _, err := tx.raise(fmt.Sprintf("%s/%d/%d", e.Name, c.id, ms(tx.now)), e); err != nil {
				return err
			}
			raised++
		}
		return nil
	})
	return raised, err
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
// first sent there. Only enabled jobs with a schedule are watched: a job
// that only runs when started by hand is not expected to succeed on its
// own. It returns how many events it raised.
func (db *DB) DetectNoSuccess(ctx context.Context) (int, error) {
	type watch struct {
		job, target string
		window      time.Duration
	}
	var watches []watch
	rows, err := db.read.QueryContext(ctx, `SELECT DISTINCT job_name, target_name, window_ms FROM alerts WHERE event = ? AND enabled`, string(muster.EventNoSuccess))
	if err != nil {
		return 0, err
	}
	for rows.Next() {
		var w watch
		var window int64
		if err := rows.Scan(&w.job, &w.target, &window); err != nil {
			rows.Close()
			return 0, err
		}
		w.window = time.Duration(window) * time.Millisecond
		watches = append(watches, w)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(watches) == 0 {
		return 0, err
	}
	type due struct {
		key string
		e   muster.Event
	}
	now := db.opts.Now()
	var dues []due
	for _, w := range watches {
		rows, err := db.read.QueryContext(ctx, `SELECT j.name, t.id, t.name, jt.last_success_at,
				(SELECT MIN(i.posted_at) FROM instructions i WHERE i.target_id = t.id AND i.job_name = j.name
					AND i.operation = 'INSERT' AND i.posted_at >= j.created_at)
			FROM job_targets jt JOIN jobs j ON j.id = jt.job_id JOIN targets t ON t.id = jt.target_id
			WHERE t.state = 'active' AND json_extract(j.definition, '$.enabled')
				AND COALESCE(json_array_length(j.definition, '$.schedules'), 0) > 0
				AND (? = '' OR j.name = ?) AND (? = '' OR t.name = ?)`, w.job, w.job, w.target, w.target)
		if err != nil {
			return 0, err
		}
		for rows.Next() {
			var job, target string
			var tid int64
			var success, sent sql.NullInt64
			if err := rows.Scan(&job, &tid, &target, &success, &sent); err != nil {
				rows.Close()
				return 0, err
			}
			since, what := sent, "since it was sent to the target"
			if success.Valid {
				since, what = success, "since its last success"
			}
			if !since.Valid || now.Sub(fromMS(since.Int64)) <= w.window {
				continue
			}
			dues = append(dues, due{
				key: fmt.Sprintf("no_success/%d/%s/%d/%d", tid, job, w.window.Milliseconds(), since.Int64),
				e: muster.Event{Name: muster.EventNoSuccess, Source: muster.SourceMaster, Target: target, Job: job,
					At: fromMS(since.Int64).Add(w.window), Window: muster.Duration(w.window),
					Message: fmt.Sprintf("job %q has not succeeded on %s for %s, %s at %s", job, target, w.window,
						what, fromMS(since.Int64).Format(time.RFC3339))},
			})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, err
		}
	}
	// Most scans find only events already raised: check before taking the
	// write lock.
	var fresh []due
	for _, d := range dues {
		var n int
		if err := db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE dedupe_key = ?`, d.key).Scan(&n); err != nil {
			return 0, err
		}
		if n == 0 {
			fresh = append(fresh, d)
		}
	}
	if len(fresh) == 0 {
		return 0, nil
	}
	raised := 0
	err = db.update(ctx, func(tx *tx) error {
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
	return raised, err
}

// PruneEvents deletes the events raised before cutoff, with their
// notifications, once none of these is pending. It returns how many events
// it deleted.
func (db *DB) PruneEvents(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	err := db.update(ctx, func(tx *tx) error {
		if _, err := tx.Exec(`DELETE FROM deliveries WHERE event_id IN (SELECT id FROM events WHERE raised_at < ? AND dispatched = 1)
			AND NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.event_id = deliveries.event_id AND p.status = 'pending')`, ms(cutoff)); err != nil {
			return err
		}
		res, err := tx.Exec(`DELETE FROM events WHERE raised_at < ? AND dispatched = 1
			AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id)`, ms(cutoff))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
