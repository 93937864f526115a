package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/musterhq/muster"
)

// dispatchBatch is how many events one DispatchEvents matches.
const dispatchBatch = 500

// alertRoute is an alert with one of the operators it notifies.
type alertRoute struct {
	alert   muster.Alert
	opID    int64
	opName  string
	webhook string
	email   string
	// changedAfter is the last event waiting to be matched when the
	// alert was last enabled or disabled; 0 once all those are matched.
	changedAfter int64
}

// enabledFor reports whether the alert was enabled when e was raised: as
// it is now for an event raised since it was last enabled or disabled, as
// it was before for one raised earlier but matched only now. (An alert
// turned off and on again before the events raised in between are matched
// counts them as raised while it was off.)
func (r alertRoute) enabledFor(e muster.Event) bool {
	if e.ID > r.changedAfter {
		return r.alert.Enabled
	}
	return !r.alert.Enabled
}

// DispatchEvents matches events not yet dispatched, oldest first, against
// the alerts, and records a pending delivery for each (alert, operator,
// channel) they call for, in one transaction with marking the events
// dispatched. An operator with no address gets a failed delivery on the
// "none" channel, so the history shows the alert fired. It returns how many
// events it dispatched (at most a batch; call again while it returns a full
// one) and how many deliveries it created. newID makes each delivery's id.
func (db *DB) DispatchEvents(ctx context.Context, newID func() string) (events, deliveries int, err error) {
	var waiting bool
	if err := db.read.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE dispatched = 0)`).Scan(&waiting); err != nil || !waiting {
		return 0, 0, err
	}
	err = db.update(ctx, func(tx *tx) error {
		events, deliveries = 0, 0
		routes, err := tx.alertRoutes()
		if err != nil {
			return err
		}
		rows, err := tx.Query(`SELECT `+eventColumns+` FROM events e WHERE e.dispatched = 0 ORDER BY e.id LIMIT ?`, dispatchBatch)
		if err != nil {
			return err
		}
		var batch []muster.Event
		for rows.Next() {
			e, err := scanEvent(rows)
			if err != nil {
				rows.Close()
				return err
			}
			batch = append(batch, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(batch) == 0 {
			return err
		}
		insert, err := tx.PrepareContext(ctx, `INSERT INTO deliveries (uid, event_id, alert_name, operator_id, operator_name, channel, address,
				status, last_error, created_at, next_attempt_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
		if err != nil {
			return err
		}
		defer insert.Close()
		for _, e := range batch {
			for _, r := range routes {
				if !r.enabledFor(e) || !r.alert.Matches(e) {
					continue
				}
				for _, ch := range channels(r) {
					status, lastErr, next := muster.DeliveryPending, "", sql.NullInt64{Int64: ms(tx.now), Valid: true}
					if ch.name == muster.ChannelNone {
						status, next = muster.DeliveryFailed, sql.NullInt64{}
						lastErr = fmt.Sprintf("operator %s has no webhook or e-mail address; set one with `muster operator update %s --webhook URL`", r.opName, r.opName)
					}
					res, err := insert.ExecContext(ctx, newID(), e.ID, r.alert.Name, r.opID, r.opName, ch.name, ch.address,
						string(status), lastErr, ms(tx.now), next)
					if err != nil {
						return err
					}
					if n, _ := res.RowsAffected(); n > 0 {
						deliveries++
					}
				}
			}
		}
		events = len(batch)
		last := batch[len(batch)-1].ID
		if _, err := tx.Exec(`UPDATE events SET dispatched = 1 WHERE dispatched = 0 AND id <= ?`, last); err != nil {
			return err
		}
		// Every event raised before those changes is matched now.
		_, err = tx.Exec(`UPDATE alerts SET changed_after_event = 0 WHERE changed_after_event BETWEEN 1 AND ?`, last)
		return err
	})
	return events, deliveries, err
}

type channel struct{ name, address string }

// channels lists where a route's operator is notified.
func channels(r alertRoute) []channel {
	var out []channel
	if r.webhook != "" {
		out = append(out, channel{muster.ChannelWebhook, r.webhook})
	}
	if r.email != "" {
		out = append(out, channel{muster.ChannelEmail, r.email})
	}
	if len(out) == 0 {
		out = append(out, channel{muster.ChannelNone, ""})
	}
	return out
}

// alertRoutes returns every (alert, operator) pair.
func (tx *tx) alertRoutes() ([]alertRoute, error) {
	rows, err := tx.Query(`SELECT a.name, a.event, a.job_name, a.target_name, a.min_severity, a.window_ms, a.enabled, a.changed_after_event,
			o.id, o.name, o.webhook_url, o.email
		FROM alerts a JOIN alert_operators ao ON ao.alert_id = a.id JOIN operators o ON o.id = ao.operator_id
		ORDER BY a.name, ao.position`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var routes []alertRoute
	for rows.Next() {
		var r alertRoute
		var window int64
		if err := rows.Scan(&r.alert.Name, &r.alert.Event, &r.alert.Job, &r.alert.Target, &r.alert.MinSeverity, &window,
			&r.alert.Enabled, &r.changedAfter, &r.opID, &r.opName, &r.webhook, &r.email); err != nil {
			return nil, err
		}
		r.alert.Window = muster.Duration(time.Duration(window) * time.Millisecond)
		routes = append(routes, r)
	}
	return routes, rows.Err()
}

// PendingDelivery is a delivery due for an attempt, with what sending it
// takes.
type PendingDelivery struct {
	muster.Delivery
	// Secret is the operator's webhook secret now ("" if it was deleted).
	Secret string
}

// deliveryColumns are the columns scanDelivery reads: an event (e), then a
// delivery (d).
const deliveryColumns = eventColumns + `, d.uid, d.alert_name, d.operator_name, d.channel, d.address, d.status, d.attempts, d.last_error,
	d.created_at, d.next_attempt_at, d.delivered_at`

func scanDelivery(row scanner, more ...any) (muster.Delivery, error) {
	var d muster.Delivery
	var created int64
	var next, delivered sql.NullInt64
	e, err := scanEvent(row, append([]any{&d.ID, &d.Alert, &d.Operator, &d.Channel, &d.Address, &d.Status, &d.Attempts, &d.LastError,
		&created, &next, &delivered}, more...)...)
	d.Event, d.CreatedAt, d.NextAttemptAt, d.DeliveredAt = e, fromMS(created), fromNullMS(next), fromNullMS(delivered)
	return d, err
}

// DueDeliveries returns up to limit pending deliveries whose next attempt
// is due, the earliest first.
func (db *DB) DueDeliveries(ctx context.Context, limit int) ([]PendingDelivery, error) {
	return queryAll(ctx, db, selectQuery{sql: `SELECT ` + deliveryColumns + `, COALESCE(o.webhook_secret, '')
		FROM deliveries d JOIN events e ON e.id = d.event_id LEFT JOIN operators o ON o.id = d.operator_id
		WHERE d.status = 'pending' AND d.next_attempt_at <= ? ORDER BY d.next_attempt_at, d.id LIMIT ?`, args: []any{ms(db.opts.Now()), limit}},
		func(row scanner) (p PendingDelivery, err error) {
			p.Delivery, err = scanDelivery(row, &p.Secret)
			return p, err
		})
}

// NextDeliveryAt returns when the earliest pending delivery is due, or ok
// false when none is pending.
func (db *DB) NextDeliveryAt(ctx context.Context) (at time.Time, ok bool, err error) {
	var next sql.NullInt64
	err = db.read.QueryRowContext(ctx, `SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending'`).Scan(&next)
	if err != nil || !next.Valid {
		return at, false, err
	}
	return fromMS(next.Int64), true, nil
}

// DeliveryAttempt is the outcome of one attempt to send a delivery.
type DeliveryAttempt struct {
	// Err is why the attempt failed; nil when it was delivered.
	Err error
	// RetryAt is when to try again after a failure; zero to give up, which
	// fails the delivery.
	RetryAt time.Time
}

// RecordDeliveryAttempt records an attempt at the pending delivery id.
func (db *DB) RecordDeliveryAttempt(ctx context.Context, id string, a DeliveryAttempt) error {
	return db.update(ctx, func(tx *tx) error {
		status, lastErr := muster.DeliveryDelivered, ""
		var next, delivered sql.NullInt64
		switch {
		case a.Err == nil:
			delivered = sql.NullInt64{Int64: ms(tx.now), Valid: true}
		case a.RetryAt.IsZero():
			status, lastErr = muster.DeliveryFailed, muster.TruncateMessage(a.Err.Error())
		default:
			status, lastErr = muster.DeliveryPending, muster.TruncateMessage(a.Err.Error())
			next = sql.NullInt64{Int64: ms(a.RetryAt), Valid: true}
		}
		_, err := tx.Exec(`UPDATE deliveries SET attempts = attempts + 1, status = ?, last_error = ?, next_attempt_at = ?, delivered_at = ?
			WHERE uid = ? AND status = 'pending'`, string(status), lastErr, next, delivered, id)
		return err
	})
}

// DeliveryFilter selects deliveries. Empty fields match any.
type DeliveryFilter struct {
	Alert    string
	Operator string
	Status   muster.DeliveryStatus
	Limit    int
}

// FindDeliveries returns deliveries with their events, newest first: the
// alert history.
func (db *DB) FindDeliveries(ctx context.Context, f DeliveryFilter) ([]muster.Delivery, error) {
	q := selectQuery{sql: `SELECT ` + deliveryColumns + ` FROM deliveries d JOIN events e ON e.id = d.event_id WHERE 1 = 1`}
	q.eq("d.alert_name", f.Alert)
	q.eq("d.operator_name", f.Operator)
	q.eq("d.status", string(f.Status))
	q.newest("d.id", f.Limit)
	return queryAll(ctx, db, q, func(row scanner) (muster.Delivery, error) { return scanDelivery(row) })
}
