package console_test

import (
	"context"
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
