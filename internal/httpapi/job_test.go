package httpapi_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/testenv"
)

func categoryJob(name, category string) muster.Job {
	j := muster.NewJob()
	j.Name, j.Category = name, category
	j.Targets = []string{"web1"}
	j.Steps = []muster.Step{{Name: "s", Shell: "true"}}
	return j
}

// GET /api/v1/jobs?category= lists the jobs of one category, in any case;
// a category change is the master's alone and posts nothing to targets.
func TestJobsByCategory(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	ctx := context.Background()
	res, err := env.Client.Apply(ctx, httpapi.ApplyRequest{Jobs: []muster.Job{
		categoryJob("backup", "Database Maintenance"),
		categoryJob("reindex", "database maintenance"),
		categoryJob("report", "Reports"),
		categoryJob("plain", ""),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Posted != 4 {
		t.Fatalf("posted %d instructions, want an INSERT per job", res.Posted)
	}
	for _, tc := range []struct {
		category string
		want     []string
	}{
		{"", []string{"backup", "plain", "reindex", "report"}},
		{"Database Maintenance", []string{"backup", "reindex"}},
		{"DATABASE MAINTENANCE", []string{"backup", "reindex"}},
		{"Reports", []string{"report"}},
		{"nothing here", nil},
	} {
		jobs, err := env.Client.JobsInCategory(ctx, tc.category)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, j := range jobs {
			names = append(names, j.Name)
		}
		if !slices.Equal(names, tc.want) {
			t.Errorf("category %q: got %v, want %v", tc.category, names, tc.want)
		}
	}

	res, err = env.Client.Apply(ctx, httpapi.ApplyRequest{Jobs: []muster.Job{categoryJob("report", "Finance")}})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Changes[0]
	if c.Action != muster.ActionUpdate || len(c.Instructions) != 0 || !slices.Contains(c.Diff, `~ category: "Reports" -> "Finance"`) {
		t.Errorf("changing the category: %+v; want an update that posts nothing", c)
	}
	if js, err := env.Client.Job(ctx, "report"); err != nil || js.Category != "Finance" {
		t.Errorf("job report: category %q, %v; want Finance", js.Category, err)
	}
}

func TestJobsByCategoryRefusesBadInput(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	ctx := context.Background()
	for _, category := range []string{strings.Repeat("x", muster.MaxCategoryLen+1), "a\nb"} {
		_, err := env.Client.JobsInCategory(ctx, category)
		if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), "category:") {
			t.Errorf("category %q: got %v, want an invalid error naming category", category, err)
		}
	}
	_, err := env.Client.Apply(ctx, httpapi.ApplyRequest{Jobs: []muster.Job{categoryJob("bad", "tab\there")}})
	if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), `job "bad": category:`) {
		t.Errorf("apply with a bad category: got %v, want an invalid error naming the job and category", err)
	}
	if jobs, err := env.Client.Jobs(ctx); err != nil || len(jobs) != 0 {
		t.Errorf("after a refused apply: %d jobs, %v; want none", len(jobs), err)
	}
}
