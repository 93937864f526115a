package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/sqlite"
)

// Webhook secret bounds. A secret signs every webhook body (HMAC-SHA256), so
// it must be at hand to sign: it is stored as is, not hashed.
const (
	MinWebhookSecretLen = 16
	MaxWebhookSecretLen = 256
)

func checkWebhookSecret(field, s string) error {
	if len(s) < MinWebhookSecretLen || len(s) > MaxWebhookSecretLen || strings.ContainsAny(s, " \t\r\n") {
		return muster.Errorf(muster.EINVALID, "%s: a webhook secret is %d to %d characters without spaces", field, MinWebhookSecretLen, MaxWebhookSecretLen)
	}
	return nil
}

// FindOperators returns every operator, by name.
func (db *DB) FindOperators(ctx context.Context) ([]muster.Operator, error) {
	return queryAll(ctx, db, selectQuery{sql: `SELECT name, webhook_url, email, created_at, updated_at FROM operators ORDER BY name`}, scanOperator)
}

// FindOperator returns one operator by name.
func (db *DB) FindOperator(ctx context.Context, name string) (muster.Operator, error) {
	op, err := scanOperator(db.read.QueryRowContext(ctx, `SELECT name, webhook_url, email, created_at, updated_at FROM operators WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return op, noOperator(name)
	}
	return op, err
}

func noOperator(name string) error {
	return muster.Errorf(muster.ENOTFOUND, "no operator named %q; `muster operator list` shows them", name)
}

func scanOperator(row scanner) (muster.Operator, error) {
	var op muster.Operator
	var created, updated int64
	err := row.Scan(&op.Name, &op.Webhook, &op.Email, &created, &updated)
	op.CreatedAt, op.UpdatedAt = fromMS(created), fromMS(updated)
	return op, err
}

// CreateOperator creates an operator. secret signs its webhooks: an
// operator has one exactly when it has a webhook.
func (db *DB) CreateOperator(ctx context.Context, op muster.Operator, secret string) (muster.Operator, error) {
	if err := checkOperator(op); err != nil {
		return op, err
	}
	if op.Webhook == "" && op.Email == "" {
		return op, muster.Errorf(muster.EINVALID, "operator %q: give a webhook, an e-mail address, or both", op.Name)
	}
	switch {
	case op.Webhook == "" && secret != "":
		return op, muster.Errorf(muster.EINVALID, "operator %q: webhook_secret: only an operator with a webhook has a secret", op.Name)
	case op.Webhook != "":
		if err := checkWebhookSecret("webhook_secret", secret); err != nil {
			return op, err
		}
	}
	err := db.update(ctx, func(tx *tx) error {
		_, err := tx.Exec(`INSERT INTO operators (name, webhook_url, webhook_secret, email, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
			op.Name, op.Webhook, secret, op.Email, ms(tx.now), ms(tx.now))
		if sqlite.IsUniqueViolation(err) {
			return muster.Errorf(muster.ECONFLICT, "an operator named %q already exists; change it with `muster operator update %s`", op.Name, op.Name)
		}
		op.CreatedAt, op.UpdatedAt = tx.now.UTC(), tx.now.UTC()
		return err
	})
	return op, err
}

func checkOperator(op muster.Operator) error {
	if err := muster.ValidateOperatorName("operator: name", op.Name); err != nil {
		return err
	}
	if err := muster.ValidateWebhook(fmt.Sprintf("operator %q: webhook", op.Name), op.Webhook); err != nil {
		return err
	}
	return muster.ValidateEmail(fmt.Sprintf("operator %q: email", op.Name), op.Email)
}

// OperatorUpdate changes an operator: each field that is set replaces the
// operator's; "" removes an address.
type OperatorUpdate struct {
	Webhook *string `json:"webhook,omitempty"`
	Email   *string `json:"email,omitempty"`
	// WebhookSecret replaces the secret with the one given.
	WebhookSecret *string `json:"webhook_secret,omitempty"`
	// NewSecret replaces the secret with a new one, made by the master.
	NewSecret bool `json:"new_secret,omitempty"`
}

// UpdateOperator applies u to the operator name. An operator has a secret
// exactly when it has a webhook: one that gets a webhook where it had none,
// or asks for NewSecret, gets a secret from newSecret, which is returned (it
// is shown once; a secret given in u is not); one that loses its webhook
// loses its secret.
func (db *DB) UpdateOperator(ctx context.Context, name string, u OperatorUpdate, newSecret func() string) (muster.Operator, string, error) {
	if u.WebhookSecret != nil && u.NewSecret {
		return muster.Operator{}, "", muster.Errorf(muster.EINVALID, "webhook_secret and new_secret: give one or the other")
	}
	if u.WebhookSecret != nil {
		if err := checkWebhookSecret("webhook_secret", *u.WebhookSecret); err != nil {
			return muster.Operator{}, "", err
		}
	}
	var op muster.Operator
	var made string
	err := db.update(ctx, func(tx *tx) error {
		var secret string
		var created int64
		err := tx.QueryRow(`SELECT name, webhook_url, webhook_secret, email, created_at FROM operators WHERE name = ?`, name).
			Scan(&op.Name, &op.Webhook, &secret, &op.Email, &created)
		if errors.Is(err, sql.ErrNoRows) {
			return noOperator(name)
		}
		if err != nil {
			return err
		}
		if u.Webhook != nil {
			op.Webhook = *u.Webhook
		}
		if u.Email != nil {
			op.Email = *u.Email
		}
		if err := checkOperator(op); err != nil {
			return err
		}
		switch {
		case op.Webhook == "" && (u.WebhookSecret != nil || u.NewSecret):
			return muster.Errorf(muster.EINVALID, "operator %q: webhook_secret: only an operator with a webhook has a secret", name)
		case op.Webhook == "":
			secret = ""
		case u.WebhookSecret != nil:
			secret = *u.WebhookSecret
		case u.NewSecret || secret == "":
			secret = newSecret()
			made = secret
		}
		op.CreatedAt, op.UpdatedAt = fromMS(created), tx.now.UTC()
		_, err = tx.Exec(`UPDATE operators SET webhook_url = ?, webhook_secret = ?, email = ?, updated_at = ? WHERE name = ?`,
			op.Webhook, secret, op.Email, ms(tx.now), name)
		return err
	})
	return op, made, err
}

// DeleteOperator deletes an operator that no alert notifies. Its
// notifications still pending fail. MSXOperator cannot be deleted.
func (db *DB) DeleteOperator(ctx context.Context, name string) error {
	if name == muster.MSXOperator {
		return muster.Errorf(muster.EINVALID, "%s is the master's own operator and cannot be deleted; remove its addresses with `muster operator update %s --webhook '' --email ''`", name, name)
	}
	return db.update(ctx, func(tx *tx) error {
		var id int64
		err := tx.QueryRow(`SELECT id FROM operators WHERE name = ?`, name).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return noOperator(name)
		}
		if err != nil {
			return err
		}
		alerts, err := tx.names(`SELECT a.name FROM alerts a JOIN alert_operators ao ON ao.alert_id = a.id WHERE ao.operator_id = ? ORDER BY a.name`, id)
		if err != nil {
			return err
		}
		if len(alerts) > 0 {
			for i, a := range alerts {
				alerts[i] = fmt.Sprintf("%q", a)
			}
			return muster.Errorf(muster.ECONFLICT, "operator %q is notified by alert %s; delete those alerts first (`muster alert delete NAME`)", name, strings.Join(alerts, ", "))
		}
		if _, err := tx.Exec(`UPDATE deliveries SET status = 'failed', last_error = 'the operator was deleted', next_attempt_at = NULL
			WHERE operator_id = ? AND status = 'pending'`, id); err != nil {
			return err
		}
		_, err = tx.Exec(`DELETE FROM operators WHERE id = ?`, id)
		return err
	})
}

// FindAlerts returns every alert, by name.
func (db *DB) FindAlerts(ctx context.Context) ([]muster.Alert, error) {
	return queryAll(ctx, db, selectQuery{sql: sqlAlerts + ` ORDER BY a.name`}, scanAlert)
}

// sqlAlerts selects alerts for scanAlert.
const sqlAlerts = `SELECT a.name, a.event, a.job_name, a.target_name, a.min_severity, a.window_ms, a.enabled, a.created_at,
		(SELECT json_group_array(o.name ORDER BY ao.position) FROM alert_operators ao JOIN operators o ON o.id = ao.operator_id
			WHERE ao.alert_id = a.id)
	FROM alerts a`

func scanAlert(row scanner) (muster.Alert, error) {
	var a muster.Alert
	var window, created int64
	var notify string
	if err := row.Scan(&a.Name, &a.Event, &a.Job, &a.Target, &a.MinSeverity, &window, &a.Enabled, &created, &notify); err != nil {
		return a, err
	}
	a.Window = muster.Duration(time.Duration(window) * time.Millisecond)
	a.CreatedAt = fromMS(created)
	if err := json.Unmarshal([]byte(notify), &a.Notify); err != nil {
		return a, fmt.Errorf("alert %q: operators: %w", a.Name, err)
	}
	return a, nil
}

// CreateAlert creates an alert. Its job, target and operators must exist.
func (db *DB) CreateAlert(ctx context.Context, a muster.Alert) (muster.Alert, error) {
	if err := a.Validate(); err != nil {
		return a, err
	}
	err := db.update(ctx, func(tx *tx) error {
		var n int
		if a.Job != "" {
			if err := tx.QueryRow(`SELECT COUNT(*) FROM jobs WHERE name = ?`, a.Job).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return muster.Errorf(muster.EINVALID, "alert %q: job: no job named %q; `muster job list` shows them", a.Name, a.Job)
			}
		}
		if a.Target != "" {
			if _, err := tx.targetIDs(fmt.Sprintf("alert %q: target", a.Name), []string{a.Target}); err != nil {
				return err
			}
		}
		ops := make([]int64, len(a.Notify))
		for i, name := range a.Notify {
			err := tx.QueryRow(`SELECT id FROM operators WHERE name = ?`, name).Scan(&ops[i])
			if errors.Is(err, sql.ErrNoRows) {
				return muster.Errorf(muster.EINVALID, "alert %q: notify: no operator named %q; create it with `muster operator create %s --webhook URL`", a.Name, name, name)
			}
			if err != nil {
				return err
			}
		}
		res, err := tx.Exec(`INSERT INTO alerts (name, event, job_name, target_name, min_severity, window_ms, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			a.Name, string(a.Event), a.Job, a.Target, int(a.MinSeverity), a.Window.Std().Milliseconds(), ms(tx.now))
		if sqlite.IsUniqueViolation(err) {
			return muster.Errorf(muster.ECONFLICT, "an alert named %q already exists; delete it first to redefine it", a.Name)
		}
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		for i, op := range ops {
			if _, err := tx.Exec(`INSERT INTO alert_operators (alert_id, operator_id, position) VALUES (?, ?, ?)`, id, op, i); err != nil {
				return err
			}
		}
		a.Enabled, a.CreatedAt = true, tx.now.UTC()
		return nil
	})
	return a, err
}

// SetAlertEnabled enables or disables an alert and returns it. The change
// applies to the events raised from then on, however late they are
// matched: a disabled alert fires for no event raised while it is
// disabled, and watches no job for no_success. What it fired before is
// still delivered.
func (db *DB) SetAlertEnabled(ctx context.Context, name string, enabled bool) (muster.Alert, error) {
	var a muster.Alert
	err := db.update(ctx, func(tx *tx) error {
		res, err := tx.Exec(`UPDATE alerts SET enabled = ?1,
				changed_after_event = CASE WHEN enabled = ?1 THEN changed_after_event
					ELSE (SELECT COALESCE(MAX(id), 0) FROM events WHERE dispatched = 0) END
			WHERE name = ?2`, enabled, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return muster.Errorf(muster.ENOTFOUND, "no alert named %q; `muster alert list` shows them", name)
		}
		a, err = scanAlert(tx.QueryRow(sqlAlerts+` WHERE a.name = ?`, name))
		return err
	})
	return a, err
}

// DeleteAlert deletes an alert. What it already fired stays in the history
// and is still delivered.
func (db *DB) DeleteAlert(ctx context.Context, name string) error {
	return db.update(ctx, func(tx *tx) error {
		res, err := tx.Exec(`DELETE FROM alerts WHERE name = ?`, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return muster.Errorf(muster.ENOTFOUND, "no alert named %q; `muster alert list` shows them", name)
		}
		return nil
	})
}
