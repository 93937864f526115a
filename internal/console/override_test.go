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

// A job's page says what differs on each target: the overrides, each
// target's own next fires and whether it runs on schedule there, and it
// offers Disable while any target runs the job on schedule.
func TestJobPageShowsOverrides(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	on := true
	hour := muster.Duration(time.Hour)
	j := muster.NewJob()
	j.Name, j.Enabled = "report", false
	j.Targets = []string{"web1", "web2"}
	j.Steps = []muster.Step{{Name: "copy", Shell: "cp a b"}}
	j.Overrides = []muster.Override{{Target: "web1", Enabled: &on, Timeout: &hour,
		Schedules: &[]muster.Schedule{{Name: "hourly", Cron: "0 * * * *"}}}}
	if _, err := s.db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, muster.Actor{Kind: muster.ActorMaster, Name: "test"}); err != nil {
		t.Fatal(err)
	}
	c, _ := s.signIn(catalog.RoleOperator)
	status, body := s.get(c, "/jobs/report")
	if status != http.StatusOK {
		t.Fatalf("job page: %d\n%s", status, body)
	}
	for _, want := range []string{
		`action="/jobs/report/disable"`, // web1 runs it on schedule
		`action="/jobs/report/enable"`,  // web2 does not
		"target web1",                   // the override
		"every hour",                    // web1's schedule
		":00 UTC there)",                // web1's next fire, on the hour
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the job page does not say %q:\n%s", want, body)
		}
	}
	// The list says so too.
	_, body = s.get(c, "/jobs")
	for _, want := range []string{"but enabled on some targets by overrides", "others on some targets (overrides)"} {
		if !strings.Contains(body, want) {
			t.Errorf("the jobs page does not say %q:\n%s", want, body)
		}
	}
}
