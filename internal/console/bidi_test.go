package console_test

import (
	"context"
	"strings"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

// A bidirectional control (U+202E, right-to-left override) shows the text
// after it in another order than it is written: "echo safe ‮ftp.evil" is
// shown as a command it is not. What a target reported (its location, a
// refused instruction's error) and what a job runs are shown with such
// characters, and with the other control characters, escaped, as the CLI
// shows them and as the console shows a step's output; so are the changes
// the audit log records, which quote them.
func TestBidiControlsShownEscaped(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	master := muster.Actor{Kind: muster.ActorMaster, Name: "test"}
	const rlo = "\u202e"
	j := muster.NewJob()
	j.Name, j.Targets, j.Description = "report", []string{"web1"}, "copies "+rlo+"txt.exe"
	j.Steps = []muster.Step{{Name: "copy", Shell: "cp a b # " + rlo + "; rm -rf /"}}
	if _, err := s.db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, master); err != nil {
		t.Fatal(err)
	}
	loc := "rack " + rlo + "7"
	if _, err := s.db.SetTargetDetails(ctx, "web1", catalog.TargetDetails{Location: &loc}, master); err != nil {
		t.Fatal(err)
	}
	s.refuse(ctx, "web1", "report", "refused "+rlo+"kcatta\a")
	c, _ := s.signIn(catalog.RoleReader)
	for _, tc := range []struct{ page, want string }{
		{"/fleet", `rack \u202e7`},
		{"/targets/web1", `rack \u202e7`},
		{"/targets/web1", `refused \u202ekcatta\a`},
		{"/jobs/report", `copies \u202etxt.exe`},
		{"/jobs/report", `cp a b # \u202e; rm -rf /`},
		{"/audit", `copies \u202etxt.exe`}, // the job's creation, each of its fields
	} {
		_, body := s.get(c, tc.page)
		if strings.Contains(body, rlo) || !strings.Contains(body, tc.want) {
			t.Errorf("%s: raw U+202E %v, want %q shown escaped", tc.page, strings.Contains(body, rlo), tc.want)
		}
	}
}
