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
	"slices"
	"strconv"
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
	// Count and Events are a digest's (see NewDigest): how many
	// notifications it carries, and each as it would have been sent
	// alone, with its own delivery id.
	Count  int       `json:"count,omitempty"`
	Events []Payload `json:"events,omitempty"`
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

// NewDigest returns one notification carrying ds, notifications of one
// alert and one event to one address, due at once (a fleet that went
// offline together): each as NewNotification makes it, with its own id,
// under a summary of them all. Its id is made from theirs, so the same
// notifications make the same digest, at every attempt.
func NewDigest(ds []muster.Delivery) Notification {
	first := ds[0]
	p := Payload{Event: first.Event.Name, Alert: first.Alert, Operator: first.Operator, Count: len(ds),
		Job: first.Event.Job, Target: first.Event.Target}
	ids := make([]string, len(ds))
	var targets, jobs []string
	for i, d := range ds {
		e := NewNotification(d).Payload
		e.Delivery = d.ID
		p.Events = append(p.Events, e)
		ids[i] = d.ID
		p.Severity = max(p.Severity, e.Severity)
		if e.At.After(p.At) {
			p.At = e.At
		}
		if e.Target != p.Target {
			p.Target = ""
		}
		if e.Job != p.Job {
			p.Job = ""
		}
		if e.Target != "" && !slices.Contains(targets, e.Target) {
			targets = append(targets, e.Target)
		}
		if e.Job != "" && !slices.Contains(jobs, e.Job) {
			jobs = append(jobs, e.Job)
		}
	}
	p.Message = fmt.Sprintf("%d %s events", len(ds), p.Event)
	if len(targets) > 0 {
		p.Message += " on " + someOf(targets)
	}
	if len(jobs) > 0 {
		p.Message += " of job " + someOf(jobs)
	}
	slices.Sort(ids)
	sum := sha256.Sum256([]byte(strings.Join(ids, "\n")))
	return Notification{ID: "digest-" + hex.EncodeToString(sum[:16]), Payload: p}
}

// someOf names the first few of names, and how many more there are.
func someOf(names []string) string {
	const shown = 10
	if len(names) <= shown {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:shown], ", "), len(names)-shown)
}

// Headers of a webhook request (the first two also set on e-mails).
const (
	HeaderEvent     = "Muster-Event"
	HeaderDelivery  = "Muster-Delivery"
	HeaderTimestamp = "Muster-Timestamp"
	HeaderSignature = "Muster-Signature"
)

// DefaultTolerance is how far a webhook's Muster-Timestamp may be from the
// receiver's clock, either way, for Verify to take it: long enough for a
// slow network and a clock a little off, short enough that a request
// captured and sent again is refused soon after (within it, a receiver
// drops the repeat by its delivery id).
const DefaultTolerance = 5 * time.Minute

// Sign returns the Muster-Signature of a webhook sent at the Unix time
// timestamp (its Muster-Timestamp) with body: "v1=" and the hex
// HMAC-SHA256, under the operator's secret, of the timestamp in decimal, a
// dot, and the body.
func Sign(secret string, timestamp int64, body []byte) string {
	return "v1=" + hex.EncodeToString(signature(secret, strconv.FormatInt(timestamp, 10), body))
}

func signature(secret, timestamp string, body []byte) []byte {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return mac.Sum(nil)
}

// Errors of Verify.
var (
	ErrSignature = errors.New("notify: the signature does not match the body and timestamp")
	ErrTimestamp = errors.New("notify: the timestamp is too far from now")
)

// Verify checks a webhook request as its receiver does: timestamp and
// signature are its Muster-Timestamp and Muster-Signature headers, body
// its body as received. The signature must be body's at that timestamp
// under secret (compared in constant time), and the timestamp within
// tolerance of now, either way.
func Verify(secret string, body []byte, timestamp, sig string, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not a Unix time in seconds", ErrTimestamp, HeaderTimestamp, timestamp)
	}
	mac, ok := strings.CutPrefix(sig, "v1=")
	got, err := hex.DecodeString(mac)
	if !ok || err != nil || !hmac.Equal(got, signature(secret, timestamp, body)) {
		return ErrSignature
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed at %s, %s from now, beyond %s", ErrTimestamp, time.Unix(ts, 0).UTC().Format(time.RFC3339),
			d.Round(time.Second), tolerance)
	}
	return nil
}

// Error is a failed attempt. Permanent means another attempt cannot help:
// the receiver refused the notification, or the setup is wrong.
type Error struct {
	Message   string
	Permanent bool
	// RetryAfter is how long the receiver asked to be left alone
	// (Retry-After), or 0.
	RetryAfter time.Duration
	// TooLarge is a refusal of the notification for its size (HTTP 413,
	// SMTP 552): a digest is sent again in smaller parts.
	TooLarge bool
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

// IsTooLarge reports whether err is a refusal of a notification for its
// size.
func IsTooLarge(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.TooLarge
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
	if p.Count > 0 {
		return fmt.Sprintf("[muster] %d × %s (%s)", p.Count, p.Event, p.Severity)
	}
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
	for _, e := range p.Events {
		fmt.Fprintf(&b, "\n%s  %s", e.At.UTC().Format(time.RFC3339), e.Event)
		for _, f := range []string{e.Target, e.Job, e.RunID} {
			if f != "" {
				fmt.Fprintf(&b, "  %s", f)
			}
		}
		fmt.Fprintf(&b, "\n  %s\n", e.Message)
	}
	return b.String()
}
