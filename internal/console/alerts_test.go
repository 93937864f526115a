package console_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

// Durations and severities read as the CLI writes them: a no_success
// alert's window as 26h, not 26h0m0s; a minimum severity as "3 error",
// and "any" for an alert that takes every severity, as for its job and target; a step's retry interval
// and the timeouts as 30s, 1h.
func TestAlertsAndJobShowDurationsAsTheCLI(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	master := muster.Actor{Kind: muster.ActorMaster, Name: "test"}
	j := muster.NewJob()
	j.Name, j.Targets = "backup", []string{"web1"}
	j.Timeout = muster.Duration(2 * time.Hour)
	j.Schedules = []muster.Schedule{{Name: "nightly", Cron: "0 2 * * *"}}
	j.Steps = []muster.Step{{Name: "dump", Shell: "true", Timeout: muster.Duration(time.Hour),
		Retry: &muster.Retry{Attempts: 2, Interval: muster.Duration(30 * time.Second)}}}
	if _, err := s.db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, master); err != nil {
		t.Fatal(err)
	}
	for _, a := range []muster.Alert{
		{Name: "stale", Event: muster.EventNoSuccess, Job: "backup", Window: muster.Duration(26 * time.Hour), Notify: []string{muster.MSXOperator}, Enabled: true},
		{Name: "failing", Event: muster.EventRunFailed, MinSeverity: muster.SeverityError, Notify: []string{muster.MSXOperator}, Enabled: true},
		{Name: "anything", Event: muster.EventRunFailed, Notify: []string{muster.MSXOperator}, Enabled: true},
	} {
		if _, err := s.db.CreateAlert(ctx, a, master); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := s.signIn(catalog.RoleReader)
	for page, wants := range map[string][]string{
		"/alerts": {
			`<th scope="row">stale</th><td>no_success within 26h</td>`,
			`<th scope="row">failing</th><td>run_failed</td><td>any</td><td>any</td><td>3 error</td>`,
			`<th scope="row">anything</th><td>run_failed</td><td>any</td><td>any</td><td>any</td>`,
		},
		"/jobs/backup": {"retries: 2 every 30s · timeout 1h</p>", "Whole run timeout 2h."},
	} {
		status, body := s.get(c, page)
		if status != http.StatusOK {
			t.Fatalf("%s: %d", page, status)
		}
		for _, want := range wants {
			if !strings.Contains(body, want) {
				t.Errorf("%s does not say %q:\n%s", page, want, body)
			}
		}
	}
}

// The alerts page links to what the alerts sent, as `muster alert
// history` shows it: newest first, each notification's alert, event,
// target, job, operator, channel, status, attempts and error, filtered by
// the URL as the CLI's flags filter it; a filter that is not a status is
// refused naming the field.
func TestAlertHistoryPage(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	master := muster.Actor{Kind: muster.ActorMaster, Name: "test"}
	if _, err := s.db.CreateAlert(ctx, muster.Alert{Name: "agent-errors", Event: muster.EventAgentError, Notify: []string{muster.MSXOperator}, Enabled: true}, master); err != nil {
		t.Fatal(err)
	}
	var events []catalog.TargetEvent
	for i := range 3 {
		events = append(events, catalog.TargetEvent{ID: int64(i + 1), Name: muster.EventAgentError, Severity: muster.SeverityError,
			Message: "disk <b>gone</b>", At: s.clock.Now()})
	}
	if _, err := s.db.RecordTargetEvents(ctx, s.ids["web1"], events); err != nil {
		t.Fatal(err)
	}
	n := 0
	if _, _, err := s.db.DispatchEvents(ctx, func() string { n++; return fmt.Sprintf("delivery-%d", n) }); err != nil {
		t.Fatal(err)
	}
	want, err := s.db.FindDeliveries(ctx, catalog.DeliveryFilter{})
	if err != nil || len(want) != 3 {
		t.Fatalf("the notifications: %d %v, want 3", len(want), err)
	}
	c, _ := s.signIn(catalog.RoleReader)
	_, body := s.get(c, "/alerts")
	if !strings.Contains(body, `href="/alerts/history"`) {
		t.Errorf("the alerts page does not link to their history:\n%s", body)
	}
	status, body := s.get(c, "/alerts/history")
	if status != http.StatusOK {
		t.Fatalf("/alerts/history: %d\n%s", status, body)
	}
	rows := 0
	for _, d := range want {
		row := `<tr data-delivery="` + d.ID + `">`
		if !strings.Contains(body, row) {
			t.Errorf("the history does not show notification %s", d.ID)
			continue
		}
		rows++
		after := body[strings.Index(body, row):]
		after = after[:strings.Index(after, "</tr>")]
		for _, w := range []string{"agent-errors", "agent_error", `<a href="/targets/web1">web1</a>`, muster.MSXOperator, d.Channel, string(d.Status)} {
			if !strings.Contains(after, w) {
				t.Errorf("notification %s's row does not say %q: %s", d.ID, w, after)
			}
		}
	}
	if rows != 3 {
		t.Errorf("%d notifications shown, want 3", rows)
	}
	if status, body := s.get(c, "/alerts/history?status="+string(want[0].Status)+"&alert=nope"); status != http.StatusOK || strings.Contains(body, "data-delivery") {
		t.Errorf("filtered to an alert that sent nothing: %d, showing notifications: %v", status, strings.Contains(body, "data-delivery"))
	}
	if status, body := s.get(c, "/alerts/history?status=lost"); status != http.StatusBadRequest || !strings.Contains(body, "status: &#34;lost&#34; is not a delivery status") {
		t.Errorf("?status=lost: %d, want 400 naming the field\n%s", status, body)
	}
}

// An operator without an address says so, as `muster operator list`
// does ("-"), rather than leaving its cells empty: alerts to it are
// recorded failed on the "none" channel. Events say their source and
// their severity with its number, as `muster event list` does.
func TestOperatorsAndEventsSayWhatTheCLISays(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	if _, err := s.db.RecordTargetEvents(ctx, s.ids["web1"], []catalog.TargetEvent{{ID: 1, Name: muster.EventAgentError, Severity: muster.SeverityError,
		Message: "disk full", At: s.clock.Now()}}); err != nil {
		t.Fatal(err)
	}
	c, _ := s.signIn(catalog.RoleReader)
	_, body := s.get(c, "/alerts")
	if want := `<th scope="row">MSXOperator</th><td>none</td><td>none</td>`; !strings.Contains(body, want) {
		t.Errorf("/alerts does not say %q:\n%s", want, body)
	}
	_, body = s.get(c, "/events")
	if want := `<td>agent_error</td><td>3 error</td><td>target</td>`; !strings.Contains(body, want) {
		t.Errorf("/events does not say %q:\n%s", want, body)
	}
}
