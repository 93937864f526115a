package console_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

// The jobs page's Failed only is a filter like the others in its URL:
// ?failed=true keeps the jobs with a failure as ?failed=1 (what the
// checkbox sends) does, and a value that is neither true nor false is
// refused naming the field, where it showed every job as if unfiltered.
func TestJobsFailedOnlyFilter(t *testing.T) {
	s := newSite(t)
	j := muster.NewJob()
	j.Name, j.Targets, j.Steps = "report", []string{"web1"}, []muster.Step{{Name: "s", Shell: "true"}}
	if _, err := s.db.ApplyJobs(context.Background(), []muster.Job{j}, catalog.ApplyOptions{}, muster.Actor{Kind: muster.ActorMaster, Name: "test"}); err != nil {
		t.Fatal(err)
	}
	c, _ := s.signIn(catalog.RoleReader)
	for _, tc := range []struct {
		query  string
		status int
		shows  bool // the job, which has not failed
	}{
		{"", http.StatusOK, true},
		{"?failed=1", http.StatusOK, false},
		{"?failed=true", http.StatusOK, false},
		{"?failed=0", http.StatusOK, true},
		{"?failed=maybe", http.StatusBadRequest, false},
	} {
		status, body := s.get(c, "/jobs"+tc.query)
		if shows := strings.Contains(body, `<a href="/jobs/report">report</a>`); status != tc.status || shows != tc.shows {
			t.Errorf("/jobs%s: %d, showing the job %v; want %d, %v", tc.query, status, shows, tc.status, tc.shows)
		}
		if tc.status == http.StatusBadRequest && !strings.Contains(body, "failed: true or false, not &#34;maybe&#34;") {
			t.Errorf("/jobs%s does not say why it is refused:\n%s", tc.query, body)
		}
	}
}
