// Package notify sends alert notifications: webhooks, POSTed as JSON and
// signed with HMAC-SHA256, and e-mail through an SMTP server. One call is
// one attempt; the caller owns retries, and an error says whether another
// attempt could help.
package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/musterhq/muster"
)

// Payload is what a notification says: the JSON body of a webhook, and the
// content of an e-mail.
type Payload struct {
	Event    muster.EventName `json:"event"`
	Severity muster.Severity  `json:"severity"`
	Job      string           `json:"job"`
	Target   string           `json:"target"`
	RunID    string           `json:"run_id"`
	Message  string           `json:"message"`
	At       time.Time        `json:"at"`
	Alert    string           `json:"alert"`
	Operator string           `json:"operator"`
	// Delivery is the notification's id, as in the Muster-Delivery
	// header; in the body, it is signed. A webhook sets it.
	Delivery string `json:"delivery"`
}

// Notification is one delivery: its id, the same at every attempt so a
// receiver can drop repeats, and what it says.
type Notification struct {
	ID      string
	Payload Payload
}

// NewNotification returns the notification a delivery sends.
func NewNotification(d muster.Delivery) Notification {
	e := d.Event
	return Notification{ID: d.ID, Payload: Payload{
		Event: e.Name, Severity: e.Severity, Job: e.Job, Target: e.Target, RunID: e.RunID, Message: e.Message,
		At: e.At, Alert: d.Alert, Operator: d.Operator,
	}}
}

// Headers of a webhook request (also set on e-mails).
const (
	HeaderEvent     = "Muster-Event"
	HeaderDelivery  = "Muster-Delivery"
	HeaderSignature = "Muster-Signature"
)

// Sign returns the Muster-Signature of body: "sha256=" and the hex
// HMAC-SHA256 of the body with the operator's secret.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify reports whether signature is body's Muster-Signature under
// secret, comparing in constant time. Receivers do this.
func Verify(secret string, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(signature))
}

// Error is a failed attempt. Permanent means another attempt cannot help:
// the receiver refused the notification, or the setup is wrong.
type Error struct {
	Message   string
	Permanent bool
	// RetryAfter is how long the receiver asked to be left alone
	// (Retry-After), or 0.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Message }

func transient(format string, args ...any) error {
	return &Error{Message: fmt.Sprintf(format, args...)}
}

func permanent(format string, args ...any) error {
	return &Error{Message: fmt.Sprintf(format, args...), Permanent: true}
}

// IsPermanent reports whether err is a failure another attempt cannot fix.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent
}

// RetryAfter is how long the receiver of a failed attempt asked to be left
// alone, or 0.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// subject is a notification's one-line summary.
func (p Payload) subject() string {
	s := fmt.Sprintf("[muster] %s (%s)", p.Event, p.Severity)
	if p.Target != "" {
		s += " on " + p.Target
	}
	if p.Job != "" {
		s += ": job " + p.Job
	}
	return s
}

// text is a notification as plain text.
func (p Payload) text() string {
	var b strings.Builder
	b.WriteString(p.Message)
	b.WriteString("\n\n")
	for _, f := range [][2]string{
		{"event", string(p.Event)},
		{"severity", fmt.Sprintf("%d (%s)", p.Severity, p.Severity)},
		{"target", p.Target},
		{"job", p.Job},
		{"run", p.RunID},
		{"at", p.At.UTC().Format(time.RFC3339)},
		{"alert", p.Alert},
		{"operator", p.Operator},
	} {
		if f[1] != "" {
			fmt.Fprintf(&b, "%-10s%s\n", f[0]+":", f[1])
		}
	}
	return b.String()
}
