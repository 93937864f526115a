package muster_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/musterhq/muster"
)

func TestEventSeverities(t *testing.T) {
	for _, tc := range []struct {
		event      muster.EventName
		severity   muster.Severity
		fromTarget bool
	}{
		{muster.EventRunFailed, 3, false},
		{muster.EventStepFailed, 2, false},
		{muster.EventInstructionFailed, 3, true},
		{muster.EventSpoolFull, 3, true},
		{muster.EventClockSkew, 2, true},
		{muster.EventAgentError, 3, true},
		{muster.EventTargetOffline, 3, false},
		{muster.EventTargetOnline, 1, false},
		{muster.EventCertRenewalFailed, 3, true},
		{muster.EventNoSuccess, 4, false},
	} {
		if !tc.event.Valid() || tc.event.Severity() != tc.severity || tc.event.FromTarget() != tc.fromTarget {
			t.Errorf("%s: severity %d, from target %v; want %d, %v", tc.event, tc.event.Severity(), tc.event.FromTarget(), tc.severity, tc.fromTarget)
		}
	}
	if len(muster.EventNames) != 10 || muster.EventAny.Valid() {
		t.Errorf("%d events, any valid %v", len(muster.EventNames), muster.EventAny.Valid())
	}
}

func TestParseSeverity(t *testing.T) {
	for in, want := range map[string]muster.Severity{"1": 1, "4": 4, "info": 1, "Warning": 2, " error ": 3, "critical": 4, "0": 0, "5": 0, "fatal": 0} {
		got, err := muster.ParseSeverity("--min-severity", in)
		if got != want || (want == 0) != (err != nil) {
			t.Errorf("%q: got %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestAlertMatches(t *testing.T) {
	failed := muster.Event{Name: muster.EventRunFailed, Severity: 3, Target: "web1", Job: "backup"}
	stale := muster.Event{Name: muster.EventNoSuccess, Severity: 4, Target: "web1", Job: "backup", Window: muster.Duration(26 * time.Hour)}
	for _, tc := range []struct {
		name  string
		alert muster.Alert
		event muster.Event
		want  bool
	}{
		{"the event", muster.Alert{Event: muster.EventRunFailed}, failed, true},
		{"another event", muster.Alert{Event: muster.EventStepFailed}, failed, false},
		{"any", muster.Alert{Event: muster.EventAny}, failed, true},
		{"its job", muster.Alert{Event: muster.EventRunFailed, Job: "backup"}, failed, true},
		{"another job", muster.Alert{Event: muster.EventRunFailed, Job: "report"}, failed, false},
		{"its target", muster.Alert{Event: muster.EventRunFailed, Target: "web1"}, failed, true},
		{"another target", muster.Alert{Event: muster.EventRunFailed, Target: "web2"}, failed, false},
		{"severity reached", muster.Alert{Event: muster.EventAny, MinSeverity: 3}, failed, true},
		{"severity not reached", muster.Alert{Event: muster.EventAny, MinSeverity: 4}, failed, false},
		{"its window", muster.Alert{Event: muster.EventNoSuccess, Window: muster.Duration(26 * time.Hour)}, stale, true},
		{"another window", muster.Alert{Event: muster.EventNoSuccess, Window: muster.Duration(2 * time.Hour)}, stale, false},
		{"any window for any", muster.Alert{Event: muster.EventAny}, stale, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.alert.Matches(tc.event); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTruncateMessage(t *testing.T) {
	long := strings.Repeat("é", muster.MaxEventMessageLen)
	got := muster.TruncateMessage(long)
	if len(got) > muster.MaxEventMessageLen || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
		t.Errorf("%d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	if muster.TruncateMessage("short") != "short" {
		t.Error("a short message was changed")
	}
}
