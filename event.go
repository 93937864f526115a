package muster

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Severity ranks an event, from 1 (info) to 4 (critical). Alerts and event
// forwarding take a minimum severity: an event is considered when its
// severity is at or above it.
type Severity int

// Severities.
const (
	SeverityInfo     Severity = 1
	SeverityWarning  Severity = 2
	SeverityError    Severity = 3
	SeverityCritical Severity = 4
)

var severityNames = map[Severity]string{
	SeverityInfo: "info", SeverityWarning: "warning", SeverityError: "error", SeverityCritical: "critical",
}

// Valid reports whether s is on the scale.
func (s Severity) Valid() bool { return s >= SeverityInfo && s <= SeverityCritical }

// Numbered returns the severity with its number, as alerts take it:
// "3 error".
func (s Severity) Numbered() string { return strconv.Itoa(int(s)) + " " + s.String() }

// String returns the severity's name ("error"), or its number when it is
// not on the scale.
func (s Severity) String() string {
	if n, ok := severityNames[s]; ok {
		return n
	}
	return strconv.Itoa(int(s))
}

// ParseSeverity reads a severity written as its number ("3") or its name
// ("error"). field names the input in the error.
func ParseSeverity(field, v string) (Severity, error) {
	v = strings.ToLower(strings.TrimSpace(v))
	if n, err := strconv.Atoi(v); err == nil && Severity(n).Valid() {
		return Severity(n), nil
	}
	for s, name := range severityNames {
		if v == name {
			return s, nil
		}
	}
	return 0, Errorf(EINVALID, "%s: %q is not a severity; use 1 (info), 2 (warning), 3 (error) or 4 (critical)", field, v)
}

// UnmarshalYAML reads a severity written as its number or its name.
func (s *Severity) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSeverity("severity", n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %s", n.Line, ErrorMessage(err))
	}
	*s = v
	return nil
}

// EventName names what happened. The set is closed.
type EventName string

// Events the master raises itself, from the runs its targets upload and from
// what it sees of its targets.
const (
	EventRunFailed     EventName = "run_failed"     // a run ended failed, timed_out or abandoned
	EventStepFailed    EventName = "step_failed"    // a step attempt failed or timed out
	EventTargetOffline EventName = "target_offline" // a target stopped polling (3 × its poll interval)
	EventTargetOnline  EventName = "target_online"  // a target that was offline polls again
	EventNoSuccess     EventName = "no_success"     // a job had no successful run on a target within a window
)

// Events a target raises and forwards to its master.
const (
	EventInstructionFailed EventName = "instruction_failed"  // an instruction could not be applied
	EventSpoolFull         EventName = "spool_full"          // the spool dropped runs the master never received
	EventClockSkew         EventName = "clock_skew"          // the target's clock is off the master's
	EventAgentError        EventName = "agent_error"         // the target daemon logged an error
	EventCertRenewalFailed EventName = "cert_renewal_failed" // a certificate renewal failed
)

// EventAny, in an alert, matches every event.
const EventAny EventName = "any"

// eventSeverity is each event's severity.
var eventSeverity = map[EventName]Severity{
	EventRunFailed:         SeverityError,
	EventStepFailed:        SeverityWarning,
	EventInstructionFailed: SeverityError,
	EventSpoolFull:         SeverityError,
	EventClockSkew:         SeverityWarning,
	EventAgentError:        SeverityError,
	EventTargetOffline:     SeverityError,
	EventTargetOnline:      SeverityInfo,
	EventCertRenewalFailed: SeverityError,
	EventNoSuccess:         SeverityCritical,
}

// EventNames lists every event, in the order the documentation gives them.
var EventNames = []EventName{
	EventRunFailed, EventStepFailed, EventInstructionFailed, EventSpoolFull, EventClockSkew,
	EventAgentError, EventTargetOffline, EventTargetOnline, EventCertRenewalFailed, EventNoSuccess,
}

// Valid reports whether n is one of the events.
func (n EventName) Valid() bool {
	_, ok := eventSeverity[n]
	return ok
}

// Severity is the severity the event is raised with.
func (n EventName) Severity() Severity { return eventSeverity[n] }

// FromTarget reports whether targets raise and forward the event (as
// opposed to the master, which raises the others itself).
func (n EventName) FromTarget() bool {
	switch n {
	case EventInstructionFailed, EventSpoolFull, EventClockSkew, EventAgentError, EventCertRenewalFailed:
		return true
	}
	return false
}

// NamesJob reports whether the event may name a job: those of a target's
// presence, its spool, its clock and its certificate never do.
func (n EventName) NamesJob() bool {
	switch n {
	case EventTargetOffline, EventTargetOnline, EventSpoolFull, EventClockSkew, EventCertRenewalFailed:
		return false
	}
	return true
}

// Where an event was raised.
const (
	SourceMaster = "master"
	SourceTarget = "target"
)

// MaxEventMessageLen bounds an event's message.
const MaxEventMessageLen = 4096

// Event is something that happened on the master or a target that alerts may
// notify operators about. Job, Target and RunID are "" when they do not
// apply.
type Event struct {
	ID       int64     `json:"id"`
	Name     EventName `json:"event"`
	Severity Severity  `json:"severity"`
	Source   string    `json:"source"`
	Target   string    `json:"target"`
	Job      string    `json:"job"`
	RunID    string    `json:"run_id"`
	Message  string    `json:"message"`
	// At is when it happened, by the clock of the server that raised it.
	At time.Time `json:"at"`
	// Window is, for no_success, the window the job went without success.
	Window Duration `json:"window,omitempty"`
}

// TruncateMessage cuts msg to MaxEventMessageLen bytes without splitting a
// character.
func TruncateMessage(msg string) string {
	if len(msg) <= MaxEventMessageLen {
		return msg
	}
	cut := MaxEventMessageLen - len("…")
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "…"
}
