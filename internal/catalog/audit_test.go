package catalog_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// audit returns the audit entries f selects.
func audit(t *testing.T, db *catalog.Catalog, f catalog.AuditFilter) []muster.AuditEntry {
	t.Helper()
	entries, err := db.FindAudit(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// actions lists the actions of entries, oldest first.
func actions(entries []muster.AuditEntry) []string {
	var out []string
	for _, e := range slices.Backward(entries) {
		out = append(out, e.Action)
	}
	return out
}

func TestAuditRecordsChanges(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, clk, _ := MustOpen(t, e)
		ctx := context.Background()
		enlist(t, db, "web1")
		start := clk.Now()

		j := job("backup", "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Minute)
		j.Steps[0].Shell = "echo changed"
		if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		// An unchanged job and a dry run record nothing.
		if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("other", "web1")}, catalog.ApplyOptions{DryRun: true}, admin); err != nil {
			t.Fatal(err)
		}
		ci := muster.Actor{Kind: muster.ActorKey, Name: "ci", Role: catalog.RoleOperator, Source: "10.0.0.7"}
		if _, err := db.StartJob(ctx, catalog.StartRequest{Job: "backup"}, ci); err != nil {
			t.Fatal(err)
		}
		if _, err := db.SetJobEnabled(ctx, "backup", false, ci); err != nil {
			t.Fatal(err)
		}

		all := audit(t, db, catalog.AuditFilter{Job: "backup"})
		if got, want := actions(all), []string{muster.AuditJobCreate, muster.AuditJobUpdate, muster.AuditJobStart, muster.AuditJobDisable}; !slices.Equal(got, want) {
			t.Fatalf("actions on backup = %v, want %v", got, want)
		}
		created, updated := all[3], all[2]
		if created.Actor.Name != "admin" || created.Actor.Role != catalog.RoleAdmin || created.Actor.Source != "127.0.0.1" || !created.At.Equal(start) {
			t.Errorf("create entry = %+v", created)
		}
		if !slices.Contains(created.Changes, "posted INSERT web1") || !slices.ContainsFunc(created.Changes, func(l string) bool { return strings.Contains(l, "echo hello") }) {
			t.Errorf("create changes = %q, want the definition and the INSERT posted", created.Changes)
		}
		// A new job's definition is all additions: nothing it "had" before.
		for _, l := range created.Changes {
			if !strings.HasPrefix(l, "+ ") && !strings.HasPrefix(l, "posted ") {
				t.Errorf("create change %q, want only additions", l)
			}
		}
		if !slices.Contains(updated.Changes, `~ steps[0].shell: "echo hello" -> "echo changed"`) || !slices.Equal(updated.Targets, []string{"web1"}) {
			t.Errorf("update entry = %+v, want the diff of the shell and target web1", updated)
		}
		if started := all[1]; started.Actor.Name != "ci" || started.Actor.Role != catalog.RoleOperator || started.Actor.Source != "10.0.0.7" ||
			len(started.Changes) != 1 || !strings.HasPrefix(started.Changes[0], "run ") {
			t.Errorf("start entry = %+v", started)
		}

		// Filters.
		if got := audit(t, db, catalog.AuditFilter{Actor: "ci"}); len(got) != 2 {
			t.Errorf("by ci: %d entries, want 2", len(got))
		}
		if got := audit(t, db, catalog.AuditFilter{Target: "WEB1", Since: start.Add(time.Second)}); len(got) != 3 {
			t.Errorf("on web1 since the first apply: %d entries (%v), want 3", len(got), actions(got))
		}
		if got := audit(t, db, catalog.AuditFilter{Limit: 1}); len(got) != 1 || got[0].Action != muster.AuditJobDisable {
			t.Errorf("the newest entry: %v", actions(got))
		}
		if _, err := db.FindAudit(ctx, catalog.AuditFilter{Limit: catalog.MaxAuditList + 1}); muster.ErrorCode(err) != muster.EINVALID {
			t.Errorf("limit over the maximum: got %v, want EINVALID", err)
		}
	})
}

// A change and its record commit or roll back together: a refused apply
// leaves neither its jobs nor entries.
func TestAuditRollsBackWithTheChange(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()
		enlist(t, db, "web1")
		before := len(audit(t, db, catalog.AuditFilter{}))
		// The first job is created in the transaction before the second
		// fails on its unknown target.
		_, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1"), job("b", "nowhere")}, catalog.ApplyOptions{}, admin)
		if muster.ErrorCode(err) != muster.EINVALID {
			t.Fatalf("got %v, want EINVALID", err)
		}
		if after := len(audit(t, db, catalog.AuditFilter{})); after != before {
			t.Errorf("entries %d -> %d after a refused apply", before, after)
		}
		if _, err := db.FindJob(ctx, "a"); muster.ErrorCode(err) != muster.ENOTFOUND {
			t.Errorf("job a after the refused apply: %v", err)
		}
		// A change without an actor is refused, not recorded anonymously.
		_, err = db.ApplyJobs(ctx, []muster.Job{job("a", "web1")}, catalog.ApplyOptions{}, muster.Actor{})
		if err == nil {
			t.Fatal("an apply without an actor succeeded")
		}
		if _, err := db.FindJob(ctx, "a"); muster.ErrorCode(err) != muster.ENOTFOUND {
			t.Errorf("job a after the anonymous apply: %v", err)
		}
	})
}

// Targets are the actors of their enlistment and defection.
func TestAuditTargetActions(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()
		id := enlist(t, db, "web1")
		if err := db.DefectTarget(ctx, id.ID, muster.Actor{Kind: muster.ActorTarget, Name: "web1", Source: "10.0.0.9"}); err != nil {
			t.Fatal(err)
		}
		got := audit(t, db, catalog.AuditFilter{Target: "web1"})
		if want := []string{muster.AuditTokenCreate, muster.AuditTargetEnlist, muster.AuditTargetDefect}; !slices.Equal(actions(got), want) {
			t.Fatalf("actions = %v, want %v", actions(got), want)
		}
		if got[1].Actor.Kind != muster.ActorTarget || got[1].Actor.Name != "web1" || got[0].Actor.Source != "10.0.0.9" {
			t.Errorf("enlist by %+v, defect by %+v; want the target", got[1].Actor, got[0].Actor)
		}
	})
}

func TestPruneAudit(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, clk, _ := MustOpen(t, e)
		ctx := context.Background()
		enlist(t, db, "web1") // two entries: the token and the enlistment
		clk.Add(48 * time.Hour)
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		n, err := db.PruneAudit(ctx, 24*time.Hour)
		if err != nil || n != 2 {
			t.Fatalf("PruneAudit = %d, %v; want the 2 entries older than a day", n, err)
		}
		if got := actions(audit(t, db, catalog.AuditFilter{})); !slices.Equal(got, []string{muster.AuditJobCreate}) {
			t.Errorf("after pruning: %v", got)
		}
		if got := audit(t, db, catalog.AuditFilter{Target: "web1"}); len(got) != 1 {
			t.Errorf("entries on web1 after pruning: %d, want the apply's", len(got))
		}
		if _, err := db.PruneAudit(ctx, 0); muster.ErrorCode(err) != muster.EINVALID {
			t.Errorf("max age 0: got %v, want EINVALID", err)
		}
	})
}

// An entry concerning more targets than one statement inserts keeps them
// all: a job applied to 350 targets is found by its last one.
func TestAuditOfAFleet(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		var names []string
		for i := range 350 {
			names = append(names, fmt.Sprintf("t%03d", i+1))
			enlist(t, db, names[i])
		}
		if _, err := db.ApplyJobs(context.Background(), []muster.Job{job("fleet", names...)}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		got := audit(t, db, catalog.AuditFilter{Target: "t350"})
		if len(got) != 3 || got[0].Action != muster.AuditJobCreate || !slices.Equal(got[0].Targets, names) || !slices.Equal(got[0].Jobs, []string{"fleet"}) {
			t.Fatalf("entries on t350: %v; the apply's targets: %d", actions(got), len(got[0].Targets))
		}
	})
}

// An alert on a job and a target is found in the log of either for as
// long as it lives: its creation, disabling, enabling and deletion. One
// asked for a state it has already changes and records nothing.
func TestAuditOfAnAlertNamesWhatItWatches(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()
		enlist(t, db, "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("backup", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateAlert(ctx, muster.Alert{Name: "failures", Event: muster.EventRunFailed, Job: "backup", Target: "web1",
			Notify: []string{muster.MSXOperator}}, admin); err != nil {
			t.Fatal(err)
		}
		for _, enabled := range []bool{true, false, false, true} {
			if a, err := db.SetAlertEnabled(ctx, "failures", enabled, admin); err != nil || a.Enabled != enabled {
				t.Fatalf("SetAlertEnabled(%t) = %+v, %v", enabled, a, err)
			}
		}
		if err := db.DeleteAlert(ctx, "failures", admin); err != nil {
			t.Fatal(err)
		}
		want := []string{muster.AuditAlertCreate, muster.AuditAlertDisable, muster.AuditAlertEnable, muster.AuditAlertDelete}
		for _, f := range []catalog.AuditFilter{{Job: "backup"}, {Target: "web1"}} {
			var got []string
			for _, a := range actions(audit(t, db, f)) {
				if strings.HasPrefix(a, "alert.") {
					got = append(got, a)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("%+v finds %v, want %v", f, got, want)
			}
		}
		if _, err := db.SetAlertEnabled(ctx, "failures", true, admin); muster.ErrorCode(err) != muster.ENOTFOUND {
			t.Errorf("enable a deleted alert: got %v, want ENOTFOUND", err)
		}
	})
}

// A group's rename concerns every job naming it: each now names the new
// name, and one whose override names it gets a new version. --job finds
// the rename for each.
func TestAuditOfAGroupRenameNamesItsJobs(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()
		enlist(t, db, "web1")
		if err := db.CreateGroup(ctx, "eu", admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.SetGroupMembers(ctx, "eu", []string{"web1"}, false, admin); err != nil {
			t.Fatal(err)
		}
		plain, tuned := job("plain"), job("tuned")
		plain.Targets, tuned.Targets = nil, nil
		plain.Groups, tuned.Groups = []string{"eu"}, []string{"eu"}
		hour := muster.Duration(time.Hour)
		tuned.Overrides = []muster.Override{{Group: "eu", Timeout: &hour}}
		if _, err := db.ApplyJobs(ctx, []muster.Job{plain, tuned, job("elsewhere", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		if err := db.RenameGroup(ctx, "eu", "europe", admin); err != nil {
			t.Fatal(err)
		}
		renamed := audit(t, db, catalog.AuditFilter{Limit: 1})[0]
		if renamed.Action != muster.AuditGroupRename || renamed.Object != "group europe" || !slices.Equal(renamed.Jobs, []string{"plain", "tuned"}) {
			t.Fatalf("the rename's entry: %s on %q concerning jobs %q, want group.rename on group europe concerning plain and tuned",
				renamed.Action, renamed.Object, renamed.Jobs)
		}
		if want := "job tuned: its override of group eu now names europe (version 2)"; !slices.Contains(renamed.Changes, want) {
			t.Errorf("the rename's changes: %q, want %q", renamed.Changes, want)
		}
		for _, name := range []string{"plain", "tuned"} {
			if got := audit(t, db, catalog.AuditFilter{Job: name, Limit: 1}); got[0].ID != renamed.ID {
				t.Errorf("--job %s: newest %s, want the rename", name, got[0].Action)
			}
		}
		if got := audit(t, db, catalog.AuditFilter{Job: "elsewhere", Limit: 1}); got[0].Action != muster.AuditJobCreate {
			t.Errorf("--job elsewhere: newest %s, want its creation", got[0].Action)
		}
	})
}

// A purge of every job's history, by an operator or by the master's
// retention, concerns each job whose runs it deleted, and says how many
// of each: --job finds it for those jobs, and for no other.
func TestAuditOfAPurgeNamesTheJobsItDeletedFrom(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, clk, _ := MustOpen(t, e)
		ctx := context.Background()
		web1 := enlist(t, db, "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1"), job("b", "web1"), job("c", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		old := clk.Now()
		clk.Add(48 * time.Hour)
		var ups []catalog.RunUpload
		for i, j := range []string{"a", "a", "b"} {
			ups = append(ups, report(fmt.Sprintf("old%d", i), j, muster.RunSucceeded, 1, old))
		}
		ups = append(ups, report("new", "c", muster.RunSucceeded, 1, clk.Now()))
		if _, err := db.UpsertRuns(ctx, web1, ups); err != nil {
			t.Fatal(err)
		}
		for _, by := range []muster.Actor{masterActor(), admin} {
			res, err := db.PurgeRuns(ctx, catalog.PurgeRequest{OlderThan: 24 * time.Hour}, by)
			if err != nil {
				t.Fatal(err)
			}
			if by.Kind == muster.ActorMaster {
				if res.Deleted != 3 {
					t.Fatalf("retention deleted %d runs, want 3", res.Deleted)
				}
				purged := audit(t, db, catalog.AuditFilter{Limit: 1})[0]
				if purged.Action != muster.AuditHistoryPurge || !slices.Equal(purged.Jobs, []string{"a", "b"}) {
					t.Fatalf("the purge's entry: %s concerning jobs %q, want history.purge concerning a and b", purged.Action, purged.Jobs)
				}
				for _, want := range []string{"deleted 3 finished run(s) older than 24h", "a: 2 run(s)", "b: 1 run(s)"} {
					if !slices.Contains(purged.Changes, want) {
						t.Errorf("the purge's changes: %q, want %q", purged.Changes, want)
					}
				}
				for job, want := range map[string]bool{"a": true, "b": true, "c": false} {
					got := audit(t, db, catalog.AuditFilter{Job: job, Limit: 1})
					if found := got[0].ID == purged.ID; found != want {
						t.Errorf("--job %s finds the purge: %t, want %t", job, found, want)
					}
				}
				continue
			}
			// An operator's purge that deleted nothing is recorded, naming
			// no job.
			if purged := audit(t, db, catalog.AuditFilter{Limit: 1})[0]; purged.Actor.Name != admin.Name || len(purged.Jobs) != 0 {
				t.Errorf("the empty purge's entry: by %s concerning jobs %q, want by %s concerning none", purged.Actor.Name, purged.Jobs, admin.Name)
			}
		}
	})
}

// A purge with both limits deletes what either selects: runs older than
// the age, and runs beyond the newest of each job, however young. Its
// entry says so, not that it deleted runs both old and beyond.
func TestPurgeWithBothLimits(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, clk, _ := MustOpen(t, e)
		ctx := context.Background()
		web1 := enlist(t, db, "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		old := clk.Now()
		clk.Add(48 * time.Hour)
		ups := []catalog.RunUpload{report("old", "a", muster.RunSucceeded, 1, old)}
		for i := range 3 {
			ups = append(ups, report(fmt.Sprintf("new%d", i), "a", muster.RunSucceeded, 1, clk.Now().Add(time.Duration(i-3)*time.Minute)))
		}
		if _, err := db.UpsertRuns(ctx, web1, ups); err != nil {
			t.Fatal(err)
		}
		res, err := db.PurgeRuns(ctx, catalog.PurgeRequest{OlderThan: 24 * time.Hour, KeepPerJob: 2}, admin)
		if err != nil || res.Deleted != 2 {
			t.Fatalf("deleted %d runs (%v), want 2: the old one and the oldest new one", res.Deleted, err)
		}
		left, err := db.FindRuns(ctx, catalog.RunFilter{Job: "a"})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range left {
			ids = append(ids, r.RunID)
		}
		if want := []string{"new2", "new1"}; !slices.Equal(ids, want) {
			t.Errorf("kept %v, want %v", ids, want)
		}
		purged := audit(t, db, catalog.AuditFilter{Limit: 1})[0]
		if want := "deleted 2 finished run(s): older than 24h, or beyond the newest 2 per job"; len(purged.Changes) == 0 || purged.Changes[0] != want {
			t.Errorf("the purge's changes: %q, want first %q", purged.Changes, want)
		}
	})
}

// A resync drops a target's open instructions, an operator's among them,
// and posts every job it runs again: one an operator asks for and one the
// target asks for (after a restore) are each recorded, under who asked,
// concerning the target and the jobs posted to it.
func TestAuditOfAResync(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()
		web1 := enlist(t, db, "web1")
		enlist(t, db, "web2")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("a", "web1"), job("b", "web1", "web2"), job("c", "web2")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ResyncTargets(ctx, []string{"web1"}, false, admin); err != nil {
			t.Fatal(err)
		}
		byKey := audit(t, db, catalog.AuditFilter{Limit: 1})[0]
		if byKey.Action != muster.AuditTargetResync || byKey.Actor.Name != admin.Name || !slices.Equal(byKey.Targets, []string{"web1"}) ||
			!slices.Equal(byKey.Jobs, []string{"a", "b"}) {
			t.Errorf("the operator's resync: %s by %s concerning targets %q and jobs %q, want target.resync by %s concerning web1, a and b",
				byKey.Action, byKey.Actor, byKey.Targets, byKey.Jobs, admin.Name)
		}

		// The target asks, its cursor ahead of the catalog's.
		target := muster.Actor{Kind: muster.ActorTarget, Name: "web1", Source: "10.0.0.9"}
		if _, err := db.Resync(ctx, web1.ID, 500, target); err != nil {
			t.Fatal(err)
		}
		asked := audit(t, db, catalog.AuditFilter{Limit: 1})[0]
		if asked.Action != muster.AuditTargetResync || asked.Actor.Kind != muster.ActorTarget || asked.Actor.Name != "web1" ||
			asked.Actor.Source != "10.0.0.9" || !slices.Equal(asked.Targets, []string{"web1"}) || !slices.Equal(asked.Jobs, []string{"a", "b"}) {
			t.Fatalf("the target's resync: %s by %+v concerning targets %q and jobs %q, want target.resync by target web1 from 10.0.0.9 concerning web1, a and b",
				asked.Action, asked.Actor, asked.Targets, asked.Jobs)
		}
		if !slices.ContainsFunc(asked.Changes, func(l string) bool { return strings.Contains(l, "asked") && strings.Contains(l, "500") }) {
			t.Errorf("the target's resync: changes %q, want one saying it asked, from its cursor 500", asked.Changes)
		}
		if got := audit(t, db, catalog.AuditFilter{Job: "a", Limit: 1}); got[0].ID != asked.ID {
			t.Errorf("--job a: newest %s, want the target's resync", got[0].Action)
		}
	})
}

// A target that leaves, deleted or defected, stops running its jobs: the
// entry concerns each of them, so that --job finds why the job no longer
// runs there.
func TestAuditOfADepartureNamesTheJobsItRan(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()
		enlist(t, db, "web1")
		web2 := enlist(t, db, "web2")
		enlist(t, db, "web3")
		if err := db.CreateGroup(ctx, "web", admin); err != nil {
			t.Fatal(err)
		}
		if _, err := db.SetGroupMembers(ctx, "web", []string{"web1", "web2"}, false, admin); err != nil {
			t.Fatal(err)
		}
		grouped := job("grouped")
		grouped.Groups = []string{"web"}
		if _, err := db.ApplyJobs(ctx, []muster.Job{grouped, job("named", "web1", "web2"), job("other", "web3")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteTarget(ctx, "web1", false, admin); err != nil {
			t.Fatal(err)
		}
		if err := db.DefectTarget(ctx, web2.ID, muster.Actor{Kind: muster.ActorTarget, Name: "web2"}); err != nil {
			t.Fatal(err)
		}
		for _, target := range []string{"web1", "web2"} {
			left := audit(t, db, catalog.AuditFilter{Target: target, Limit: 1})[0]
			if !slices.Equal(left.Jobs, []string{"grouped", "named"}) {
				t.Errorf("%s on %s concerns jobs %q, want grouped and named", left.Action, target, left.Jobs)
			}
			if !slices.Contains(left.Changes, "no longer runs grouped, named") {
				t.Errorf("%s on %s: changes %q, want the jobs it no longer runs", left.Action, target, left.Changes)
			}
		}
	})
}

// The audit log is read a page at a time, each page naming the cursor of
// the next, with or without filters; changes recorded between two reads
// come in no page of the walk, and move no entry from one page to
// another. Entries made at one instant keep the order they were recorded
// in.
func TestAuditPages(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()
		enlist(t, db, "web1")
		for _, name := range []string{"a", "b"} {
			if _, err := db.ApplyJobs(ctx, []muster.Job{job(name, "web1")}, catalog.ApplyOptions{}, admin); err != nil {
				t.Fatal(err)
			}
		}
		// Eleven toggles of each job, all at the same instant (the clock
		// stands still).
		for i := range 11 {
			for _, name := range []string{"a", "b"} {
				if _, err := db.SetJobEnabled(ctx, name, i%2 == 1, admin); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, tc := range []struct {
			name string
			f    catalog.AuditFilter
		}{
			{"all", catalog.AuditFilter{Limit: 5}},
			{"job", catalog.AuditFilter{Job: "a", Limit: 4}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := tc.f
				f.Limit = catalog.MaxAuditList
				want := audit(t, db, f)
				var got []muster.AuditEntry
				f, pages := tc.f, 0
				for {
					page, next, err := db.FindAuditPage(ctx, f)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, page...)
					pages++
					if next == "" {
						break
					}
					if pages > 20 {
						t.Fatalf("still a next page after %d pages", pages)
					}
					f.Cursor = next
					// A change recorded between reads.
					if _, err := db.SetJobEnabled(ctx, "a", pages%2 == 0, admin); err != nil {
						t.Fatal(err)
					}
				}
				// A page is full but the last, which is not empty.
				if want := (len(want) + tc.f.Limit - 1) / tc.f.Limit; pages != want {
					t.Errorf("pages = %d, want %d", pages, want)
				}
				if len(got) != len(want) {
					t.Fatalf("read %d entries in pages, want %d", len(got), len(want))
				}
				for i := range want {
					if got[i].ID != want[i].ID {
						t.Fatalf("entry %d = id %d, want %d", i, got[i].ID, want[i].ID)
					}
					if i > 0 && got[i].ID >= got[i-1].ID {
						t.Fatalf("entry %d: id %d after %d, want newest first", i, got[i].ID, got[i-1].ID)
					}
				}
			})
		}
	})
}

// A cursor that no page of the audit log gave is refused, naming the
// cursor; the first page is not given instead.
func TestAuditRefusesABadCursor(t *testing.T) {
	db, _, _ := MustOpen(t, catalogtest.SQLite)
	ctx := context.Background()
	enlist(t, db, "web1")
	for _, c := range []string{"nonsense", "ZXZlbnRzOjE", "YXVkaXQgbG9nOi0x", "YXVkaXQgbG9nOjE6Mg"} {
		_, _, err := db.FindAuditPage(ctx, catalog.AuditFilter{Cursor: c})
		if muster.ErrorCode(err) != muster.EINVALID || !strings.HasPrefix(muster.ErrorMessage(err), "cursor: ") {
			t.Errorf("cursor %q: %v, want invalid naming the cursor", c, err)
		}
	}
}
