package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

const operatorColumns = `id, name, webhook_url, webhook_secret, email, created_at, updated_at`

func scanOperator(r Row) (catalog.OperatorRow, error) {
	var op catalog.OperatorRow
	var created, updated int64
	err := r.Scan(&op.ID, &op.Name, &op.Webhook, &op.Secret, &op.Email, &created, &updated)
	op.CreatedAt, op.UpdatedAt = fromMS(created), fromMS(updated)
	return op, err
}

// FindOperators returns every operator by name, or the one named.
func (s *Queries) FindOperators(ctx context.Context, name string) ([]catalog.OperatorRow, error) {
	if name != "" {
		return collect(ctx, s.Q, func(r Rows) (catalog.OperatorRow, error) { return scanOperator(r) },
			`SELECT `+operatorColumns+` FROM operators WHERE name = $1`, name)
	}
	return collect(ctx, s.Q, func(r Rows) (catalog.OperatorRow, error) { return scanOperator(r) },
		`SELECT `+operatorColumns+` FROM operators ORDER BY name`)
}

// LockOperator returns an operator's row (the engine takes it where a
// transaction may not be alone).
func (s *Queries) LockOperator(ctx context.Context, name string) (catalog.OperatorRow, error) {
	return scanOperator(s.Q.QueryRow(ctx, `SELECT `+operatorColumns+` FROM operators WHERE name = $1`, name))
}

// InsertOperator creates an operator; a name taken is ErrDuplicate.
func (s *Queries) InsertOperator(ctx context.Context, op catalog.OperatorRow) error {
	_, err := s.Q.Exec(ctx, `INSERT INTO operators (name, webhook_url, webhook_secret, email, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, op.Name, op.Webhook, op.Secret, op.Email, ms(op.CreatedAt), ms(op.UpdatedAt))
	return err
}

// UpdateOperator stores an operator's addresses and secret.
func (s *Queries) UpdateOperator(ctx context.Context, op catalog.OperatorRow) error {
	_, err := s.Q.Exec(ctx, `UPDATE operators SET webhook_url = $1, webhook_secret = $2, email = $3, updated_at = $4 WHERE id = $5`,
		op.Webhook, op.Secret, op.Email, ms(op.UpdatedAt), op.ID)
	return err
}

// DeleteOperator deletes an operator.
func (s *Queries) DeleteOperator(ctx context.Context, id int64) error {
	if _, err := s.Q.Exec(ctx, `UPDATE deliveries SET operator_id = NULL WHERE operator_id = $1`, id); err != nil {
		return err
	}
	_, err := s.Q.Exec(ctx, `DELETE FROM operators WHERE id = $1`, id)
	return err
}

// FailDeliveries fails an operator's pending notifications.
func (s *Queries) FailDeliveries(ctx context.Context, operatorID int64, reason string) error {
	_, err := s.Q.Exec(ctx, `UPDATE deliveries SET status = 'failed', last_error = $1, next_attempt_at = NULL
		WHERE operator_id = $2 AND status = 'pending'`, reason, operatorID)
	return err
}

// ReaddressDeliveries sends an operator's notifications pending on a
// channel to address, or fails them with reason when it is "".
func (s *Queries) ReaddressDeliveries(ctx context.Context, operatorID int64, channel, address, reason string) (int64, error) {
	if address == "" {
		return s.Q.Exec(ctx, `UPDATE deliveries SET status = 'failed', last_error = $1, next_attempt_at = NULL
			WHERE operator_id = $2 AND channel = $3 AND status = 'pending'`, reason, operatorID, channel)
	}
	return s.Q.Exec(ctx, `UPDATE deliveries SET address = $1 WHERE operator_id = $2 AND channel = $3 AND status = 'pending'`,
		address, operatorID, channel)
}

// AlertsNotifying returns the alerts that notify an operator, by name.
func (s *Queries) AlertsNotifying(ctx context.Context, operatorID int64) ([]string, error) {
	return texts(ctx, s.Q, `SELECT a.name FROM alerts a JOIN alert_operators ao ON ao.alert_id = a.id WHERE ao.operator_id = $1
		ORDER BY a.name`, operatorID)
}

// FindAlerts returns every alert by name, or the one named.
func (s *Queries) FindAlerts(ctx context.Context, name string) ([]muster.Alert, error) {
	a := &args{d: s.D}
	q := `SELECT a.name, a.event, a.job_name, a.target_name, a.min_severity, a.window_ms, a.enabled, a.created_at,
			(SELECT string_agg(o.name, ',' ORDER BY ao.position) FROM alert_operators ao JOIN operators o ON o.id = ao.operator_id
				WHERE ao.alert_id = a.id)
		FROM alerts a`
	if name != "" {
		q += ` WHERE a.name = ` + a.add(name)
	}
	return collect(ctx, s.Q, func(r Rows) (al muster.Alert, err error) {
		var window, created int64
		var event string
		var severity int
		var notify sql.NullString
		err = r.Scan(&al.Name, &event, &al.Job, &al.Target, &severity, &window, &al.Enabled, &created, &notify)
		al.Event, al.MinSeverity = muster.EventName(event), muster.Severity(severity)
		al.Window, al.CreatedAt, al.Notify = muster.Duration(time.Duration(window)*time.Millisecond), fromMS(created), split(notify)
		return al, err
	}, q+` ORDER BY a.name`, a.vals...)
}

// InsertAlert creates an alert notifying operators, in order; a name taken
// is ErrDuplicate.
func (s *Queries) InsertAlert(ctx context.Context, al muster.Alert, operatorIDs []int64) error {
	var id int64
	if err := s.Q.QueryRow(ctx, `INSERT INTO alerts (name, event, job_name, target_name, min_severity, window_ms, enabled, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		al.Name, string(al.Event), al.Job, al.Target, int(al.MinSeverity), al.Window.Std().Milliseconds(), al.Enabled,
		ms(al.CreatedAt)).Scan(&id); err != nil {
		return err
	}
	for i, op := range operatorIDs {
		if _, err := s.Q.Exec(ctx, `INSERT INTO alert_operators (alert_id, operator_id, position) VALUES ($1, $2, $3)`, id, op, i); err != nil {
			return err
		}
	}
	return nil
}

// SetAlertEnabled enables or disables an alert, remembering, when that
// changes it, the last event raised before: events up to it are matched as
// the alert was, later ones as it is.
func (s *Queries) SetAlertEnabled(ctx context.Context, name string, enabled bool) (bool, error) {
	n, err := s.Q.Exec(ctx, `UPDATE alerts SET enabled = $1,
			changed_after_event = CASE WHEN enabled = $1 THEN changed_after_event
				ELSE (SELECT COALESCE(MAX(id), 0) FROM events WHERE NOT dispatched) END
		WHERE name = $2`, enabled, name)
	return n > 0, err
}

// DeleteAlert deletes an alert and reports whether it existed.
func (s *Queries) DeleteAlert(ctx context.Context, name string) (bool, error) {
	if _, err := s.Q.Exec(ctx, `DELETE FROM alert_operators WHERE alert_id IN (SELECT id FROM alerts WHERE name = $1)`, name); err != nil {
		return false, err
	}
	n, err := s.Q.Exec(ctx, `DELETE FROM alerts WHERE name = $1`, name)
	return n > 0, err
}

// AlertRoutes returns every (alert, operator) pair.
func (s *Queries) AlertRoutes(ctx context.Context) ([]catalog.AlertRoute, error) {
	return collect(ctx, s.Q, func(r Rows) (rt catalog.AlertRoute, err error) {
		var window int64
		var event string
		var severity int
		err = r.Scan(&rt.Alert.Name, &event, &rt.Alert.Job, &rt.Alert.Target, &severity, &window, &rt.Alert.Enabled,
			&rt.ChangedAfter, &rt.OpID, &rt.OpName, &rt.Webhook, &rt.Email)
		rt.Alert.Event, rt.Alert.MinSeverity = muster.EventName(event), muster.Severity(severity)
		rt.Alert.Window = muster.Duration(time.Duration(window) * time.Millisecond)
		return rt, err
	}, `SELECT a.name, a.event, a.job_name, a.target_name, a.min_severity, a.window_ms, a.enabled, a.changed_after_event,
			o.id, o.name, o.webhook_url, o.email
		FROM alerts a JOIN alert_operators ao ON ao.alert_id = a.id JOIN operators o ON o.id = ao.operator_id
		ORDER BY a.name, ao.position`)
}

// InsertDelivery records a notification unless one is recorded for its
// event, alert, operator and channel.
func (s *Queries) InsertDelivery(ctx context.Context, d catalog.DeliveryRow) (bool, error) {
	n, err := s.Q.Exec(ctx, `INSERT INTO deliveries (uid, event_id, alert_name, operator_id, operator_name, channel, address,
			status, last_error, created_at, next_attempt_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING`,
		d.UID, d.EventID, d.Alert, d.OperatorID, d.Operator, d.Channel, d.Address, string(d.Status), d.LastError,
		ms(d.CreatedAt), nullMS(d.NextAttempt))
	return n > 0, err
}

// RecordDeliveryAttempt records an attempt at a pending notification.
func (s *Queries) RecordDeliveryAttempt(ctx context.Context, uid string, status muster.DeliveryStatus, lastErr string, next, delivered *time.Time) error {
	_, err := s.Q.Exec(ctx, `UPDATE deliveries SET attempts = attempts + 1, status = $1, last_error = $2, next_attempt_at = $3,
			delivered_at = $4
		WHERE uid = $5 AND status = 'pending'`, string(status), lastErr, nullMS(next), nullMS(delivered), uid)
	return err
}

// deliveryColumns are the columns scanDelivery reads: an event (e), then a
// delivery (d).
const deliveryColumns = eventColumns + `, d.uid, d.alert_name, d.operator_name, d.channel, d.address, d.status, d.attempts,
	d.last_error, d.created_at, d.next_attempt_at, d.delivered_at`

func scanDelivery(r Row, more ...any) (muster.Delivery, error) {
	var d muster.Delivery
	var created int64
	var next, delivered sql.NullInt64
	var status string
	e, err := scanEvent(r, append([]any{&d.ID, &d.Alert, &d.Operator, &d.Channel, &d.Address, &status, &d.Attempts, &d.LastError,
		&created, &next, &delivered}, more...)...)
	d.Event, d.Status, d.CreatedAt, d.NextAttemptAt, d.DeliveredAt = e, muster.DeliveryStatus(status), fromMS(created), fromNullMS(next), fromNullMS(delivered)
	return d, err
}

// DueDeliveries returns pending notifications due by now, the earliest
// first, with their operator's webhook secret: at most perAddress to each
// channel and address, limit in all.
func (s *Queries) DueDeliveries(ctx context.Context, now time.Time, perAddress, limit int) ([]catalog.PendingDelivery, error) {
	return collect(ctx, s.Q, func(r Rows) (p catalog.PendingDelivery, err error) {
		p.Delivery, err = scanDelivery(r, &p.Secret)
		return p, err
	}, `SELECT `+deliveryColumns+`, COALESCE(o.webhook_secret, '')
		FROM (SELECT dd.*, ROW_NUMBER() OVER (PARTITION BY dd.channel, dd.address ORDER BY dd.next_attempt_at, dd.id) AS lane_rank
			FROM deliveries dd WHERE dd.status = 'pending' AND dd.next_attempt_at <= $1) d
		JOIN events e ON e.id = d.event_id LEFT JOIN operators o ON o.id = d.operator_id
		WHERE d.lane_rank <= $2 ORDER BY d.next_attempt_at, d.id LIMIT $3`, ms(now), perAddress, limit)
}

// PendingDeliveries returns those of the notifications uids still pending,
// with their operator's webhook secret.
func (s *Queries) PendingDeliveries(ctx context.Context, uids []string) ([]catalog.PendingDelivery, error) {
	a := &args{d: s.D}
	cond, err := inJSON(a, "d.uid", uids)
	if err != nil {
		return nil, err
	}
	return collect(ctx, s.Q, func(r Rows) (p catalog.PendingDelivery, err error) {
		p.Delivery, err = scanDelivery(r, &p.Secret)
		return p, err
	}, `SELECT `+deliveryColumns+`, COALESCE(o.webhook_secret, '')
		FROM deliveries d JOIN events e ON e.id = d.event_id LEFT JOIN operators o ON o.id = d.operator_id
		WHERE d.status = 'pending' AND `+cond, a.vals...)
}

// NextDeliveryAt returns when the earliest pending notification due after
// after is due.
func (s *Queries) NextDeliveryAt(ctx context.Context, after time.Time) (time.Time, bool, error) {
	var next sql.NullInt64
	err := s.Q.QueryRow(ctx, `SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending' AND next_attempt_at > $1`,
		ms(after)).Scan(&next)
	if err != nil || !next.Valid {
		return time.Time{}, false, err
	}
	return fromMS(next.Int64), true, nil
}

// FindDeliveries returns notifications with their events, newest first.
func (s *Queries) FindDeliveries(ctx context.Context, f catalog.DeliveryFilter) ([]catalog.StoredDelivery, error) {
	a := &args{d: s.D}
	q := `SELECT ` + deliveryColumns + `, d.id FROM deliveries d JOIN events e ON e.id = d.event_id WHERE TRUE`
	for col, v := range map[string]string{"d.alert_name": f.Alert, "d.operator_name": f.Operator, "d.status": string(f.Status)} {
		if v != "" {
			q += ` AND ` + col + ` = ` + a.add(v)
		}
	}
	if f.BeforeKey > 0 {
		q += ` AND d.id < ` + a.add(f.BeforeKey)
	}
	return collect(ctx, s.Q, func(r Rows) (row catalog.StoredDelivery, err error) {
		row.Delivery, err = scanDelivery(r, &row.Key)
		return row, err
	}, q+` ORDER BY d.id DESC LIMIT `+a.add(limitOr(f.Limit, 100)), a.vals...)
}
