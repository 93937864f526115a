package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

// RaiseEvent records an event under a key unless one is.
func (s *Queries) RaiseEvent(ctx context.Context, key string, e muster.Event, raisedAt time.Time) (bool, error) {
	n, err := s.Q.Exec(ctx, `INSERT INTO events (name, severity, source, target_name, job_name, run_id, message, at, window_ms,
			raised_at, dedupe_key, dispatched)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, FALSE) ON CONFLICT (dedupe_key) DO NOTHING`,
		string(e.Name), int(e.Severity), e.Source, e.Target, e.Job, e.RunID, e.Message, ms(e.At),
		e.Window.Std().Milliseconds(), ms(raisedAt), key)
	return n > 0, err
}

// EventExists reports whether an event is recorded under a key.
func (s *Queries) EventExists(ctx context.Context, key string) (bool, error) {
	var ok bool
	err := s.Q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE dedupe_key = $1)`, key).Scan(&ok)
	return ok, err
}

// eventColumns are the columns scanEvent reads, of events aliased e.
const eventColumns = `e.id, e.name, e.severity, e.source, e.target_name, e.job_name, e.run_id, e.message, e.at, e.window_ms`

func scanEvent(r Row, more ...any) (muster.Event, error) {
	var e muster.Event
	var at, window int64
	var name string
	var severity int
	dest := append([]any{&e.ID, &name, &severity, &e.Source, &e.Target, &e.Job, &e.RunID, &e.Message, &at, &window}, more...)
	if err := r.Scan(dest...); err != nil {
		return e, err
	}
	e.Name, e.Severity = muster.EventName(name), muster.Severity(severity)
	e.At, e.Window = fromMS(at), muster.Duration(time.Duration(window)*time.Millisecond)
	return e, nil
}

// FindEvents returns events, newest first.
func (s *Queries) FindEvents(ctx context.Context, f catalog.EventFilter) ([]muster.Event, error) {
	a := &args{d: s.D}
	q := `SELECT ` + eventColumns + ` FROM events e WHERE e.severity >= ` + a.add(int(f.MinSeverity))
	for col, v := range map[string]string{"e.name": string(f.Event), "e.target_name": f.Target, "e.job_name": f.Job} {
		if v != "" {
			q += ` AND ` + col + ` = ` + a.add(v)
		}
	}
	if f.Scope.Limited() {
		q += ` AND ` + scopeJobOrTarget(a, "e.job_name", f.Scope, func(a *args) string { return scopeTargetNames(a, "e.target_name", f.Scope) })
	}
	if f.BeforeID > 0 {
		q += ` AND e.id < ` + a.add(f.BeforeID)
	}
	return collect(ctx, s.Q, func(r Rows) (muster.Event, error) { return scanEvent(r) },
		q+` ORDER BY e.id DESC LIMIT `+a.add(limitOr(f.Limit, 100)), a.vals...)
}

// UndispatchedEvents returns events not yet matched against the alerts,
// oldest first.
func (s *Queries) UndispatchedEvents(ctx context.Context, limit int) ([]muster.Event, error) {
	return collect(ctx, s.Q, func(r Rows) (muster.Event, error) { return scanEvent(r) },
		`SELECT `+eventColumns+` FROM events e WHERE NOT e.dispatched ORDER BY e.id LIMIT $1`, limit)
}

// MarkDispatched marks the events matched, and forgets each alert change
// that no event still waiting to be matched comes before. The events are
// named, not bounded by the last one's id: on PostgreSQL an id is taken
// at insert, so an event may commit after one numbered later, and be
// waiting still when the later one is matched.
func (s *Queries) MarkDispatched(ctx context.Context, ids []int64) error {
	a := &args{d: s.D}
	matched, err := inJSON(a, "id", ids)
	if err != nil {
		return err
	}
	if _, err := s.Q.Exec(ctx, `UPDATE events SET dispatched = TRUE WHERE `+matched, a.vals...); err != nil {
		return err
	}
	_, err = s.Q.Exec(ctx, `UPDATE alerts SET changed_after_event = 0 WHERE changed_after_event > 0
		AND NOT EXISTS (SELECT 1 FROM events e WHERE NOT e.dispatched AND e.id <= alerts.changed_after_event)`)
	return err
}

// PruneEvents deletes matched events raised before a time, with their
// notifications, once none of these is pending. The newest no_success of
// each job, target and window stays: it is how a scan knows that the
// stretch without success it reports was reported, however long the
// stretch lasts.
func (s *Queries) PruneEvents(ctx context.Context, raisedBefore time.Time) (int64, error) {
	const prunable = `raised_at < $1 AND dispatched AND id NOT IN (SELECT MAX(id) FROM events
		WHERE name = 'no_success' GROUP BY job_name, target_name, window_ms)`
	if _, err := s.Q.Exec(ctx, `DELETE FROM deliveries WHERE event_id IN (SELECT id FROM events WHERE `+prunable+`)
		AND NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.event_id = deliveries.event_id AND p.status = 'pending')`, ms(raisedBefore)); err != nil {
		return 0, err
	}
	return s.Q.Exec(ctx, `DELETE FROM events WHERE `+prunable+`
		AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id)`, ms(raisedBefore))
}

// NoSuccessWatches returns the enabled, scheduled jobs on active targets
// (one job or all, one target or all), with their last success there and
// when they were first sent there since they were created, and since the
// target last left them (a DELETE posted).
func (s *Queries) NoSuccessWatches(ctx context.Context, job, target string) ([]catalog.NoSuccessRow, error) {
	return collect(ctx, s.Q, func(r Rows) (w catalog.NoSuccessRow, err error) {
		var success, sent, watched sql.NullInt64
		var def string
		var via sql.NullString
		err = r.Scan(&w.Job, &w.TargetID, &w.Target, &success, &sent, &watched, &def, &via)
		w.SuccessAt, w.SentAt, w.WatchedSince, w.Definition, w.Via = fromNullMS(success), fromNullMS(sent), fromNullMS(watched), []byte(def), split(via)
		return w, err
	}, `SELECT j.name, t.id, t.name, jt.last_success_at,
			(SELECT MIN(i.posted_at) FROM instructions i WHERE i.target_id = t.id AND i.job_name = j.name
				AND i.operation = 'INSERT' AND i.posted_at >= j.created_at
				AND NOT EXISTS (SELECT 1 FROM instructions d WHERE d.target_id = t.id AND d.job_name = j.name
					AND d.operation = 'DELETE' AND d.seq > i.seq)),
			j.watched_since, j.definition,
			(SELECT string_agg(g.name, ',' ORDER BY g.name) FROM job_groups jg JOIN groups g ON g.id = jg.group_id
				JOIN group_members gm ON gm.group_id = g.id WHERE jg.job_id = jt.job_id AND gm.target_id = jt.target_id)
		FROM job_targets jt JOIN jobs j ON j.id = jt.job_id JOIN targets t ON t.id = jt.target_id
		WHERE t.state = 'active' AND j.enabled AND j.scheduled
			AND ($1 = '' OR j.name = $1) AND ($2 = '' OR t.name = $2)`, job, target)
}

func limitOr(limit, def int) int {
	if limit <= 0 {
		return def
	}
	return limit
}
