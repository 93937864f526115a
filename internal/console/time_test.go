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

// A run still running has taken no time yet that the master knows: its
// page and the job's history say it is running, as `muster job history`
// does ("-"), never "0s"; a run that ended within its first millisecond
// took "<1ms"; and a finished run's duration reads as people write it.
func TestRunDurationsShownTruthfully(t *testing.T) {
	s := newSite(t)
	j := muster.NewJob()
	j.Name, j.Targets, j.Steps = "report", []string{"web1"}, []muster.Step{{Name: "s", Shell: "true"}}
	if _, err := s.db.ApplyJobs(context.Background(), []muster.Job{j}, catalog.ApplyOptions{}, muster.Actor{Kind: muster.ActorMaster, Name: "test"}); err != nil {
		t.Fatal(err)
	}
	now := s.clock.Now().Truncate(time.Second)
	quick, long := now.Add(-time.Hour), now.Add(-3*time.Hour)
	quickEnd, longEnd := quick, long.Add(3*time.Minute+41*time.Second)
	const running, instant, slow = "01a251e3-1c30-728e-b92c-000000000001", "01a251e3-1c30-728e-b92c-000000000002", "01a251e3-1c30-728e-b92c-000000000003"
	s.upload("web1",
		muster.Run{Job: "report", RunID: running, Status: muster.RunRunning, Trigger: muster.TriggerOperator, StartedAt: now,
			Steps: []muster.StepAttempt{{Name: "s", Attempt: 1, Status: muster.AttemptRunning, StartedAt: now}}},
		muster.Run{Job: "report", RunID: instant, Status: muster.RunSucceeded, Trigger: muster.TriggerOperator, StartedAt: quick, FinishedAt: &quickEnd,
			Steps: []muster.StepAttempt{{Name: "s", Attempt: 1, Status: muster.AttemptSucceeded, StartedAt: quick}}},
		muster.Run{Job: "report", RunID: slow, Status: muster.RunSucceeded, Trigger: muster.TriggerOperator, StartedAt: long, FinishedAt: &longEnd,
			DurationMS: 221_000, Steps: []muster.StepAttempt{{Name: "s", Attempt: 1, Status: muster.AttemptSucceeded, StartedAt: long, DurationMS: 221_000}}})
	c, _ := s.signIn(catalog.RoleReader)
	for _, tc := range []struct {
		page      string
		want, not []string
	}{
		{"/runs/web1/" + running, nil, []string{"0s"}},
		{"/runs/web1/" + instant, []string{"took &lt;1ms"}, []string{"0s"}},
		{"/runs/web1/" + slow, []string{"took 3m41s"}, []string{"3m41.000s"}},
		{"/jobs/report", []string{"<td>-</td>", "<td>&lt;1ms</td>", "<td>3m41s</td>"}, []string{"0s"}},
	} {
		status, body := s.get(c, tc.page)
		if status != http.StatusOK {
			t.Fatalf("%s: %d", tc.page, status)
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s does not say %q", tc.page, w)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(body, ">"+n+"<") || strings.Contains(body, " "+n+"<") || strings.Contains(body, "· "+n) {
				t.Errorf("%s says %q", tc.page, n)
			}
		}
	}
}

// A rollout's targets show why a run failed or was not run, as `muster
// rollout list --waves` prints it, not only in a tooltip a keyboard or a
// phone cannot open.
func TestRolloutShowsWhyATargetFailed(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	master := muster.Actor{Kind: muster.ActorMaster, Name: "test"}
	j := muster.NewJob()
	j.Name, j.Targets, j.Steps = "deploy", []string{"web1", "web2"}, []muster.Step{{Name: "s", Shell: "true"}}
	if _, err := s.db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, master); err != nil {
		t.Fatal(err)
	}
	res, err := s.db.StartJob(ctx, catalog.StartRequest{Job: "deploy", Rollout: &muster.RolloutSpec{Batch: "1"}}, master)
	if err != nil || len(res.Runs) != 1 {
		t.Fatalf("start in waves of one: %+v %v", res, err)
	}
	first := res.Runs[0]
	now := s.clock.Now()
	end := now.Add(time.Second)
	s.upload(first.Target, muster.Run{Job: "deploy", RunID: first.RunID, Status: muster.RunFailed, Trigger: muster.TriggerOperator,
		StartedAt: now, FinishedAt: &end, DurationMS: 1000, Message: "disk <full>"})
	c, _ := s.signIn(catalog.RoleReader)
	_, body := s.get(c, "/jobs/deploy")
	if want := first.Target + `: failed</span> <span class="hint">disk &lt;full&gt;</span>`; !strings.Contains(body, want) {
		t.Errorf("the job page does not say %q:\n%s", want, body)
	}
}
