package catalog_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// received returns the job a target was last sent in an INSERT.
func received(t *testing.T, db *catalog.Catalog, id catalog.TargetIdentity, job string) agentproto.Job {
	t.Helper()
	ins, err := db.PendingInstructions(context.Background(), id.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var j agentproto.Job
	found := false
	for _, in := range ins {
		if in.Operation == muster.OpInsert && in.Job == job {
			if err := json.Unmarshal(in.Payload, &j); err != nil {
				t.Fatal(err)
			}
			found = true
		}
	}
	if !found {
		t.Fatalf("%s was sent no INSERT of %s: %v", id.Name, job, ops(ins))
	}
	return j
}

func scheduleNames(j agentproto.Job) []string {
	var out []string
	for _, s := range j.Schedules {
		out = append(out, s.Name)
	}
	return out
}

// reportJob runs on web1 and web2 by name and on group eu, with an
// override for eu and one for web2.
func reportJob() muster.Job {
	j := muster.NewJob()
	j.Name = "report"
	j.Targets = []string{"web1", "web2"}
	j.Groups = []string{"eu"}
	j.Steps = []muster.Step{{Name: "q", SQL: "select 1", Connection: "main"}, {Name: "copy", Shell: "cp a b"}}
	j.Schedules = []muster.Schedule{{Name: "nightly", Cron: "0 2 * * *"}}
	twoHours, conn := muster.Duration(2*time.Hour), "eu-main"
	j.Overrides = []muster.Override{
		{Group: "eu", Timeout: &twoHours, Steps: map[string]muster.StepOverride{"q": {Connection: &conn}}},
		{Target: "web2", Schedules: &[]muster.Schedule{{Name: "hourly", Cron: "0 * * * *"}}},
	}
	return j
}

// Each target receives the job with its own overrides applied, and a
// change to one override, or to a group's members, re-posts only where
// what a target receives changed.
func TestOverridesArePostedPerTarget(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()
		web1, web2, db1 := enlist(t, db, "web1"), enlist(t, db, "web2"), enlist(t, db, "db1")
		if err := db.CreateGroup(ctx, "eu", admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.SetGroupMembers(ctx, "eu", []string{"db1"}, false, admin); err != nil {
			t.Fatal(err)
		}
		res, err := db.ApplyJobs(ctx, []muster.Job{reportJob()}, catalog.ApplyOptions{}, admin)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"INSERT db1", "INSERT web1", "INSERT web2"}; !slices.Equal(res.Changes[0].Instructions, want) {
			t.Fatalf("posted %v, want %v", res.Changes[0].Instructions, want)
		}
		for _, c := range []struct {
			id         catalog.TargetIdentity
			schedules  []string
			timeout    time.Duration
			connection string
		}{
			{web1, []string{"nightly"}, 0, "main"},
			{web2, []string{"hourly"}, 0, "main"},
			{db1, []string{"nightly"}, 2 * time.Hour, "eu-main"},
		} {
			got := received(t, db, c.id, "report")
			if !slices.Equal(scheduleNames(got), c.schedules) || got.Timeout.Std() != c.timeout || got.Steps[0].Connection != c.connection {
				t.Errorf("%s received schedules %v, timeout %s, connection %q; want %v, %s, %q", c.id.Name, scheduleNames(got),
					got.Timeout.Std(), got.Steps[0].Connection, c.schedules, c.timeout, c.connection)
			}
		}

		// The overrides come back as applied.
		shown, err := db.FindJob(ctx, "report")
		if err != nil {
			t.Fatal(err)
		}
		if len(shown.Overrides) != 2 || shown.Overrides[1].Target != "web2" || (*shown.Overrides[1].Schedules)[0].Cron != "0 * * * *" {
			t.Errorf("stored overrides: %+v", shown.Overrides)
		}

		// Each target's next fires follow its own schedules.
		fires, err := db.NextFires(ctx, "report", 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, tf := range fires {
			want := "nightly"
			if tf.Target == "web2" {
				want = "hourly"
			}
			if len(tf.Fires) != 1 || tf.Fires[0].Schedule != want {
				t.Errorf("next fire on %s: %+v, want one of schedule %s", tf.Target, tf.Fires, want)
			}
		}

		// A change to web2's override goes to web2 alone.
		j := reportJob()
		j.Overrides[1].Schedules = &[]muster.Schedule{{Name: "half-hourly", Cron: "*/30 * * * *"}}
		res, err = db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"INSERT web2"}; !slices.Equal(res.Changes[0].Instructions, want) {
			t.Errorf("changing web2's schedules posted %v, want %v", res.Changes[0].Instructions, want)
		}
		// Disabling the job on web1 alone is an UPDATE to web1 alone.
		off := false
		j.Overrides = append(j.Overrides, muster.Override{Target: "web1", Enabled: &off})
		if res, err = db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		if want := []string{"UPDATE web1"}; !slices.Equal(res.Changes[0].Instructions, want) {
			t.Errorf("disabling on web1 posted %v, want %v", res.Changes[0].Instructions, want)
		}
		// web2 joining eu falls under eu's override: it receives the job
		// again, and no other target does.
		changes, err := db.SetGroupMembers(ctx, "eu", []string{"web2"}, false, admin)
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) != 1 || !slices.Equal(changes[0].Instructions, []string{"INSERT web2"}) {
			t.Errorf("web2 joining eu posted %+v, want INSERT web2 only", changes)
		}
		got := received(t, db, web2, "report")
		if got.Timeout.Std() != 2*time.Hour || got.Steps[0].Connection != "eu-main" || !slices.Equal(scheduleNames(got), []string{"half-hourly"}) {
			t.Errorf("web2 in eu received timeout %s, connection %q, schedules %v; want eu's timeout and connection, its own schedules",
				got.Timeout.Std(), got.Steps[0].Connection, scheduleNames(got))
		}

		// A renamed group takes its overrides with it, and no target
		// receives anything: what each runs is the same.
		posted, err := db.FindInstructions(ctx, catalog.InstructionFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.RenameGroup(ctx, "eu", "europe", admin); err != nil {
			t.Fatal(err)
		}
		renamed, err := db.FindJob(ctx, "report")
		if err != nil {
			t.Fatal(err)
		}
		if renamed.Overrides[0].Group != "europe" || !slices.Equal(renamed.Groups, []string{"europe"}) {
			t.Errorf("after the rename: groups %v, first override of %s; want europe", renamed.Groups, renamed.Overrides[0].Subject())
		}
		if after, _ := db.FindInstructions(ctx, catalog.InstructionFilter{}); len(after) != len(posted) {
			t.Errorf("renaming the group posted %d instruction(s), want none", len(after)-len(posted))
		}
		j.Groups, j.Overrides[0].Group = []string{"europe"}, "europe"
		if res, err = db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		if res.Changes[0].Action != muster.ActionUnchanged {
			t.Errorf("the job file with the new name: %s %v, want unchanged", res.Changes[0].Action, res.Changes[0].Diff)
		}
	})
}

// An override naming a target never enlisted is an error that names the
// override; one of a target that left is left out with a warning.
func TestOverrideTargetsMustBeEnlisted(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()
		enlist(t, db, "web1")
		web2 := enlist(t, db, "web2")
		if err := db.CreateGroup(ctx, "eu", admin); err != nil {
			t.Fatal(err)
		}
		off := false
		j := reportJob()
		j.Targets = []string{"web1"}
		j.Overrides = []muster.Override{{Target: "web1", Enabled: &off}, {Target: "x", Enabled: &off}}
		_, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin)
		if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(muster.ErrorMessage(err), `job "report": overrides[1].target: no enlisted target named "x"`) {
			t.Fatalf("got %v, want EINVALID naming overrides[1].target", err)
		}
		if _, err := db.FindJob(ctx, "report"); muster.ErrorCode(err) != muster.ENOTFOUND {
			t.Errorf("the refused job was stored: %v", err)
		}

		if err := db.DefectTarget(ctx, web2.ID, muster.Actor{Kind: muster.ActorTarget, Name: "web2"}); err != nil {
			t.Fatal(err)
		}
		j.Overrides[1].Target = "web2"
		res, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin)
		if err != nil {
			t.Fatal(err)
		}
		if w := res.Changes[0].Warnings; len(w) != 1 || !strings.HasPrefix(w[0], `job "report": overrides[1].target: "web2" is left out`) {
			t.Errorf("warnings %q, want one for overrides[1]", w)
		}
		got, err := db.FindJob(ctx, "report")
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Overrides) != 1 || got.Overrides[0].Target != "web1" {
			t.Errorf("stored overrides %+v, want web1's alone", got.Overrides)
		}
	})
}

// A target that leaves a group, and still runs the job by name, is sent
// the job again without the group's override.
func TestLeavingAGroupDropsItsOverride(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()
		web1 := enlist(t, db, "web1")
		if err := db.CreateGroup(ctx, "eu", admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.SetGroupMembers(ctx, "eu", []string{"web1"}, false, admin); err != nil {
			t.Fatal(err)
		}
		j := job("report", "web1")
		j.Groups = []string{"eu"}
		j.Timeout = muster.Duration(time.Hour)
		two := muster.Duration(2 * time.Hour)
		j.Overrides = []muster.Override{{Group: "eu", Timeout: &two}}
		if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		if got := received(t, db, web1, "report"); got.Timeout.Std() != 2*time.Hour {
			t.Fatalf("web1 in eu received timeout %s, want 2h", got.Timeout.Std())
		}
		changes, err := db.SetGroupMembers(ctx, "eu", []string{"web1"}, true, admin)
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) != 1 || !slices.Equal(changes[0].Instructions, []string{"INSERT web1"}) {
			t.Fatalf("web1 leaving eu posted %+v, want INSERT web1", changes)
		}
		if got := received(t, db, web1, "report"); got.Timeout.Std() != time.Hour {
			t.Errorf("web1 out of eu received timeout %s, want the job's 1h", got.Timeout.Std())
		}
	})
}

// A dry run shows every change to an override, and an apply that changes
// the stored definition says so.
func TestOverrideChangesAreShown(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()
		enlist(t, db, "web1")
		enlist(t, db, "db1")
		off := false
		j := job("report", "web1")
		j.Schedules = []muster.Schedule{{Name: "nightly", Cron: "0 2 * * *"}}
		j.Overrides = []muster.Override{{Target: "web1", Enabled: &off}}
		if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		j.Overrides[0].Schedules = &[]muster.Schedule{}
		res, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{DryRun: true}, admin)
		if err != nil {
			t.Fatal(err)
		}
		c := res.Changes[0]
		if c.Action != muster.ActionUpdate || !slices.ContainsFunc(c.Diff, func(d string) bool { return strings.Contains(d, "overrides[0].schedules") }) {
			t.Errorf("dry run of schedules: [] on web1: %s %v %v, want an update whose diff names overrides[0].schedules", c.Action, c.Diff, c.Instructions)
		}

		// An override of a target the job does not run on changes no
		// target, yet changes the job.
		j.Overrides[0].Schedules = nil
		j.Overrides = append(j.Overrides, muster.Override{Target: "db1", Enabled: &off})
		if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		before, err := db.FindJob(ctx, "report")
		if err != nil {
			t.Fatal(err)
		}
		j.Overrides[1].Schedules = &[]muster.Schedule{}
		res, err = db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin)
		if err != nil {
			t.Fatal(err)
		}
		after, err := db.FindJob(ctx, "report")
		if err != nil {
			t.Fatal(err)
		}
		if c := res.Changes[0]; after.Version != before.Version && c.Action == muster.ActionUnchanged {
			t.Errorf("the job went from version %d to %d, yet the apply said %s %v", before.Version, after.Version, c.Action, c.Diff)
		}
	})
}

// Disabling a job stops its schedules on every target, those whose
// override enabled it too.
func TestDisablingAJobBeatsEnabledOverrides(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()
		web1, web2, db1 := enlist(t, db, "web1"), enlist(t, db, "web2"), enlist(t, db, "db1")
		if err := db.CreateGroup(ctx, "eu", admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.SetGroupMembers(ctx, "eu", []string{"db1"}, false, admin); err != nil {
			t.Fatal(err)
		}
		on, off := true, false
		hour := muster.Duration(time.Hour)
		// Off by default; on where the overrides say so.
		j := job("report", "web1", "web2")
		j.Groups = []string{"eu"}
		j.Enabled = false
		j.Schedules = []muster.Schedule{{Name: "nightly", Cron: "0 2 * * *"}}
		j.Overrides = []muster.Override{{Group: "eu", Enabled: &on, Timeout: &hour}, {Target: "web1", Enabled: &on}, {Target: "web2", Enabled: &off}}
		if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		ch, err := db.SetJobEnabled(ctx, "report", false, admin)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"UPDATE db1", "UPDATE web1"}; ch.Action != muster.ActionUpdate || !slices.Equal(ch.Instructions, want) {
			t.Errorf("disabling: %s, posted %v; want an update posting %v", ch.Action, ch.Instructions, want)
		}
		for _, id := range []catalog.TargetIdentity{web1, web2, db1} {
			ins, err := db.PendingInstructions(ctx, id.ID, 0)
			if err != nil {
				t.Fatal(err)
			}
			enabled := false
			for _, in := range ins {
				var p struct{ Enabled bool }
				if err := json.Unmarshal(in.Payload, &p); err != nil {
					t.Fatal(err)
				}
				enabled = p.Enabled
			}
			if enabled {
				t.Errorf("%s holds the disabled job enabled: %v", id.Name, ops(ins))
			}
		}
		got, err := db.FindJob(ctx, "report")
		if err != nil {
			t.Fatal(err)
		}
		if got.Enabled || len(got.Overrides) != 2 || got.Overrides[0].Enabled != nil || got.Overrides[0].Timeout == nil || got.Overrides[1].Target != "web2" {
			t.Errorf("disabled job: enabled %v, overrides %+v; want eu's timeout and web2's override kept, no override enabling it", got.Enabled, got.Overrides)
		}
		// Disabled already: nothing to do.
		if ch, err := db.SetJobEnabled(ctx, "report", false, admin); err != nil || ch.Action != muster.ActionUnchanged {
			t.Errorf("disabling again: %s %v, %v; want unchanged", ch.Action, ch.Instructions, err)
		}
	})
}

// A target on which an override disables the job has no next fires: its
// schedules do not fire there.
func TestNextFiresLeavesOutDisabledTargets(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()
		enlist(t, db, "web1")
		enlist(t, db, "web2")
		off := false
		j := job("report", "web1", "web2")
		j.Schedules = []muster.Schedule{{Name: "nightly", Cron: "0 2 * * *"}}
		j.Overrides = []muster.Override{{Target: "web1", Enabled: &off}}
		if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		fires, err := db.NextFires(ctx, "report", 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, tf := range fires {
			switch tf.Target {
			case "web1":
				if len(tf.Fires) != 0 || !tf.Disabled {
					t.Errorf("web1, disabled by its override: %d fire(s), disabled %v; want none, disabled", len(tf.Fires), tf.Disabled)
				}
			case "web2":
				if len(tf.Fires) != 2 || tf.Disabled {
					t.Errorf("web2: %d fire(s), disabled %v; want 2, enabled", len(tf.Fires), tf.Disabled)
				}
			}
		}
	})
}

// An override of an enlisted target the job does not run on changes
// nothing for now: the apply warns, naming it.
func TestOverrideOfATargetOutsideTheJobWarns(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()
		enlist(t, db, "web1")
		enlist(t, db, "web2")
		enlist(t, db, "db1")
		if err := db.CreateGroup(ctx, "eu", admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.SetGroupMembers(ctx, "eu", []string{"db1"}, false, admin); err != nil {
			t.Fatal(err)
		}
		off := false
		j := job("report", "web1")
		j.Groups = []string{"eu"}
		j.Overrides = []muster.Override{{Target: "web1", Enabled: &off}, {Target: "db1", Enabled: &off}, {Target: "web2", Enabled: &off}}
		res, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin)
		if err != nil {
			t.Fatal(err)
		}
		w := res.Changes[0].Warnings
		if len(w) != 1 || !strings.HasPrefix(w[0], `job "report": overrides[2].target: "web2" is not a target of the job`) {
			t.Errorf("warnings %q, want one for overrides[2] (web2)", w)
		}
	})
}

// One target's target_env given in two spellings is refused, not merged
// in an order left to chance.
func TestTargetEnvOfOneTargetInTwoSpellings(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()
		enlist(t, db, "web1")
		j := job("report", "web1")
		j.TargetEnv = map[string]map[string]string{"web1": {"A": "1"}, "WEB1": {"A": "2"}}
		_, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin)
		if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(muster.ErrorMessage(err), "target_env.web1: target web1 is already given as target_env.WEB1") {
			t.Fatalf("got %v, want EINVALID naming target_env.web1", err)
		}
	})
}
