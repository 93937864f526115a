package console_test

import (
	"context"
	"html"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

// upload has target report runs, as its uploader does.
func (s *site) upload(target string, runs ...muster.Run) {
	s.t.Helper()
	ups := make([]catalog.RunUpload, len(runs))
	for i, r := range runs {
		ups[i] = catalog.RunUpload{Revision: 1, Run: r}
	}
	res, err := s.db.UpsertRuns(context.Background(), s.ids[target], ups)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, r := range res {
		if !r.OK {
			s.t.Fatalf("run %s refused: %s", r.RunID, r.Error)
		}
	}
}

// A run's time on its target is the target's wall clock when the run
// started: in the target's zone as it was then, not at its last poll. A
// target in Berlin polling in January ran a July run at 12:00 CEST.
func TestRunPageShowsTheTargetsClockWhenTheRunStarted(t *testing.T) {
	s := newSite(t)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	s.clock.Set(time.Date(2027, 1, 15, 12, 0, 0, 0, time.UTC))
	now := s.clock.Now()
	s.db.RecordPoll(s.ids["web1"].ID, catalog.Heartbeat{At: now, LocalTime: now.In(berlin), TimeZone: "Europe/Berlin", PollInterval: 60})
	j := muster.NewJob()
	j.Name, j.Targets, j.Steps = "report", []string{"web1"}, []muster.Step{{Name: "s", Shell: "true"}}
	if _, err := s.db.ApplyJobs(context.Background(), []muster.Job{j}, catalog.ApplyOptions{}, muster.Actor{Kind: muster.ActorMaster, Name: "test"}); err != nil {
		t.Fatal(err)
	}
	started := time.Date(2026, 7, 15, 10, 0, 0, 0, time.UTC)
	ended := started.Add(90 * time.Second)
	s.upload("web1", muster.Run{Job: "report", RunID: "01a251e3-1c30-728e-b92c-6dbd99182db9", Status: muster.RunSucceeded, Trigger: muster.TriggerOperator,
		StartedAt: started, FinishedAt: &ended, DurationMS: 90_000})
	c, _ := s.signIn(catalog.RoleReader)
	status, body := s.get(c, "/runs/web1/01a251e3-1c30-728e-b92c-6dbd99182db9")
	if status != http.StatusOK {
		t.Fatalf("the run's page: %d\n%s", status, body)
	}
	if want := "2026-07-15 12:00:00 UTC+02:00 on the target, Europe/Berlin"; !strings.Contains(html.UnescapeString(body), want) {
		t.Errorf("the run's page does not say %q:\n%s", want, body)
	}
}
