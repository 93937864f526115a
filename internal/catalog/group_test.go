package catalog_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// Group targeting is live: joining a group posts the group's jobs to the
// target, leaving it posts DELETE, unless the job still runs there another
// way.
func TestLiveGroupTargeting(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		web1, web2 := enlist(t, db, "web1"), enlist(t, db, "web2")
		if err := db.CreateGroup(ctx, "web", admin); err != nil {
			t.Fatal(err)
		}
		j := job("deploy")
		j.Groups = []string{"web"}
		named := job("named", "web2")
		named.Groups = []string{"web"}
		if _, err := db.ApplyJobs(ctx, []muster.Job{j, named}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}

		changes, err := db.SetGroupMembers(ctx, "web", []string{"web1", "web2"}, false, admin)
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) != 2 {
			t.Fatalf("changes %+v, want both jobs", changes)
		}
		got1, _ := db.PendingInstructions(ctx, web1.ID, 0)
		if want := []string{"INSERT deploy", "INSERT named"}; !slices.Equal(ops(got1), want) {
			t.Errorf("web1 got %v, want %v", ops(got1), want)
		}
		got2, _ := db.PendingInstructions(ctx, web2.ID, 0)
		if want := []string{"INSERT named", "INSERT deploy"}; !slices.Equal(ops(got2), want) {
			t.Errorf("web2 got %v, want %v (named already ran there)", ops(got2), want)
		}
		js, _ := db.FindJob(ctx, "named")
		for _, o := range js.Outcomes {
			want := []string{"group:web"}
			if o.Target == "web2" {
				want = []string{"targets", "group:web"}
			}
			if !slices.Equal(o.Via, want) {
				t.Errorf("%s via %v, want %v", o.Target, o.Via, want)
			}
		}
		if !slices.Equal(js.Targets, []string{"web2"}) || !slices.Equal(js.Groups, []string{"web"}) {
			t.Errorf("named: targets %v groups %v, want its own definition back", js.Targets, js.Groups)
		}

		if _, err := db.SetGroupMembers(ctx, "web", []string{"web2"}, true, admin); err != nil {
			t.Fatal(err)
		}
		got2, _ = db.PendingInstructions(ctx, web2.ID, 2)
		if want := []string{"DELETE deploy"}; !slices.Equal(ops(got2), want) {
			t.Errorf("web2 after leaving got %v, want %v (named still runs there by name)", ops(got2), want)
		}
		if err := db.DeleteGroup(ctx, "web", admin); muster.ErrorCode(err) != muster.EPRECONDITION {
			t.Errorf("deleting a group jobs use: %v, want a precondition error", err)
		}
		if _, err := db.SetGroupMembers(ctx, "web", []string{"web2"}, true, admin); muster.ErrorCode(err) != muster.EPRECONDITION {
			t.Errorf("removing a non-member: %v", err)
		}
		if err := db.CreateGroup(ctx, "a,b", admin); muster.ErrorCode(err) != muster.EINVALID {
			t.Errorf("a group name with a comma: %v", err)
		}
	})
}

// Per-target env: each target receives only its own values, and a change
// for one target posts only to it.
func TestTargetEnvOverrides(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		web1, web2 := enlist(t, db, "web1"), enlist(t, db, "web2")
		j := job("report", "web1", "web2")
		j.Env = map[string]string{"REGION": "eu", "SIZE": "s"}
		j.TargetEnv = map[string]map[string]string{"web2": {"REGION": "us"}}
		if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		env := func(id int64, after int64) map[string]string {
			ins, _ := db.PendingInstructions(ctx, id, after)
			var got muster.Job
			json.Unmarshal(ins[len(ins)-1].Payload, &got)
			if got.TargetEnv != nil {
				t.Errorf("a target received target_env: %v", got.TargetEnv)
			}
			return got.Env
		}
		if e := env(web1.ID, 0); e["REGION"] != "eu" {
			t.Errorf("web1 env %v", e)
		}
		if e := env(web2.ID, 0); e["REGION"] != "us" || e["SIZE"] != "s" {
			t.Errorf("web2 env %v", e)
		}
		j.TargetEnv = map[string]map[string]string{"web2": {"REGION": "ap"}}
		res, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"INSERT web2"}; !slices.Equal(res.Changes[0].Instructions, want) {
			t.Errorf("posted %v, want %v", res.Changes[0].Instructions, want)
		}
	})
}

// A target a job reaches only through a group has its fires previewed too.
func TestNextFiresThroughAGroup(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		enlist(t, db, "web1")
		enlist(t, db, "web2")
		if err := db.CreateGroup(ctx, "web", admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.SetGroupMembers(ctx, "web", []string{"web2"}, false, admin); err != nil {
			t.Fatal(err)
		}
		j := job("deploy", "web1")
		j.Groups = []string{"web"}
		j.Schedules = []muster.Schedule{{Cron: "0 2 * * *"}}
		if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		fires, err := db.NextFires(ctx, "deploy", 2)
		if err != nil || len(fires) != 2 || fires[0].Target != "web1" || fires[1].Target != "web2" || len(fires[1].Fires) != 2 {
			t.Errorf("next fires %+v (%v), want two on web1 (named) and two on web2 (through group web)", fires, err)
		}
	})
}

// A START reads the job as posting needs it (JobQuery.Posting): the same
// effective targets, with the same ids, as the full read, through the
// job's own list and through its groups, and a START reaches each once.
func TestPostingReadOfAJob(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		for _, n := range []string{"db1", "web1", "web2"} {
			enlist(t, db, n)
		}
		if err := db.CreateGroup(ctx, "web", admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.SetGroupMembers(ctx, "web", []string{"web1", "web2"}, false, admin); err != nil {
			t.Fatal(err)
		}
		j := job("deploy", "db1", "web2")
		j.Groups = []string{"web"}
		if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}

		full, err := db.Store().FindJobs(ctx, catalog.JobQuery{Name: "deploy"})
		if err != nil {
			t.Fatal(err)
		}
		lean, err := db.Store().FindJobs(ctx, catalog.JobQuery{Name: "deploy", Posting: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(full) != 1 || len(lean) != 1 {
			t.Fatalf("got %d and %d jobs, want 1 and 1", len(full), len(lean))
		}
		if lean[0].ID != full[0].ID || lean[0].Version != full[0].Version || string(lean[0].Definition) != string(full[0].Definition) {
			t.Errorf("posting read: job %d v%d, want %d v%d with the same definition", lean[0].ID, lean[0].Version, full[0].ID, full[0].Version)
		}
		if len(lean[0].Groups) != 0 {
			t.Errorf("posting read: groups %v, want none read", lean[0].Groups)
		}
		if len(lean[0].Targets) != len(full[0].Targets) {
			t.Fatalf("posting read: %d targets, want %d", len(lean[0].Targets), len(full[0].Targets))
		}
		for i, got := range lean[0].Targets {
			want := full[0].Targets[i]
			if got.Target != want.Target || got.TargetID != want.TargetID {
				t.Errorf("target %d: got %s (%d), want %s (%d)", i, got.Target, got.TargetID, want.Target, want.TargetID)
			}
			if got.Explicit || len(got.Via) != 0 {
				t.Errorf("target %s: explicit %v via %v, want neither read", got.Target, got.Explicit, got.Via)
			}
		}

		res, err := db.StartJob(ctx, catalog.StartRequest{Job: "deploy"}, admin)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range res.Runs {
			got = append(got, r.Target)
		}
		if want := []string{"db1", "web1", "web2"}; !slices.Equal(got, want) {
			t.Errorf("START went to %v, want %v", got, want)
		}
		if _, err := db.StartJob(ctx, catalog.StartRequest{Job: "deploy", Targets: []string{"other"}}, admin); muster.ErrorCode(err) != muster.EINVALID {
			t.Errorf("START to a target the job does not run on: got %v, want EINVALID", err)
		}
		if _, err := db.StopJob(ctx, "nope", nil, admin); muster.ErrorCode(err) != muster.ENOTFOUND {
			t.Errorf("STOP of no job: got %v, want ENOTFOUND", err)
		}
	})
}

// Renaming a group to the name it has is refused, naming the field, and
// records nothing: it is a slip, not a change.
func TestRenameGroupToItsOwnNameIsRefused(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, eng catalogtest.Engine) {
		ctx := context.Background()
		db, _, _ := MustOpen(t, eng)
		enlist(t, db, "web1")
		if err := db.CreateGroup(ctx, "web", admin); err != nil {
			t.Fatal(err)
		}
		j := job("deploy")
		j.Groups = []string{"web"}
		j.Overrides = []muster.Override{{Group: "web", Env: map[string]string{"A": "1"}}}
		if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		before, err := db.FindAudit(ctx, catalog.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		err = db.RenameGroup(ctx, "web", "web", admin)
		if muster.ErrorCode(err) != muster.EINVALID || !strings.HasPrefix(muster.ErrorMessage(err), "new group name:") {
			t.Errorf("renaming web to web: %v, want invalid, naming the new group name", err)
		}
		after, err := db.FindAudit(ctx, catalog.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(before) {
			t.Errorf("the refused rename recorded %d audit entries, want none", len(after)-len(before))
		}
	})
}
