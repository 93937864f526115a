package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/musterhq/muster"
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
func (c *Catalog) FindOperators(ctx context.Context) ([]muster.Operator, error) {
	rows, err := c.store.FindOperators(ctx, "")
	ops := make([]muster.Operator, len(rows))
	for i, r := range rows {
		ops[i] = r.Operator
	}
	return ops, err
}

// FindOperator returns one operator by name.
func (c *Catalog) FindOperator(ctx context.Context, name string) (muster.Operator, error) {
	rows, err := c.store.FindOperators(ctx, name)
	if err != nil {
		return muster.Operator{}, err
	}
	if len(rows) == 0 {
		return muster.Operator{}, noOperator(name)
	}
	return rows[0].Operator, nil
}

func noOperator(name string) error {
	return muster.Errorf(muster.ENOTFOUND, "no operator named %q; `muster operator list` shows them", name)
}

// CreateOperator creates an operator. secret signs its webhooks: an
// operator has one exactly when it has a webhook.
func (c *Catalog) CreateOperator(ctx context.Context, op muster.Operator, secret string, by muster.Actor) (muster.Operator, error) {
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
	err := c.update(ctx, func(tx *tx) error {
		op.CreatedAt, op.UpdatedAt = tx.now.UTC(), tx.now.UTC()
		err := tx.InsertOperator(ctx, OperatorRow{Secret: secret, Operator: op})
		if errors.Is(err, ErrDuplicate) {
			return muster.Errorf(muster.ECONFLICT, "an operator named %q already exists; change it with `muster operator update %s`", op.Name, op.Name)
		}
		if err != nil {
			return err
		}
		return tx.audit(by, muster.AuditEntry{Action: muster.AuditOperatorCreate, Object: "operator " + op.Name,
			Changes: operatorLines(muster.Operator{}, op, secret != "")})
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
	Webhook *string
	Email   *string
	// WebhookSecret replaces the secret with the one given.
	WebhookSecret *string
	// NewSecret replaces the secret with a new one, made by the master.
	NewSecret bool
}

// UpdateOperator applies u to the operator name. An operator has a secret
// exactly when it has a webhook: one that gets a webhook where it had none,
// or asks for NewSecret, gets a secret from newSecret, which is returned (it
// is shown once; a secret given in u is not); one that loses its webhook
// loses its secret.
func (c *Catalog) UpdateOperator(ctx context.Context, name string, u OperatorUpdate, newSecret func() string, by muster.Actor) (muster.Operator, string, error) {
	if u.Webhook == nil && u.Email == nil && u.WebhookSecret == nil && !u.NewSecret {
		return muster.Operator{}, "", muster.Errorf(muster.EINVALID, "operator %q: nothing to change: give webhook, email, webhook_secret or new_secret", name)
	}
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
	err := c.update(ctx, func(tx *tx) error {
		row, err := tx.LockOperator(ctx, name)
		if noRows(err) {
			return noOperator(name)
		}
		if err != nil {
			return err
		}
		op, made = row.Operator, ""
		if u.Webhook != nil {
			op.Webhook = *u.Webhook
		}
		if u.Email != nil {
			op.Email = *u.Email
		}
		if err := checkOperator(op); err != nil {
			return err
		}
		secret := row.Secret
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
		op.UpdatedAt = tx.now.UTC()
		if err := tx.UpdateOperator(ctx, OperatorRow{ID: row.ID, Secret: secret, Operator: op}); err != nil {
			return err
		}
		lines := operatorLines(row.Operator, op, secret != row.Secret)
		// What is still pending goes where the operator is now reached.
		for _, ch := range []struct {
			channel, what, before, after string
		}{{muster.ChannelWebhook, "webhook", row.Webhook, op.Webhook}, {muster.ChannelEmail, "e-mail address", row.Email, op.Email}} {
			if ch.before == ch.after {
				continue
			}
			reason := fmt.Sprintf("the %s was removed", ch.what)
			n, err := tx.ReaddressDeliveries(ctx, row.ID, ch.channel, ch.after, reason)
			switch {
			case err != nil:
				return err
			case n == 0:
			case ch.after == "":
				lines = append(lines, fmt.Sprintf("%s failed: %s", pendingCount(n), reason))
			default:
				verb := "go"
				if n == 1 {
					verb = "goes"
				}
				lines = append(lines, fmt.Sprintf("%s now %s to the new %s", pendingCount(n), verb, ch.what))
			}
		}
		return tx.audit(by, muster.AuditEntry{Action: muster.AuditOperatorUpdate, Object: "operator " + name, Changes: lines})
	})
	return op, made, err
}

// pendingCount says n pending notifications.
func pendingCount(n int64) string {
	if n == 1 {
		return "1 pending notification"
	}
	return fmt.Sprintf("%d pending notifications", n)
}

// operatorLines says how an operator changed, never with its secret.
func operatorLines(before, after muster.Operator, secretChanged bool) []string {
	var lines []string
	// The audit log is read by every key: a webhook is written as a key
	// below admin is shown it.
	if before.Webhook != after.Webhook {
		lines = append(lines, fmt.Sprintf("webhook: %q -> %q", muster.RedactWebhook(before.Webhook), muster.RedactWebhook(after.Webhook)))
	}
	if before.Email != after.Email {
		lines = append(lines, fmt.Sprintf("email: %q -> %q", before.Email, after.Email))
	}
	if secretChanged {
		lines = append(lines, "webhook secret: replaced")
	}
	return lines
}

// DeleteOperator deletes an operator that no alert notifies. Its
// notifications still pending fail. MSXOperator cannot be deleted.
func (c *Catalog) DeleteOperator(ctx context.Context, name string, by muster.Actor) error {
	if name == muster.MSXOperator {
		return muster.Errorf(muster.EINVALID, "%s is the master's own operator and cannot be deleted; remove its addresses with `muster operator update %s --webhook '' --email ''`", name, name)
	}
	return c.update(ctx, func(tx *tx) error {
		row, err := tx.LockOperator(ctx, name)
		if noRows(err) {
			return noOperator(name)
		}
		if err != nil {
			return err
		}
		alerts, err := tx.AlertsNotifying(ctx, row.ID)
		if err != nil {
			return err
		}
		if len(alerts) > 0 {
			for i, a := range alerts {
				alerts[i] = fmt.Sprintf("%q", a)
			}
			return muster.Errorf(muster.ECONFLICT, "operator %q is notified by alert %s; delete those alerts first (`muster alert delete NAME`)", name, strings.Join(alerts, ", "))
		}
		if err := tx.FailDeliveries(ctx, row.ID, "the operator was deleted"); err != nil {
			return err
		}
		if err := tx.DeleteOperator(ctx, row.ID); err != nil {
			return err
		}
		return tx.audit(by, muster.AuditEntry{Action: muster.AuditOperatorDelete, Object: "operator " + name})
	})
}

// FindAlerts returns every alert, by name.
func (c *Catalog) FindAlerts(ctx context.Context) ([]muster.Alert, error) {
	return c.store.FindAlerts(ctx, "")
}

// CreateAlert creates an alert. Its job, target and operators must exist.
func (c *Catalog) CreateAlert(ctx context.Context, a muster.Alert, by muster.Actor) (muster.Alert, error) {
	if err := a.Validate(); err != nil {
		return a, err
	}
	err := c.update(ctx, func(tx *tx) error {
		if a.Job != "" {
			jobs, err := tx.FindJobs(ctx, JobQuery{Name: a.Job})
			if err != nil {
				return err
			}
			if len(jobs) == 0 {
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
			rows, err := tx.FindOperators(ctx, name)
			if err != nil {
				return err
			}
			if len(rows) == 0 {
				return muster.Errorf(muster.EINVALID, "alert %q: notify: no operator named %q; create it with `muster operator create %s --webhook URL`", a.Name, name, name)
			}
			ops[i] = rows[0].ID
		}
		a.Enabled, a.CreatedAt = true, tx.now.UTC()
		err := tx.InsertAlert(ctx, a, ops)
		if errors.Is(err, ErrDuplicate) {
			return muster.Errorf(muster.ECONFLICT, "an alert named %q already exists; delete it first to redefine it", a.Name)
		}
		if err != nil {
			return err
		}
		lines := []string{"on " + string(a.Event), "notifies " + strings.Join(a.Notify, ", ")}
		if a.MinSeverity != 0 {
			lines[0] += " at or above " + a.MinSeverity.String()
		}
		e := alertEntry(muster.AuditAlertCreate, a)
		e.Changes = lines
		return tx.audit(by, e)
	})
	return a, err
}

// SetAlertEnabled enables or disables an alert and returns it. The change
// applies to the events raised from then on, however late they are
// matched: a disabled alert fires for no event raised while it is
// disabled, and watches no job for no_success. What it fired before is
// still delivered.
func (c *Catalog) SetAlertEnabled(ctx context.Context, name string, enabled bool, by muster.Actor) (muster.Alert, error) {
	var a muster.Alert
	err := c.update(ctx, func(tx *tx) error {
		var err error
		if a, err = tx.alert(name); err != nil || a.Enabled == enabled {
			// One already so changes (and records) nothing.
			return err
		}
		found, err := tx.SetAlertEnabled(ctx, name, enabled)
		if err != nil {
			return err
		}
		if !found {
			return noAlert(name)
		}
		a.Enabled = enabled
		action := muster.AuditAlertDisable
		if enabled {
			action = muster.AuditAlertEnable
		}
		return tx.audit(by, alertEntry(action, a))
	})
	return a, err
}

// alert reads one alert; an unknown name is ENOTFOUND.
func (tx *tx) alert(name string) (muster.Alert, error) {
	alerts, err := tx.FindAlerts(tx.ctx, name)
	if err != nil {
		return muster.Alert{}, err
	}
	if len(alerts) == 0 {
		return muster.Alert{}, noAlert(name)
	}
	return alerts[0], nil
}

// alertEntry is the audit entry of an action on alert a, concerning the
// job and the target it watches, so that the log of either finds it.
func alertEntry(action string, a muster.Alert) muster.AuditEntry {
	return muster.AuditEntry{Action: action, Object: "alert " + a.Name, Jobs: nonEmpty(a.Job), Targets: nonEmpty(muster.NormalizeTargetName(a.Target))}
}

func noAlert(name string) error {
	return muster.Errorf(muster.ENOTFOUND, "no alert named %q; `muster alert list` shows them", name)
}

// DeleteAlert deletes an alert. What it already fired stays in the history
// and is still delivered.
func (c *Catalog) DeleteAlert(ctx context.Context, name string, by muster.Actor) error {
	return c.update(ctx, func(tx *tx) error {
		a, err := tx.alert(name)
		if err != nil {
			return err
		}
		found, err := tx.DeleteAlert(ctx, name)
		if err == nil && !found {
			err = noAlert(name)
		}
		if err != nil {
			return err
		}
		return tx.audit(by, alertEntry(muster.AuditAlertDelete, a))
	})
}
